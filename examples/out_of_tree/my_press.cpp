// An out-of-tree press: a new scorer (value_norm), its libtorch reference, a composition, a registry that also
// holds the built-in presses, and one random layer compressed by the fused executor and by the reference.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>

#include "kernels/reference/basic.hpp"  // RefSelector<TopK>, RefGranularity<Token>
#include "kernels/typed_press.hpp"      // PressRegistry::add<P>

// ---- The scorer: s_t = ||V_t||_2 (keep the largest values); the first n_sink positions are always kept. ----
struct ValueNorm {
  static constexpr std::string_view name = "value_norm";
  static constexpr bool needs_attentions = false;
  struct Params {
    int64_t n_sink = 0;
    static constexpr auto fields = std::make_tuple(kvf::field("n_sink", &Params::n_sink, 0, 1 << 30));
  };

  static void validate(const Params&, const kvf::LayerInputs&) {}
  static kvf::Protect protect(const Params& p, const kvf::LayerInputs&) {
    return {p.n_sink > 0 ? kvf::Protect::Kind::MaxPlusOne : kvf::Protect::Kind::None, p.n_sink, 0};
  }
  static void score_head(const Params&, const kvf::LayerInputs& in, int64_t b, int64_t h, kvf::Scratch&, float* out) {
    const float* V = in.value(b, h);
    for (int64_t t = 0; t < in.seq; ++t) {
      float ss = 0.f;
      for (int64_t c = 0; c < in.head_dim; ++c) ss += V[t * in.head_dim + c] * V[t * in.head_dim + c];
      out[t] = std::sqrt(ss);
    }
  }
};
static_assert(kvf::Scorer<ValueNorm>);

// ---- Its reference: the same scores in plain libtorch ops (the oracle of the fused path). ----
template <>
struct kvf::RefScorer<ValueNorm> {
  static at::Tensor score(const ValueNorm::Params& p, const kvf::PressInputs& in) {
    auto s = in.values.norm(2, -1);  // (B, H, S)
    const int64_t n = std::min(p.n_sink, s.size(2));
    if (n > 0 && n < s.size(2)) s.slice(2, 0, n).fill_(s.slice(2, n).max().item<double>() + 1.0);
    return s;
  }
};

using ValueNormPress = kvf::Press<ValueNorm, kvf::selectors::TopK, kvf::granularity::Token>;

namespace {

// A small random layer: keys/values (B, Hkv, S, d) plus what a LayerView must carry.
struct Layer {
  static constexpr int64_t B = 1, Hq = 4, Hkv = 2, S = 32, d = 16, hidden = 32;
  kvf::ModelConfig config;
  kvf::LayerWeights weights;
  kvf::LayerView view;
  kvf::LayerCache cache;
  Layer() {
    at::manual_seed(0);
    config.model_type = "llama";
    config.hidden_size = hidden;
    config.num_attention_heads = Hq;
    config.num_key_value_heads = Hkv;
    config.head_dim = d;
    config.num_hidden_layers = 2;
    weights.q_proj = at::randn({Hq * d, hidden});
    weights.o_proj = at::randn({hidden, Hq * d});
    cache.keys = at::randn({B, Hkv, S, d});
    cache.values = at::randn({B, Hkv, S, d});
    view.config = &config;
    view.weights = &weights;
    view.hidden_states = at::randn({B, S, hidden});
    view.position_ids = at::arange(S, at::kLong).unsqueeze(0);
    view.cos = at::ones({B, S, d});
    view.sin = at::zeros({B, S, d});
  }
};

// Fused vs reference: the same kept positions, scores and kept values. Returns the number of problems.
int run(const kvf::PressRegistry& registry, const char* spec, double cr, const Layer& layer) {
  auto press = registry.make(spec, cr);
  const auto fused = press->compress(layer.view, layer.cache, kvf::Backend::Fused);
  const auto ref = press->compress(layer.view, layer.cache, kvf::Backend::Reference);
  std::printf("%s at compression ratio %.2f:\n", press->spec().c_str(), cr);
  int bad = 0;
  for (int64_t b = 0; b < fused.kept.batch; ++b)
    for (int64_t h = 0; h < fused.kept.heads; ++h) {
      const int64_t nf = fused.kept.count(b, h), nr = ref.kept.count(b, h);
      const bool same = nf == nr && std::equal(fused.kept.begin(b, h), fused.kept.begin(b, h) + nf, ref.kept.begin(b, h));
      std::printf("  batch %lld head %lld: kept %lld of %lld (fused), %lld (reference)%s\n", (long long)b,
                  (long long)h, (long long)nf, (long long)Layer::S, (long long)nr, same ? "" : "  <-- kept sets differ");
      bad += !same;
    }
  if (!bad && !at::allclose(fused.scores, ref.scores, 1e-4, 1e-5)) ++bad, std::printf("  scores differ\n");
  if (!bad && !at::equal(fused.values, ref.values)) ++bad, std::printf("  kept values differ\n");
  return bad;
}

}  // namespace

int main() try {
  // Start from a copy of the built-in registry, so every built-in press stays reachable by its spec, then add ours.
  kvf::PressRegistry registry = kvf::press_registry();
  registry.add<ValueNormPress>("value_norm", "largest value norms (out-of-tree example)", "value_norm(n_sink=4)");

  const Layer layer;
  int bad = run(registry, "value_norm(n_sink=4)", 0.5, layer);
  bad += run(registry, "knorm", 0.25, layer);  // a built-in, found through the same registry
  std::printf(bad ? "FAILED: fused and reference disagree\n" : "OK: fused and reference agree\n");
  return bad ? 1 : 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 2;
}
