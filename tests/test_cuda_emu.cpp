// kvforge's CUDA kernels (kernels/cuda/*.cu) run on the CPU through kvf_cuda_emu (tests/cuda_emu): no GPU needed.
// Part 1 pins the emulator itself (warp collectives, and the faults it must report); part 2 checks the kernels
// against the host references the GPU tests use (tests/test_cuda.cpp), in both thread orders so that a missing
// barrier shows. What the emulator cannot see (timing, memory-model races within a warp, device intrinsics'
// rounding) still needs the [gpu] suites on a real device.
//
// This TU and the emulated kernels are compiled with -Dcuda=cuda_emu: kvf::cuda here is the emulated copy, so
// it can share a binary with the real kernels' library without a symbol clash.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cuda/select_topn.cuh"
#include "kernels/cuda/token_local.cuh"
#include "kvf_cuda_emu.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/scorers/streaming_llm.hpp"
#include "policies/selection.hpp"
#include "tests/cuda_emu/selftest_kernels.cuh"

using namespace kvf;
namespace st = kvf::cuda_emu_selftest;

namespace {

// Runs f once per thread order (and block order), restoring the default after.
template <class F>
void in_both_orders(F&& f) {
  for (const auto o : {kvf_emu::Order::Forward, kvf_emu::Order::Reverse}) {
    kvf_emu::set_thread_order(o);
    kvf_emu::set_block_order(o);
    INFO("emulator order: " << (o == kvf_emu::Order::Forward ? "forward" : "reverse"));
    f();
  }
  kvf_emu::set_thread_order(kvf_emu::Order::Forward);
  kvf_emu::set_block_order(kvf_emu::Order::Forward);
}

void fill_uniform(std::vector<float>& v, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& x : v) x = u(rng);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

// ---- part 1: the emulator ---------------------------------------------------------------------------------------

TEST_CASE("cuda-emu: warp collectives give CUDA's results", "[cuda-emu]") {
  const int threads = 64;
  std::vector<int64_t> out(7 * threads, -1);
  REQUIRE(st::warp_ops(threads, out.data()) == cudaSuccess);
  for (int t = 0; t < threads; ++t) {
    const int lane = t % 32, base = t - lane;
    INFO("thread " << t);
    CHECK(out[7 * t + 0] == base + 3);
    CHECK(out[7 * t + 1] == (t ^ 1));
    CHECK(out[7 * t + 2] == (lane < 31 ? t + 1 : t));  // past the warp's end: the lane's own value
    CHECK(out[7 * t + 3] == (lane >= 2 ? t - 2 : t));
    int64_t match = 0;
    for (int k = 0; k < 32; ++k)
      if ((base + k) % 3 == t % 3) match |= int64_t{1} << k;
    CHECK(out[7 * t + 4] == match);
    CHECK(out[7 * t + 5] == int64_t{0xAAAAAAAA});
    CHECK(out[7 * t + 6] == 32 * base + 31 * 32 / 2);
  }
}

TEST_CASE("cuda-emu: a missing __syncthreads gives a wrong result in one of the thread orders", "[cuda-emu]") {
  const int n = 96;
  std::vector<int> in(n), out(n);
  int run = 0;
  for (const bool barrier : {true, false}) {
    bool all_right = true;
    in_both_orders([&] {
      ++run;
      for (int t = 0; t < n; ++t) in[t] = 1000 * run + t;  // new values: stale shared memory is visible
      REQUIRE(st::neighbour_sum(in.data(), n, barrier, out.data()) == cudaSuccess);
      for (int t = 0; t < n; ++t) all_right = all_right && out[t] == in[t] + in[(t + 1) % n];
    });
    INFO("with barrier: " << barrier);
    CHECK(all_right == barrier);
  }
}

TEST_CASE("cuda-emu: undefined warp and barrier use is reported, naming the kernel", "[cuda-emu]") {
  std::vector<int> out(32);
  CHECK_THROWS_WITH(st::shfl_after_exit(out.data()),
                    Catch::Contains("shfl_after_exit_kernel") && Catch::Contains("has exited"));
  CHECK_THROWS_WITH(st::divergent_barrier(out.data()),
                    Catch::Contains("divergent_barrier_kernel") && Catch::Contains("__syncthreads"));
  // The emulator is usable again after a fault.
  std::vector<int64_t> w(7 * 32);
  CHECK(st::warp_ops(32, w.data()) == cudaSuccess);
}

TEST_CASE("cuda-emu: a CUB TempStorage reused without __syncthreads corrupts the second collective", "[cuda-emu]") {
  std::vector<int64_t> out(128);
  for (const bool barrier : {true, false}) {
    bool all_right = true;
    in_both_orders([&] {
      REQUIRE(st::scan_twice(128, barrier, out.data()) == cudaSuccess);
      for (int t = 0; t < 128; ++t) all_right = all_right && out[t] == t + int64_t{t} * (t - 1) / 2;
    });
    INFO("with barrier: " << barrier);
    CHECK(all_right == barrier);
  }
}

TEST_CASE("cuda-emu: dynamic shared memory above 48 KiB needs the opt-in, up to the device's 227 KiB",
          "[cuda-emu]") {
  std::vector<float> out(64, -1.f);
  CHECK(st::big_shared(64 * 1024, false, out.data()) == cudaErrorInvalidValue);
  CHECK(out[0] == -1.f);  // not launched
  REQUIRE(st::big_shared(64 * 1024, true, out.data()) == cudaSuccess);
  for (int t = 0; t < 64; ++t) CHECK(out[t] == static_cast<float>((t + 1) % 64));
  CHECK(st::big_shared(228 * 1024, true, out.data()) == cudaErrorInvalidValue);
}

// ---- part 2: the kernels ------------------------------------------------------------------------------------------

TEST_CASE("cuda-emu: select_topn keeps exactly top_n_positions' positions, both paths, adversarial scores",
          "[cuda-emu]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t heads = 3;
  std::mt19937 rng(5);
  TopNScratch scratch;
  for (const int64_t S : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{1000}, int64_t{4096}, int64_t{4097},
                          int64_t{20000}})
    for (int kind = 0; kind < 5; ++kind) {
      std::vector<float> s(static_cast<size_t>(heads * S));
      std::uniform_int_distribution<int> pick(0, 5);
      std::normal_distribution<float> normal(0.f, 1.f);
      for (auto& x : s) {
        const float specials[] = {0.f, -0.f, inf, -inf, nan, 1.f};
        switch (kind) {
          case 0: x = 1.f; break;                                // all equal
          case 1: x = pick(rng) % 2 ? 0.f : -0.f; break;         // +-0: one key
          case 2: x = specials[pick(rng)]; break;                // +-inf, NaN, +-0
          case 3: x = static_cast<float>(pick(rng) % 3); break;  // few distinct values
          default: x = normal(rng); break;
        }
      }
      for (const int64_t n : {int64_t{1}, S / 4, S / 2, S - 1, S}) {
        if (n < 1) continue;
        std::vector<int32_t> expect(static_cast<size_t>(heads * n));
        for (int64_t h = 0; h < heads; ++h) top_n_positions(s.data() + h * S, S, n, scratch, expect.data() + h * n);
        for (const auto path : {cuda::SelectPath::Block, cuda::SelectPath::Radix}) {
          if (path == cuda::SelectPath::Block && S > cuda::kSelectTile) continue;
          std::vector<unsigned char> ws(cuda::select_topn_workspace_bytes(heads, S, path));
          INFO("S=" << S << " kind=" << kind << " n=" << n << " path=" << static_cast<int>(path));
          auto check = [&] {
            std::vector<int32_t> out(static_cast<size_t>(heads * n), -1);
            REQUIRE(cuda::select_topn(s.data(), heads, S, n, out.data(), ws.empty() ? nullptr : ws.data(), ws.size(),
                                      nullptr, path) == cudaSuccess);
            CHECK(out == expect);
          };
          // Every case forward; the reverse order on the random scores (it is what exposes ordering bugs).
          if (kind == 4) in_both_orders(check);
          else check();
        }
      }
    }
}

TEST_CASE("cuda-emu: select_topn with nan_high == false ranks NaN below every number (AdaKV's global prune)",
          "[cuda-emu]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const int64_t S : {int64_t{50}, int64_t{5000}}) {
    std::vector<float> s(static_cast<size_t>(S));
    fill_uniform(s, static_cast<uint32_t>(S));
    for (int64_t t = 0; t < S; t += 3) s[t] = nan;
    const int64_t n = S / 2;
    // Reference: NaN as -inf minus one step, i.e. below every real score, ties to the lowest positions.
    std::vector<int32_t> idx(static_cast<size_t>(S));
    for (int64_t t = 0; t < S; ++t) idx[t] = static_cast<int32_t>(t);
    auto rank = [&](int32_t t) { return std::isnan(s[t]) ? -std::numeric_limits<double>::infinity() : s[t]; };
    std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return rank(a) > rank(b); });
    std::vector<int32_t> expect(idx.begin(), idx.begin() + n);
    std::sort(expect.begin(), expect.end());
    for (const auto path : {cuda::SelectPath::Auto, cuda::SelectPath::Radix}) {
      std::vector<unsigned char> ws(cuda::select_topn_workspace_bytes(1, S, path));
      std::vector<int32_t> out(static_cast<size_t>(n), -1);
      REQUIRE(cuda::select_topn(s.data(), 1, S, n, out.data(), ws.empty() ? nullptr : ws.data(), ws.size(), nullptr,
                                path, false) == cudaSuccess);
      INFO("S=" << S << " path=" << static_cast<int>(path));
      CHECK(out == expect);
    }
  }
}

namespace {

struct HostLayer {
  int64_t B, H, S, d;
  std::vector<float> keys, values;
  HostLayer(int64_t B_, int64_t H_, int64_t S_, int64_t d_, uint32_t seed) : B(B_), H(H_), S(S_), d(d_) {
    keys.resize(static_cast<size_t>(B * H * S * d));
    values.resize(keys.size());
    fill_uniform(keys, seed);
    fill_uniform(values, seed + 1);
  }
};

// The kept rows of `positions` ((B*H, n) ascending), head after head.
void host_gather(const HostLayer& L, const std::vector<int32_t>& positions, int64_t n, std::vector<float>& k,
                 std::vector<float>& v) {
  k.clear();
  v.clear();
  for (int64_t i = 0; i < L.B * L.H; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t row = (i * L.S + positions[static_cast<size_t>(i * n + j)]) * L.d;
      k.insert(k.end(), L.keys.begin() + row, L.keys.begin() + row + L.d);
      v.insert(v.end(), L.values.begin() + row, L.values.begin() + row + L.d);
    }
}

struct TokenRun {
  std::vector<float> scores, keys, values;
  std::vector<int32_t> positions;
  int64_t n = 0;
};

TokenRun run_token_local(const HostLayer& L, cuda::TokenScorer scorer, double cr) {
  const cuda::TokenLocalLayer layer{L.keys.data(), L.values.data(), L.B, L.H, L.S, L.d};
  cuda::TokenLocalPress press;
  press.scorer = scorer;
  press.compression_ratio = cr;
  TokenRun r;
  r.n = cuda::token_local_kept(L.S, cr);
  const auto heads = static_cast<size_t>(L.B * L.H);
  r.scores.assign(heads * static_cast<size_t>(L.S), -7.f);
  r.positions.assign(heads * static_cast<size_t>(r.n), -1);
  r.keys.assign(heads * static_cast<size_t>(r.n * L.d), -7.f);
  r.values.assign(r.keys.size(), -7.f);
  std::vector<unsigned char> ws(cuda::token_local_workspace_bytes(layer));
  const cuda::TokenLocalOutput out{r.scores.data(), r.positions.data(), r.keys.data(), r.values.data()};
  REQUIRE(cuda::run_token_local(layer, press, out, ws.empty() ? nullptr : ws.data(), ws.size(), nullptr) ==
          cudaSuccess);
  return r;
}

}  // namespace

TEST_CASE("cuda-emu: knorm's fused executor: Knorm::token_score's scores, the CPU selector's rows", "[cuda-emu]") {
  TopNScratch scratch;
  // d = 7: the unaligned copy paths; d = 200: the opt-in shared-memory tile (> 48 KiB); d = 1000: the direct kernel
  // (a tile beyond 227 KiB).
  struct Shape {
    int64_t B, H, S, d;
  };
  for (const Shape sh : {Shape{1, 2, 1, 128}, Shape{2, 2, 7, 128}, Shape{1, 3, 1000, 7}, Shape{2, 1, 4097, 64},
                         Shape{1, 2, 300, 200}, Shape{1, 1, 130, 1000}, Shape{1, 1, 20000, 16}})
    for (const double cr : {0.0, 0.25, 0.5, 0.9}) {
      const HostLayer L(sh.B, sh.H, sh.S, sh.d, static_cast<uint32_t>(sh.S * 7 + sh.d));
      INFO("B=" << sh.B << " H=" << sh.H << " S=" << sh.S << " d=" << sh.d << " cr=" << cr);
      auto check = [&] {
        const TokenRun g = run_token_local(L, cuda::TokenScorer::Knorm, cr);
        if (cr == 0.0) {  // kvpress: nothing scored, everything kept
          REQUIRE(g.n == L.S);
          CHECK(std::all_of(g.scores.begin(), g.scores.end(), [](float x) { return x == -7.f; }));
          CHECK(same_bits(g.keys, L.keys));
          CHECK(same_bits(g.values, L.values));
          return;
        }
        std::vector<float> expect_scores(static_cast<size_t>(L.B * L.H * L.S));
        for (size_t r = 0; r < expect_scores.size(); ++r)
          expect_scores[r] = scorers::Knorm::token_score(L.keys.data() + r * L.d, L.d);
        CHECK(same_bits(g.scores, expect_scores));
        std::vector<int32_t> expect(static_cast<size_t>(L.B * L.H * g.n));
        for (int64_t i = 0; i < L.B * L.H; ++i)
          top_n_positions(expect_scores.data() + i * L.S, L.S, g.n, scratch, expect.data() + i * g.n);
        CHECK(g.positions == expect);
        std::vector<float> ek, ev;
        host_gather(L, expect, g.n, ek, ev);
        CHECK(same_bits(g.keys, ek));
        CHECK(same_bits(g.values, ev));
      };
      if (sh.S <= 4097) in_both_orders(check);
      else check();
    }
}

TEST_CASE("cuda-emu: streaming_llm's fused executor keeps the sink and the recent window", "[cuda-emu]") {
  for (const int64_t S : {int64_t{5}, int64_t{64}, int64_t{1000}, int64_t{5000}})
    for (const double cr : {0.25, 0.5, 0.9}) {
      const HostLayer L(2, 2, S, 8, static_cast<uint32_t>(S));
      INFO("S=" << S << " cr=" << cr);
      const TokenRun g = run_token_local(L, cuda::TokenScorer::StreamingLLM, cr);
      std::vector<float> expect_scores(static_cast<size_t>(4 * S));
      int64_t lo = 0, hi = 0;
      scorers::StreamingLLM::pruned_range(S, 4, cr, lo, hi);
      for (int64_t i = 0; i < 4 * S; ++i) expect_scores[i] = scorers::StreamingLLM::slot_score(i % S, lo, hi);
      CHECK(same_bits(g.scores, expect_scores));
      TopNScratch scratch;
      std::vector<int32_t> expect(static_cast<size_t>(4 * g.n));
      for (int64_t i = 0; i < 4; ++i) top_n_positions(expect_scores.data() + i * S, S, g.n, scratch, expect.data() + i * g.n);
      CHECK(g.positions == expect);
      std::vector<float> ek, ev;
      host_gather(L, expect, g.n, ek, ev);
      CHECK(same_bits(g.keys, ek));
      CHECK(same_bits(g.values, ev));
    }
  const HostLayer tiny(1, 1, 4, 8, 1);  // kvpress asserts S > n_sink
  const cuda::TokenLocalLayer layer{tiny.keys.data(), tiny.values.data(), 1, 1, 4, 8};
  cuda::TokenLocalPress press;
  press.scorer = cuda::TokenScorer::StreamingLLM;
  press.compression_ratio = 0.5;
  std::vector<float> s(4), k(32), v(32);
  std::vector<int32_t> p(4);
  CHECK(cuda::run_token_local(layer, press, {s.data(), p.data(), k.data(), v.data()}, nullptr, 0, nullptr) ==
        cudaErrorInvalidValue);
}
