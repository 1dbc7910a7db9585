// kvf_cuda_emu's scheduler (see kvf_cuda_emu.hpp): one fiber per CUDA thread, blocks one after another.
// A fiber runs until it reaches a barrier or a warp collective or returns; when no fiber can run, the waiting warp
// collectives are resolved (every lane of their mask must be waiting in the same one), then the block barrier
// (every live thread must wait at it). Anything else is reported as the fault it would be on a GPU.
#include "kvf_cuda_emu.hpp"

#include <sys/mman.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <map>
#include <sstream>
#include <vector>

namespace kvf_emu {
namespace {

enum class State { Runnable, AtBarrier, AtWarp, Done };

// ---- context switch ----------------------------------------------------------------------------------------------
// x86-64: a hand-written switch of the callee-saved registers (ucontext's swapcontext costs two signal-mask system
// calls per switch, and the emulator switches at every barrier of every thread). Elsewhere: ucontext.
#if defined(__x86_64__)
extern "C" void kvf_emu_switch(void** save_sp, void* next_sp);
asm(R"(
  .text
  .globl kvf_emu_switch
  .type kvf_emu_switch, @function
kvf_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size kvf_emu_switch, .-kvf_emu_switch
  .section .note.GNU-stack,"",@progbits
  .text
)");

struct Context {
  void* sp = nullptr;
};
// A fresh stack whose first switch "returns" into entry(): the frame kvf_emu_switch pops, then entry's address,
// then a null return address that ends unwinding.
inline void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  auto* top = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t{15});
  top[-1] = 0;                                     // entry's return address: none
  top[-2] = reinterpret_cast<uint64_t>(entry);     // popped by kvf_emu_switch's ret (16-byte aligned slot)
  uint64_t* sp = top - 2 - 7;                      // rbp rbx r12 r13 r14 r15, then mxcsr / x87 control word
  for (int i = 1; i <= 6; ++i) sp[i] = 0;
  uint32_t mxcsr;
  uint16_t fpcw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  std::memcpy(reinterpret_cast<char*>(sp), &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpcw, 2);
  c.sp = sp;
}
inline void switch_context(Context& from, Context& to) { kvf_emu_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc{};
};
inline void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;  // entry never returns: it switches back itself
  makecontext(&c.uc, entry, 0);
}
inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

struct Fiber {
  Context ctx;
  ThreadContext tc;
  State state = State::Runnable;
  WarpOp op = WarpOp::Sync;
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int arg = 0, width = 32;
};

struct Block {
  std::vector<Fiber> fibers;
  Context main;
  int cur = -1;
  const std::function<void()>* body = nullptr;
  std::string error;
  std::vector<unsigned char> dynamic_shared;
  std::string where;  // "<kernel> block (x,y,z)" for messages
};

Order g_thread_order = Order::Forward, g_block_order = Order::Forward;
cudaError_t g_last_error = cudaSuccess;
std::map<const void*, int> g_max_dynamic;
Block* g_block = nullptr;
const ThreadContext g_host_context{};

constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;
std::vector<char*> g_stacks;  // kept for the process: fibers of later blocks reuse them

char* stack_for(size_t i) {
  while (g_stacks.size() <= i) {
    void* p = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("kvf_cuda_emu: cannot map a fiber stack");
    mprotect(p, kGuardBytes, PROT_NONE);  // overflow faults instead of corrupting the next stack
    g_stacks.push_back(static_cast<char*>(p) + kGuardBytes);
  }
  return g_stacks[i];
}

void fiber_entry() {
  Block* b = g_block;
  const int me = b->cur;
  try {
    (*b->body)();
  } catch (const std::exception& e) {
    if (b->error.empty()) b->error = std::string("thread threw: ") + e.what();
  } catch (...) {
    if (b->error.empty()) b->error = "thread threw a non-std exception";
  }
  b->fibers[me].state = State::Done;
  switch_context(b->fibers[me].ctx, b->main);  // never resumed
  __builtin_unreachable();
}

void yield_to_scheduler() {
  Block* b = g_block;
  switch_context(b->fibers[b->cur].ctx, b->main);
}

Fiber& running_fiber(const char* what) {
  if (g_block == nullptr || g_block->cur < 0)
    throw std::logic_error(std::string("kvf_cuda_emu: ") + what + " called outside a kernel");
  return g_block->fibers[g_block->cur];
}

std::string describe(const Block& b, const std::string& msg) { return "kvf_cuda_emu: " + b.where + ": " + msg; }

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::Shfl: return "__shfl_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::MatchAny: return "__match_any_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Sync: return "__syncwarp";
  }
  return "?";
}

// Resolves every warp whose waiting lanes form a complete collective. Throws on a malformed one.
bool resolve_warps(Block& b) {
  const int n = static_cast<int>(b.fibers.size());
  bool resolved = false;
  for (int base = 0; base < n; base += 32) {
    const int lanes = std::min(32, n - base);
    int first = -1;
    for (int l = 0; l < lanes; ++l)
      if (b.fibers[base + l].state == State::AtWarp) {
        first = l;
        break;
      }
    if (first < 0) continue;
    const Fiber& f0 = b.fibers[base + first];
    std::ostringstream err;
    for (int l = 0; l < lanes; ++l) {
      const Fiber& f = b.fibers[base + l];
      const bool named = (f0.mask >> l) & 1u;
      if (f.state == State::AtWarp && (f.op != f0.op || f.mask != f0.mask || f.width != f0.width))
        err << "warp " << base / 32 << ": lane " << l << " waits in " << op_name(f.op) << " (mask 0x" << std::hex
            << f.mask << std::dec << ") while lane " << first << " waits in " << op_name(f0.op) << " (mask 0x"
            << std::hex << f0.mask << std::dec << ")";
      else if (f.state == State::AtWarp && !named)
        err << "warp " << base / 32 << ": lane " << l << " calls " << op_name(f.op) << " with a mask (0x" << std::hex
            << f.mask << std::dec << ") that does not name itself";
      else if (named && f.state == State::Done)
        err << "warp " << base / 32 << ": lane " << l << " is named in " << op_name(f0.op) << "'s mask 0x" << std::hex
            << f0.mask << std::dec << " but has exited";
      else if (named && f.state == State::AtBarrier)
        err << "warp " << base / 32 << ": lane " << l << " waits at __syncthreads while lanes named in "
            << op_name(f0.op) << "'s mask 0x" << std::hex << f0.mask << std::dec << " wait for it";
      if (!err.str().empty()) throw std::runtime_error(describe(b, err.str()));
    }
    for (int l = lanes; l < 32; ++l)
      if ((f0.mask >> l) & 1u)
        throw std::runtime_error(describe(b, "warp " + std::to_string(base / 32) + ": " + op_name(f0.op) +
                                                 " names lane " + std::to_string(l) +
                                                 ", which the block does not have"));
    const int width = f0.width;
    if (width < 1 || width > 32 || (width & (width - 1)) != 0)
      throw std::runtime_error(describe(b, std::string(op_name(f0.op)) + ": width " + std::to_string(width) +
                                               " is not a power of two in 1..32"));
    for (int l = 0; l < lanes; ++l) {
      Fiber& f = b.fibers[base + l];
      if (f.state != State::AtWarp) continue;
      const int seg = (l / width) * width;
      int src = l;
      switch (f.op) {
        case WarpOp::Shfl: src = seg + (f.arg % width + width) % width; break;
        case WarpOp::ShflXor: src = l ^ f.arg; break;
        case WarpOp::ShflUp: src = l - f.arg; break;
        case WarpOp::ShflDown: src = l + f.arg; break;
        default: break;
      }
      switch (f.op) {
        case WarpOp::Shfl:
        case WarpOp::ShflXor:
        case WarpOp::ShflUp:
        case WarpOp::ShflDown:
          if (src < seg || src >= seg + width) src = l;  // out of the lane's segment: its own value
          if (!((f0.mask >> src) & 1u))
            throw std::runtime_error(describe(b, "warp " + std::to_string(base / 32) + ": lane " + std::to_string(l) +
                                                     " reads lane " + std::to_string(src) + " in " + op_name(f.op) +
                                                     ", which its mask does not name"));
          f.result = b.fibers[base + src].value;
          break;
        case WarpOp::MatchAny: {
          uint64_t m = 0;
          for (int k = 0; k < lanes; ++k)
            if (((f0.mask >> k) & 1u) && b.fibers[base + k].value == f.value) m |= 1ull << k;
          f.result = m;
          break;
        }
        case WarpOp::Ballot: {
          uint64_t m = 0;
          for (int k = 0; k < lanes; ++k)
            if (((f0.mask >> k) & 1u) && b.fibers[base + k].value != 0) m |= 1ull << k;
          f.result = m;
          break;
        }
        case WarpOp::Sync: f.result = 0; break;
      }
    }
    for (int l = 0; l < lanes; ++l)
      if (b.fibers[base + l].state == State::AtWarp) b.fibers[base + l].state = State::Runnable;
    resolved = true;
  }
  return resolved;
}

void run_block(Block& b) {
  const int n = static_cast<int>(b.fibers.size());
  for (int i = 0; i < n; ++i) {
    Fiber& f = b.fibers[i];
    f.state = State::Runnable;
    make_context(f.ctx, stack_for(static_cast<size_t>(i)), kStackBytes, fiber_entry);
  }
  for (;;) {
    for (int k = 0; k < n; ++k) {
      const int i = g_thread_order == Order::Forward ? k : n - 1 - k;
      if (b.fibers[i].state != State::Runnable) continue;
      b.cur = i;
      switch_context(b.main, b.fibers[i].ctx);
      b.cur = -1;
      if (!b.error.empty()) throw std::runtime_error(describe(b, "thread " + std::to_string(i) + ": " + b.error));
    }
    int done = 0, at_barrier = 0;
    for (const Fiber& f : b.fibers) {
      done += f.state == State::Done;
      at_barrier += f.state == State::AtBarrier;
    }
    if (done == n) return;
    if (resolve_warps(b)) continue;
    if (at_barrier + done == n) {  // exited threads count as arrived (as on sm_70+)
      for (Fiber& f : b.fibers)
        if (f.state == State::AtBarrier) f.state = State::Runnable;
      continue;
    }
    throw std::runtime_error(describe(b, "deadlock: no thread can run"));
  }
}

}  // namespace

void set_thread_order(Order o) { g_thread_order = o; }
void set_block_order(Order o) { g_block_order = o; }
Order thread_order() { return g_thread_order; }
Order block_order() { return g_block_order; }

const ThreadContext& current() {
  if (g_block == nullptr || g_block->cur < 0) return g_host_context;
  return g_block->fibers[g_block->cur].tc;
}

void sync_threads() {
  Fiber& f = running_fiber("__syncthreads");
  f.state = State::AtBarrier;
  yield_to_scheduler();
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width) {
  Fiber& f = running_fiber(op_name(op));
  f.op = op;
  f.mask = mask;
  f.value = value;
  f.arg = arg;
  f.width = width;
  f.state = State::AtWarp;
  yield_to_scheduler();
  return f.result;
}

void* dynamic_shared_bytes() {
  running_fiber("dynamic shared memory");
  return g_block->dynamic_shared.empty() ? nullptr : g_block->dynamic_shared.data();
}

void set_max_dynamic_shared(const void* kernel, int bytes) { g_max_dynamic[kernel] = bytes; }

cudaError_t take_last_error() {
  const cudaError_t e = g_last_error;
  g_last_error = cudaSuccess;
  return e;
}
cudaError_t peek_last_error() { return g_last_error; }

void run_grid(const void* kernel, const char* name, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body) {
  if (g_block != nullptr) throw std::logic_error("kvf_cuda_emu: a kernel launched from a kernel");
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    g_last_error = cudaErrorInvalidConfiguration;
    return;
  }
  const auto it = g_max_dynamic.find(kernel);
  const size_t allowed = it == g_max_dynamic.end() ? 48 * 1024 : static_cast<size_t>(std::max(it->second, 48 * 1024));
  if (smem > allowed) {
    g_last_error = cudaErrorInvalidValue;
    return;
  }
  Block b;
  b.fibers.resize(threads);
  b.body = &body;
  const uint64_t blocks = uint64_t{grid.x} * grid.y * grid.z;
  g_block = &b;
  try {
    for (uint64_t k = 0; k < blocks; ++k) {
      const uint64_t lin = g_block_order == Order::Forward ? k : blocks - 1 - k;
      const uint3 bi{static_cast<unsigned>(lin % grid.x), static_cast<unsigned>(lin / grid.x % grid.y),
                     static_cast<unsigned>(lin / grid.x / grid.y)};
      std::ostringstream where;
      where << name << " block (" << bi.x << "," << bi.y << "," << bi.z << ")";
      b.where = where.str();
      b.dynamic_shared.assign(smem, 0xFF);  // poison: a read before a write is NaN / all-ones
      for (uint64_t t = 0; t < threads; ++t) {
        ThreadContext& tc = b.fibers[t].tc;
        tc.thread_idx = {static_cast<unsigned>(t % block.x), static_cast<unsigned>(t / block.x % block.y),
                         static_cast<unsigned>(t / block.x / block.y)};
        tc.block_idx = bi;
        tc.block_dim = block;
        tc.grid_dim = grid;
      }
      run_block(b);
    }
  } catch (...) {
    g_block = nullptr;
    throw;
  }
  g_block = nullptr;
}

}  // namespace kvf_emu
