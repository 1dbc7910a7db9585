// The device scorers written with libtorch ops (kernels/cuda/device_scorers.cpp: keydiff, snapkv, tova,
// observed_attention, expected_attention) are device-agnostic tensor code, so they run here on CPU tensors against
// the CPU policies' score_head (compose/score_layer.hpp). This checks their math on every machine, GPU or not; on a
// GPU the same functions are checked end to end by test_cuda_executors.cpp. Scores are compared on the positions
// the press does not protect (the device scorers leave the protected slots 0; the executor fills them).
#include "tests/test_cuda_support.hpp"

#include <string>

#include "compose/score_layer.hpp"
#include "kernels/cuda/cuda_scorers.hpp"

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
