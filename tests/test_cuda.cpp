// The CUDA executors (kernels/cuda) against the CPU ones, exactly: kept positions and compacted K/V must be the
// same, on random layers (MHA and GQA, batch 1 and 2, S up to 131072, ratios 0 .. 0.9) and on adversarial scores
// (all equal, +-0, +-inf, NaN). Cases that need a GPU skip with a warning saying why when none is usable; the
// argument checks that fail before any launch run everywhere.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#undef CHECK  // c10's glog-style CHECK (c10/util/logging_is_not_google_glog.h): the CHECKs below are Catch's
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/executor.hpp"
#include "kernels/cuda/cuda_press.hpp"
#include "kernels/cuda/device_info.hpp"
#include "kernels/cuda/select_topn.cuh"
#include "kernels/cuda/token_local.cuh"
#include "policies/granularity/token.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/scorers/streaming_llm.hpp"
#include "policies/selection.hpp"
#include "policies/selectors/topk.hpp"

using namespace kvf;

#define KVF_SKIP_WITHOUT_GPU()                                    \
  do {                                                            \
    if (cuda::device_count() == 0) {                              \
      WARN("skipped: " << cuda::no_device_reason());              \
      return;                                                     \
    }                                                             \
  } while (0)

namespace {

const std::vector<int64_t> kSeqs = {1, 7, 64, 1000, 4096, 40000, 131072};
const std::vector<double> kRatios = {0.0, 0.25, 0.5, 0.9};

// Uniform [-1, 1) from a counter hash: fast enough for 10^8 values per layer.
void fill(std::vector<float>& v, uint32_t seed) {
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ (seed * 0x9E3779B9u);
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    v[i] = static_cast<float>(h) * (2.f / 4294967296.f) - 1.f;
  }
}

at::Tensor to_gpu(const std::vector<float>& v, std::vector<int64_t> shape) {
  return at::from_blob(const_cast<float*>(v.data()), shape, at::kFloat).to(at::kCUDA);
}
template <class T>
std::vector<T> to_host(const at::Tensor& t) {
  const at::Tensor c = t.cpu().contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

struct Layer {
  int64_t B, Hq, H, S, d;
  std::vector<float> keys, values;
  LayerInputs in;
  Layer(int64_t B_, int64_t Hq_, int64_t H_, int64_t S_, int64_t d_, uint32_t seed) : B(B_), Hq(Hq_), H(H_), S(S_), d(d_) {
    keys.resize(static_cast<size_t>(B * H * S * d));
    values.resize(keys.size());
    fill(keys, seed);
    fill(values, seed + 1000);
    in.batch = B;
    in.q_heads = Hq;
    in.kv_heads = H;
    in.seq = in.seq_stride = in.tokens = in.token_stride = in.rope_rows = S;
    in.head_dim = d;
    in.num_layers = 1;
    in.keys = keys.data();
    in.values = values.data();
  }
};

template <class Sc>
PressOutput run_cpu(const Layer& L, double cr) {
  using P = Press<Sc, selectors::TopK, granularity::Token>;
  typename P::Params p;
  p.compression_ratio = cr;
  PressOutput out;
  CpuExecutor<P>::run(p, L.in, out);
  return out;
}

// The kept K/V rows of `positions` ((B*H, n) ascending), head after head, gathered on the host.
void host_gather(const Layer& L, const std::vector<int32_t>& positions, int64_t n, std::vector<float>& k,
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

struct Config {
  const char* name;
  int64_t B, Hq, H;
};
const Config kConfigs[] = {{"MHA B=1", 1, 4, 4}, {"GQA B=2", 2, 8, 2}};

int64_t head_dim_for(int64_t S) { return S == 1000 ? 7 : (S >= 40000 ? 64 : 128); }  // 7: the unaligned paths

}  // namespace

TEST_CASE("cuda: argument checks before any launch", "[gpu][cuda]") {
  // These fail on the host, so they run without a GPU too.
  CHECK(cuda::select_topn_workspace_bytes(8, cuda::kSelectTile) == 0);
  CHECK(cuda::select_topn_workspace_bytes(8, cuda::kSelectTile + 1) > 0);
  CHECK(cuda::select_topn_workspace_bytes(8, 100, cuda::SelectPath::Radix) > 0);
  CHECK(cuda::select_topn(nullptr, 4, 5000, 10, nullptr, nullptr, 0, nullptr, cuda::SelectPath::Block) ==
        cudaErrorInvalidConfiguration);
  CHECK(cuda::select_topn(nullptr, 4, 5000, 10, nullptr, nullptr, 0, nullptr) == cudaErrorInvalidValue);  // workspace
  CHECK(cuda::select_topn(nullptr, 4, 5000, 0, nullptr, nullptr, 0, nullptr) == cudaSuccess);  // n = 0: nothing to do
  for (const int64_t S : {1, 10, 1000})
    for (const double cr : {0.0, 0.25, 0.8, 0.9}) {
      CHECK(cuda::token_local_kept(S, cr) == (cr == 0.0 ? S : std::min(S, n_kept(S, cr))));
    }
  CHECK(cuda::has_cuda_press("knorm"));
  CHECK(cuda::has_cuda_press("streaming_llm"));
  CHECK_FALSE(cuda::has_cuda_press("snapkv"));
  const at::Tensor cpu = at::zeros({1, 1, 8, 4});
  CHECK_THROWS_WITH(cuda::compress_token_local(cpu, cpu, "snapkv", 0.5), Catch::Contains("no CUDA executor"));
  CHECK_THROWS_WITH(cuda::compress_token_local(cpu, cpu, "knorm", 0.5), Catch::Contains("must be CUDA tensors"));
}

TEST_CASE("cuda: select_topn keeps exactly top_n_positions' positions on adversarial scores", "[gpu][cuda]") {
  KVF_SKIP_WITHOUT_GPU();
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const int64_t heads = 3;
  std::mt19937 rng(5);
  TopNScratch scratch;
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
  for (const int64_t S : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{1000}, int64_t{4096}, int64_t{4097},
                          int64_t{40000}, int64_t{131072}})
    for (int kind = 0; kind < 5; ++kind) {
      std::vector<float> s(static_cast<size_t>(heads * S));
      std::uniform_int_distribution<int> pick(0, 5);
      std::normal_distribution<float> normal(0.f, 1.f);
      for (auto& x : s) {
        const float specials[] = {0.f, -0.f, inf, -inf, nan, 1.f};
        switch (kind) {
          case 0: x = 1.f; break;                                  // all equal
          case 1: x = pick(rng) % 2 ? 0.f : -0.f; break;           // +-0: one key
          case 2: x = specials[pick(rng)]; break;                  // +-inf, NaN, +-0
          case 3: x = static_cast<float>(pick(rng) % 3); break;    // few distinct values
          default: x = normal(rng); break;
        }
      }
      const at::Tensor g = to_gpu(s, {heads, S});
      for (const int64_t n : {int64_t{1}, S / 4, S / 2, S - 1, S}) {
        if (n < 1) continue;
        std::vector<int32_t> expect(static_cast<size_t>(heads * n));
        for (int64_t h = 0; h < heads; ++h) top_n_positions(s.data() + h * S, S, n, scratch, expect.data() + h * n);
        for (const auto path : {cuda::SelectPath::Auto, cuda::SelectPath::Block, cuda::SelectPath::Radix}) {
          if (path == cuda::SelectPath::Block && S > cuda::kSelectTile) continue;
          const size_t ws_bytes = cuda::select_topn_workspace_bytes(heads, S, path);
          const at::Tensor ws = at::empty({static_cast<int64_t>(ws_bytes)}, g.options().dtype(at::kByte));
          const at::Tensor out = at::full({heads, n}, -1, g.options().dtype(at::kInt));
          INFO("S=" << S << " kind=" << kind << " n=" << n << " path=" << static_cast<int>(path));
          REQUIRE(cuda::select_topn(g.data_ptr<float>(), heads, S, n, out.data_ptr<int32_t>(),
                                    ws_bytes ? ws.data_ptr() : nullptr, ws_bytes, stream, path) == cudaSuccess);
          CHECK(to_host<int32_t>(out) == expect);
        }
      }
    }
}

TEST_CASE("cuda: streaming_llm matches the CPU executor exactly", "[gpu][cuda]") {
  KVF_SKIP_WITHOUT_GPU();
  for (const auto& c : kConfigs)
    for (const int64_t S : kSeqs) {
      const Layer L(c.B, c.Hq, c.H, S, head_dim_for(S), static_cast<uint32_t>(S));
      const at::Tensor K = to_gpu(L.keys, {c.B, c.H, S, L.d}), V = to_gpu(L.values, {c.B, c.H, S, L.d});
      if (S <= 4) {  // kvpress asserts S > n_sink
        CHECK_THROWS_WITH(cuda::compress_token_local(K, V, "streaming_llm", 0.5), Catch::Contains("n_sink=4"));
        continue;
      }
      for (const double cr : kRatios) {
        INFO(c.name << " S=" << S << " cr=" << cr);
        const PressOutput cpu = run_cpu<scorers::StreamingLLM>(L, cr);
        const auto gpu = cuda::compress_token_local(K, V, "streaming_llm", cr);
        REQUIRE(cpu.kept.uniform());
        CHECK(gpu.positions.size(2) == cpu.kept.count(0, 0));
        CHECK(to_host<int32_t>(gpu.positions) == cpu.kept.positions);
        CHECK(same_bits(to_host<float>(gpu.keys), cpu.keys));
        CHECK(same_bits(to_host<float>(gpu.values), cpu.values));
        if (cr == 0.0) {
          CHECK_FALSE(gpu.scores.defined());
        } else {
          CHECK(same_bits(to_host<float>(gpu.scores), cpu.scores));
        }
      }
    }
}

TEST_CASE("cuda: knorm scores are Knorm::token_score's and its selection is the CPU's", "[gpu][cuda]") {
  KVF_SKIP_WITHOUT_GPU();
  TopNScratch scratch;
  for (const auto& c : kConfigs)
    for (const int64_t S : kSeqs) {
      const Layer L(c.B, c.Hq, c.H, S, head_dim_for(S), static_cast<uint32_t>(7 * S));
      const at::Tensor K = to_gpu(L.keys, {c.B, c.H, S, L.d}), V = to_gpu(L.values, {c.B, c.H, S, L.d});
      // The policy's own per-token math on the host (sequential sum, no FMA): the GPU runs the same function.
      std::vector<float> token_scores(static_cast<size_t>(c.B * c.H * S));
      for (size_t r = 0; r < token_scores.size(); ++r)
        token_scores[r] = scorers::Knorm::token_score(L.keys.data() + r * L.d, L.d);
      for (const double cr : kRatios) {
        INFO(c.name << " S=" << S << " d=" << L.d << " cr=" << cr);
        const PressOutput cpu = run_cpu<scorers::Knorm>(L, cr);
        const auto gpu = cuda::compress_token_local(K, V, "knorm", cr);
        const int64_t n = gpu.positions.size(2);
        REQUIRE(n == (cr == 0.0 ? S : cpu.kept.count(0, 0)));
        if (cr == 0.0) {  // nothing scored; everything kept
          CHECK_FALSE(gpu.scores.defined());
          CHECK(to_host<int32_t>(gpu.positions) == cpu.kept.positions);
          CHECK(same_bits(to_host<float>(gpu.keys), cpu.keys));
          CHECK(same_bits(to_host<float>(gpu.values), cpu.values));
          continue;
        }
        const auto gpu_scores = to_host<float>(gpu.scores);
        CHECK(same_bits(gpu_scores, token_scores));
        // The CPU executor scores with Eigen's vectorised norm (another summation order): equal within rounding.
        float worst = 0.f;
        for (size_t r = 0; r < gpu_scores.size(); ++r)
          worst = std::max(worst, std::abs(gpu_scores[r] - cpu.scores[r]) / std::max(1e-30f, std::abs(cpu.scores[r])));
        CHECK(worst <= 1e-5f);
        // Selection is exact: the CPU selector (top_n_positions, what TopK runs) on the same scores.
        std::vector<int32_t> expect(static_cast<size_t>(c.B * c.H * n));
        for (int64_t i = 0; i < c.B * c.H; ++i)
          top_n_positions(token_scores.data() + i * S, S, n, scratch, expect.data() + i * n);
        const auto positions = to_host<int32_t>(gpu.positions);
        CHECK(positions == expect);
        std::vector<float> ek, ev;
        host_gather(L, expect, n, ek, ev);
        CHECK(same_bits(to_host<float>(gpu.keys), ek));
        CHECK(same_bits(to_host<float>(gpu.values), ev));
      }
    }
}

TEST_CASE("cuda: knorm on adversarial keys (zero rows, +-0, inf, NaN) keeps the CPU selector's positions", "[gpu][cuda]") {
  KVF_SKIP_WITHOUT_GPU();
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  TopNScratch scratch;
  for (const int64_t S : {int64_t{7}, int64_t{1000}, int64_t{4096}, int64_t{40000}, int64_t{131072}})
    for (const bool all_zero : {false, true}) {  // all zero: every score ties (-0)
      Layer L(1, 4, 2, S, 16, static_cast<uint32_t>(S + 3));
      for (int64_t r = 0; r < 2 * S; ++r) {
        float* k = L.keys.data() + r * L.d;
        const int64_t kind = all_zero ? 0 : r % 6;
        if (kind == 0) std::fill(k, k + L.d, 0.f);
        if (kind == 1) std::fill(k, k + L.d, -0.f);
        if (kind == 2) k[r % L.d] = inf;
        if (kind == 3) k[r % L.d] = nan;
        if (kind == 4) k[0] = 1.f;  // some rows with equal norms
      }
      const at::Tensor K = to_gpu(L.keys, {1, 2, S, L.d}), V = to_gpu(L.values, {1, 2, S, L.d});
      std::vector<float> token_scores(static_cast<size_t>(2 * S));
      for (size_t r = 0; r < token_scores.size(); ++r)
        token_scores[r] = scorers::Knorm::token_score(L.keys.data() + r * L.d, L.d);
      for (const double cr : {0.25, 0.5, 0.9}) {
        INFO("S=" << S << " all_zero=" << all_zero << " cr=" << cr);
        const auto gpu = cuda::compress_token_local(K, V, "knorm", cr);
        const int64_t n = gpu.positions.size(2);
        CHECK(same_bits(to_host<float>(gpu.scores), token_scores));
        std::vector<int32_t> expect(static_cast<size_t>(2 * n));
        for (int64_t i = 0; i < 2; ++i) top_n_positions(token_scores.data() + i * S, S, n, scratch, expect.data() + i * n);
        CHECK(to_host<int32_t>(gpu.positions) == expect);
        std::vector<float> ek, ev;
        host_gather(L, expect, n, ek, ev);
        CHECK(same_bits(to_host<float>(gpu.keys), ek));
        CHECK(same_bits(to_host<float>(gpu.values), ev));
      }
    }
}
