// The device code written with libtorch ops is device-agnostic tensor code, so it runs here on CPU tensors against
// the CPU policies, on every machine, GPU or not (on a GPU the same functions are checked end to end by
// test_cuda_executors.cpp):
//  - the scorers of kernels/cuda/device_scorers.cpp (keydiff, snapkv, tova, observed_attention,
//    expected_attention) against score_head (compose/score_layer.hpp), on the positions the press does not protect
//    (the device scorers leave the protected slots 0; the executor fills them);
//  - block_iterative (device_wrappers.cpp, the CUDA block(keydiff) executor's rounds) against the CPU's
//    Block::run_iterative.
#include "tests/test_cuda_support.hpp"

#include <string>

#include "compose/press.hpp"
#include "compose/score_layer.hpp"
#include "kernels/cpu/executor.hpp"
#include "kernels/cuda/cuda_scorers.hpp"
#include "kernels/cuda/device_wrappers.hpp"
#include "policies/granularity/block.hpp"
#include "policies/selectors/topk.hpp"

using namespace kvf;
using namespace kvf::cudatest;

namespace {

struct Shape {
  int64_t B, Hq, H, S, d;
};
const Shape kShapes[] = {{1, 4, 4, 97, 16}, {2, 8, 2, 300, 32}, {1, 6, 2, 1100, 64}};

// Largest |device - cpu| / (atol + rtol |cpu|) over the unprotected positions (<= 1 passes), with where it was.
template <class Sc>
std::string mismatch(const typename Sc::Params& p, const PressInputs& in, double rtol, double atol) {
  LayerInputs raw = in.raw();
  raw.compression_ratio = 0.5;
  const int64_t B = raw.batch, H = raw.kv_heads, S = raw.seq;
  std::vector<float> want(static_cast<size_t>(B * H * S));
  score_layer<Sc>(p, raw, want.data());
  const std::vector<float> got = floats(cuda::CudaScorer<Sc>::score(p, in, raw));
  if (got.size() != want.size()) return "device scores have " + std::to_string(got.size()) + " entries";
  const Protect pr = Sc::protect(p, raw);
  const int64_t first = std::min(pr.first, S), last = pr.kind == Protect::Kind::None ? 0 : std::min(pr.last, S - first);
  const int64_t lo = pr.kind == Protect::Kind::None ? 0 : first;
  for (int64_t i = 0; i < B * H; ++i)
    for (int64_t t = lo; t < S - last; ++t) {
      const float g = got[static_cast<size_t>(i * S + t)], w = want[static_cast<size_t>(i * S + t)];
      if (!close(g, w, rtol, atol))
        return "head " + std::to_string(i) + " position " + std::to_string(t) + ": device " + std::to_string(g) +
               " vs cpu " + std::to_string(w);
    }
  return "";
}

template <class Sc>
void check_all(const typename Sc::Params& p, bool attentions, const std::string& what, double rtol = 2e-4,
               double atol = 1e-6) {
  uint64_t seed = 11;
  for (const Shape& s : kShapes) {
    if (attentions && s.S > 400) continue;  // (B, Hq, S, S) weights stay small
    TestLayer layer(s.B, s.Hq, s.H, s.S, s.d, seed++, attentions);
    INFO(what << " B=" << s.B << " Hq=" << s.Hq << " H=" << s.H << " S=" << s.S << " d=" << s.d);
    CHECK(mismatch<Sc>(p, layer.host, rtol, atol) == "");
  }
}

}  // namespace

TEST_CASE("device scorers (libtorch ops) on host tensors match the CPU policies", "[cuda][device-scorers]") {
  SECTION("keydiff") { check_all<scorers::KeyDiff>({}, false, "keydiff"); }
  SECTION("snapkv from recomputed window queries") {
    check_all<scorers::SnapKV>({}, false, "snapkv");
    scorers::SnapKV::Params p;
    p.window_size = 8;
    p.kernel_size = 3;
    check_all<scorers::SnapKV>(p, false, "snapkv(window_size=8, kernel_size=3)");
  }
  SECTION("snapkv from attention weights") { check_all<scorers::SnapKV>({}, true, "snapkv(attentions)"); }
  SECTION("tova") {
    check_all<scorers::TOVA>({}, false, "tova");
    check_all<scorers::TOVA>({}, true, "tova(attentions)");
  }
  SECTION("observed_attention") { check_all<scorers::ObservedAttention>({}, true, "observed_attention"); }
  SECTION("expected_attention") {
    // Softmax of exp-scale logits over the keys: relative error grows with the logits' range, and the statistics
    // sum Tq rows in a different order (one GEMM vs Eigen's), so the tolerance is looser than for the others.
    for (bool cov : {true, false})
      for (bool vnorm : {true, false}) {
        scorers::ExpectedAttention::Params p;
        p.use_covariance = cov;
        p.use_vnorm = vnorm;
        p.epsilon = vnorm ? 0.01 : 0.0;
        p.n_future_positions = 64;
        check_all<scorers::ExpectedAttention>(p, false,
                                              std::string("expected_attention cov=") + (cov ? "1" : "0") +
                                                  " vnorm=" + (vnorm ? "1" : "0"),
                                              1e-3, 1e-7);
      }
  }
}

namespace {

// The CPU executor's block press on `L` vs block_iterative on the same CPU tensors, each round's set scored by
// `device_score` (keys, values) -> (B, H, m); "" when kept sets and scores agree (scores bitwise, NaN matching NaN,
// when `exact`; else within rtol).
template <class Sc>
std::string block_mismatch(const TestLayer& L, double cr, int64_t block_size, const cuda::SetScorer& device_score,
                           bool exact) {
  using P = Press<Sc, selectors::TopK, granularity::Block>;
  typename P::Params p;
  p.compression_ratio = cr;
  p.granularity.block_size = block_size;
  PressOutput out;
  CpuExecutor<P>::run(p, L.host.raw(), out);
  const int64_t B = L.host.keys.size(0), H = L.host.keys.size(1), S = L.host.keys.size(2);
  const int64_t n = std::clamp<int64_t>(n_kept(S, cr), 0, S);
  const cuda::BlockRounds r = cuda::block_iterative(L.host.keys, at::Tensor(), n, block_size, device_score);
  const std::vector<float> scores = floats(r.scores);
  const at::Tensor pos = r.positions.contiguous();
  if (pos.size(0) != B * H || pos.size(1) != n) return "positions have the wrong shape";
  for (int64_t i = 0; i < B * H; ++i) {
    const int32_t* got = pos.data_ptr<int32_t>() + i * n;
    if (out.kept.count(i / H, i % H) != n || !std::equal(got, got + n, out.kept.begin(i / H, i % H)))
      return "head " + std::to_string(i) + " keeps a different set";
  }
  for (size_t j = 0; j < scores.size(); ++j) {
    const float g = scores[j], w = out.scores[j];
    const bool same = exact ? (std::isnan(g) ? std::isnan(w) : std::memcmp(&g, &w, sizeof g) == 0)
                            : close(g, w, 1e-4, 1e-6);
    if (!same) return "score " + std::to_string(j) + ": " + std::to_string(g) + " vs cpu " + std::to_string(w);
  }
  return "";
}

// Scores a round's set with the CPU scorer itself (bitwise the CPU executor's floats): isolates the rounds.
template <class Sc>
cuda::SetScorer cpu_set_scorer(const TestLayer& L) {
  return [&L](const at::Tensor& ks, const at::Tensor&) {
    PressInputs sub = L.host;
    sub.keys = ks.contiguous();
    LayerInputs r = sub.raw();
    r.hidden_states = nullptr;
    r.tokens = r.token_stride = ks.size(2);
    at::Tensor s = at::empty({ks.size(0), ks.size(1), ks.size(2)}, at::kFloat);
    score_layer<Sc>(typename Sc::Params{}, r, s.data_ptr<float>());
    return s;
  };
}

}  // namespace

TEST_CASE("block_iterative (the CUDA block executor's rounds) on host tensors matches Block::run_iterative",
          "[cuda][device-scorers]") {
  uint64_t seed = 5;
  for (const Inputs kind : {Inputs::Random, Inputs::Ties, Inputs::SignedZeros, Inputs::Inf})
    for (const Shape& s : {Shape{1, 4, 4, 1, 16}, Shape{1, 4, 4, 61, 16}, Shape{2, 8, 2, 300, 32}})
      for (const double cr : {0.0001, 0.25, 0.5, 0.9})
        for (const int64_t bs : {int64_t{1}, int64_t{7}, int64_t{128}}) {
          TestLayer L(s.B, s.Hq, s.H, s.S, s.d, seed++, false, kind);
          INFO("inputs " << static_cast<int>(kind) << " B=" << s.B << " H=" << s.H << " S=" << s.S << " cr=" << cr
                         << " block_size=" << bs);
          // Rounds alone, bitwise: the CPU's keydiff on each set (set-dependent) and knorm (the token-local case,
          // which the CPU runs by merging; the rounds must give the same sets).
          CHECK(block_mismatch<scorers::KeyDiff>(L, cr, bs, cpu_set_scorer<scorers::KeyDiff>(L), true) == "");
          CHECK(block_mismatch<scorers::Knorm>(L, cr, bs, cpu_set_scorer<scorers::Knorm>(L), true) == "");
          // With the device scorer (torch ops): its floats differ from the CPU's in the last bits, which can only
          // swap near-equal scores; random inputs have none at these sizes.
          if (kind == Inputs::Random)
            CHECK(block_mismatch<scorers::KeyDiff>(
                      L, cr, bs, [](const at::Tensor& ks, const at::Tensor&) { return cuda::keydiff_scores(ks); },
                      false) == "");
        }
}
