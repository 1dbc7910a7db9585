#pragma once
// kvf_cuda_emu: runs kvforge's own CUDA kernels (kernels/cuda/*.cu) on the CPU, so that their logic is tested on
// machines without a GPU. It is a test tool, not a backend: slow (one fiber per CUDA thread), single-threaded, and
// it models only what our kernels use.
//
// What it models, and so can catch:
//   - every thread of a block is a fiber; __syncthreads is a real barrier, a warp collective (__shfl*_sync,
//     __match_any_sync, __ballot_sync, __syncwarp) waits for every lane named in its mask. A lane named in a mask
//     that has exited or waits elsewhere, a barrier some threads never reach, mixed collectives in one warp: each
//     is an error, as it is undefined behaviour on a GPU;
//   - threads run in a configurable order (forward or reverse) and blocks too, so a missing barrier between a
//     write and another thread's read shows up in one of the orders;
//   - CUB's block collectives (tests/cuda_emu/include/cub) go through their TempStorage, so reusing a storage
//     union without the __syncthreads CUB asks for corrupts results here too;
//   - dynamic shared memory is poisoned (0xFF bytes: NaN floats) at every block; launches above 48 KiB of it need
//     cudaFuncSetAttribute first; grid and block limits are checked.
// What it does not: memory-model races inside a warp, bank conflicts, timing, out-of-bounds global accesses
// (run under ASan for those), atomics' contention, float differences of device intrinsics (expf here is glibc's).
//
// Kernel sources are rewritten (tests/cuda_emu/emu_source.py) so g++ can compile them: a launch
// `k<<<g, b, smem, s>>>(args)` becomes `::kvf_emu::launch(k, "k", g, b, smem, s)(args)` and `extern __shared__ T x[];`
// becomes a pointer to the launch's dynamic shared memory. Everything else compiles as written.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_runtime.h"

namespace kvf_emu {

enum class Order { Forward, Reverse };

// Order in which the threads of a block, and the blocks of a grid, are run. Default Forward.
void set_thread_order(Order o);
void set_block_order(Order o);
Order thread_order();
Order block_order();

struct ThreadContext {
  uint3 thread_idx{0, 0, 0};
  uint3 block_idx{0, 0, 0};
  dim3 block_dim;
  dim3 grid_dim;
};
const ThreadContext& current();

// Block barrier (__syncthreads).
void sync_threads();

// Warp collectives. `value` travels as 64 raw bits; the result is the bits of the chosen lane's value.
enum class WarpOp { Shfl, ShflXor, ShflUp, ShflDown, MatchAny, Ballot, Sync };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width);

// Dynamic shared memory of the running block (the launch's smem bytes).
void* dynamic_shared_bytes();
template <class T>
T* dynamic_shared() {
  return static_cast<T*>(dynamic_shared_bytes());
}

// Runs `body` once per thread of every block. Throws std::runtime_error naming the kernel's fault.
void run_grid(const void* kernel, const char* name, dim3 grid, dim3 block, size_t smem, const std::function<void()>& body);

// cudaFuncSetAttribute(kernel, MaxDynamicSharedMemorySize, bytes) as recorded for launch checks.
void set_max_dynamic_shared(const void* kernel, int bytes);

template <class... P>
struct Launcher {
  void (*kernel)(P...);
  const char* name;
  dim3 grid, block;
  size_t smem;
  template <class... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    // Kernel parameters are copied at launch; every thread sees the same values.
    const std::tuple<std::decay_t<P>...> params(std::forward<A>(a)...);
    auto* k = kernel;
    run_grid(reinterpret_cast<const void*>(k), name, grid, block, smem, [&params, k] {
      std::tuple<std::decay_t<P>...> mine = params;  // by-value parameters a thread may modify
      std::apply(k, mine);
    });
  }
};

template <class... P>
Launcher<P...> launch(void (*kernel)(P...), const char* name, dim3 grid, dim3 block, size_t smem = 0,
                      cudaStream_t = nullptr) {
  return Launcher<P...>{kernel, name, grid, block, smem};
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof v);
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

}  // namespace kvf_emu

// ---- CUDA's built-in variables and device functions ----------------------------------------------------------
#define threadIdx (::kvf_emu::current().thread_idx)
#define blockIdx (::kvf_emu::current().block_idx)
#define blockDim (::kvf_emu::current().block_dim)
#define gridDim (::kvf_emu::current().grid_dim)
constexpr int warpSize = 32;

inline void __syncthreads() { ::kvf_emu::sync_threads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::kvf_emu::warp_collective(::kvf_emu::WarpOp::Sync, mask, 0, 0, 32);
}
inline void __threadfence() {}
inline void __threadfence_block() {}

template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::kvf_emu::from_bits<T>(
      ::kvf_emu::warp_collective(::kvf_emu::WarpOp::Shfl, mask, ::kvf_emu::to_bits(v), src, width));
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::kvf_emu::from_bits<T>(
      ::kvf_emu::warp_collective(::kvf_emu::WarpOp::ShflXor, mask, ::kvf_emu::to_bits(v), lane_mask, width));
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::kvf_emu::from_bits<T>(::kvf_emu::warp_collective(::kvf_emu::WarpOp::ShflUp, mask, ::kvf_emu::to_bits(v),
                                                            static_cast<int>(delta), width));
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::kvf_emu::from_bits<T>(::kvf_emu::warp_collective(
      ::kvf_emu::WarpOp::ShflDown, mask, ::kvf_emu::to_bits(v), static_cast<int>(delta), width));
}
template <class T>
unsigned __match_any_sync(unsigned mask, T v) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  return static_cast<unsigned>(
      ::kvf_emu::warp_collective(::kvf_emu::WarpOp::MatchAny, mask, ::kvf_emu::to_bits(v), 0, 32));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return static_cast<unsigned>(
      ::kvf_emu::warp_collective(::kvf_emu::WarpOp::Ballot, mask, pred != 0 ? 1u : 0u, 0, 32));
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == __ballot_sync(mask, 1); }

// Fibers run one at a time, so read-modify-write is atomic as written.
template <class T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = static_cast<T>(old + v);
  return old;
}
inline unsigned atomicAdd(unsigned* p, int v) { return atomicAdd(p, static_cast<unsigned>(v)); }
template <class T>
T atomicMax(T* p, T v) {
  const T old = *p;
  *p = old < v ? v : old;
  return old;
}
template <class T>
T atomicMin(T* p, T v) {
  const T old = *p;
  *p = v < old ? v : old;
  return old;
}
template <class T>
T atomicExch(T* p, T v) {
  const T old = *p;
  *p = v;
  return old;
}
template <class T>
T atomicCAS(T* p, T compare, T v) {
  const T old = *p;
  if (old == compare) *p = v;
  return old;
}

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffs(unsigned x) { return __builtin_ffs(static_cast<int>(x)); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline unsigned __float_as_uint(float x) { return ::kvf_emu::from_bits<unsigned>(::kvf_emu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return ::kvf_emu::from_bits<float>(::kvf_emu::to_bits(x)); }
inline int __float_as_int(float x) { return ::kvf_emu::from_bits<int>(::kvf_emu::to_bits(x)); }
inline float __int_as_float(int x) { return ::kvf_emu::from_bits<float>(::kvf_emu::to_bits(x)); }
inline long long __double_as_longlong(double x) { return ::kvf_emu::from_bits<long long>(::kvf_emu::to_bits(x)); }
inline double __longlong_as_double(long long x) { return ::kvf_emu::from_bits<double>(::kvf_emu::to_bits(x)); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }

// CUDA's global min/max overloads for integers and floats (device code calls them unqualified).
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
constexpr std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
constexpr std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}
