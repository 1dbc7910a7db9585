// The hook interface (what a press sees, replacing the cache) and text generation.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "core/generation.hpp"
#include "core/model_loader.hpp"
#include "core/tensor_io.hpp"
#include "tests/model_support.hpp"

using namespace kvf;

namespace {

// Records every call; optionally keeps only the last `keep` entries of each layer's cache at prefill.
struct RecordingHook : LayerHook {
  int64_t keep = -1;
  bool want_weights = false;
  std::vector<std::pair<int64_t, Phase>> calls;
  std::vector<LayerView> views;
  bool wants_attention_weights(int64_t, Phase) const override { return want_weights; }
  void after_attention(const LayerView& v, LayerCache& cache) override {
    calls.emplace_back(v.layer, v.phase);
    views.push_back(v);
    if (keep >= 0 && v.phase == Phase::Prefill) {
      const int64_t S = cache.length();
      cache.keys = cache.keys.narrow(2, S - keep, keep).contiguous();
      cache.values = cache.values.narrow(2, S - keep, keep).contiguous();
    }
  }
};

struct Loaded {
  LoadedModel m;
  at::Tensor ids;
};

std::optional<Loaded> tiny() {
  auto dirs = test::tiny_model_dirs();
  if (dirs.empty()) return std::nullopt;
  Loaded l{load_model((dirs.front() / "checkpoint").string()), {}};
  l.ids = load_tensors(dirs.front() / "expected.safetensors").at("input_ids");
  return l;
}

}  // namespace

TEST_CASE("hooks see each layer once per step, with the layer's view", "[hooks]") {
  auto l = tiny();
  if (!l) {
    WARN("skipped: tiny model fixtures missing (run through ctest)");
    return;
  }
  const auto& cfg = l->m.config;
  RecordingHook hook;
  KVCache cache = l->m.model->new_cache();
  ForwardOptions fo;
  fo.hook = &hook;
  l->m.model->forward(l->ids.narrow(1, 0, 10), cache, fo);
  l->m.model->forward(l->ids.narrow(1, 10, 1), cache, fo);
  REQUIRE(hook.calls.size() == static_cast<size_t>(2 * cfg.num_hidden_layers));
  for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
    CHECK(hook.calls[i].first == i);
    CHECK(hook.calls[i].second == Phase::Prefill);
    CHECK(hook.calls[cfg.num_hidden_layers + i].first == i);
    CHECK(hook.calls[cfg.num_hidden_layers + i].second == Phase::Decode);
  }
  const auto& v = hook.views[1];
  CHECK(v.hidden_states.sizes() == at::IntArrayRef({2, 10, cfg.hidden_size}));
  CHECK(v.cos.sizes() == at::IntArrayRef({2, 10, cfg.head_dim}));
  CHECK(v.weights == &l->m.model->weights().layers[1]);
  CHECK(v.config == &l->m.model->config());
  CHECK(!v.attentions.defined());
  CHECK(v.position_ids[0][9].item<int64_t>() == 9);
  CHECK(hook.views[cfg.num_hidden_layers].position_ids[0][0].item<int64_t>() == 10);
}

TEST_CASE("a hook can replace the cache, and the layer's own output still used the full cache", "[hooks]") {
  auto l = tiny();
  if (!l) {
    WARN("skipped: tiny model fixtures missing (run through ctest)");
    return;
  }
  KVCache plain = l->m.model->new_cache(), pressed = l->m.model->new_cache();
  auto ref = l->m.model->forward(l->ids, plain);
  RecordingHook hook;
  hook.keep = 5;
  ForwardOptions fo;
  fo.hook = &hook;
  auto out = l->m.model->forward(l->ids, pressed, fo);
  CHECK(test::max_abs_diff(out, ref) < 1e-6);  // prefill logits unaffected, as in kvpress
  for (const auto& lc : pressed.layers) CHECK(lc.length() == 5);
  CHECK(pressed.seen_tokens == l->ids.size(1));  // positions continue from the full length
  // Decoding continues over the shortened cache: equal to attending only the kept 5 entries.
  auto next = l->ids.narrow(1, 0, 1);
  auto a = l->m.model->forward(next, pressed);
  CHECK(pressed.length(0) == 6);
  CHECK(a.sizes() == at::IntArrayRef({2, 1, l->m.config.vocab_size}));
}

TEST_CASE("eager attention path materialises weights and agrees with SDPA", "[hooks]") {
  auto l = tiny();
  if (!l) {
    WARN("skipped: tiny model fixtures missing (run through ctest)");
    return;
  }
  KVCache c1 = l->m.model->new_cache(), c2 = l->m.model->new_cache();
  auto ref = l->m.model->forward(l->ids, c1);
  RecordingHook hook;
  hook.want_weights = true;
  ForwardOptions fo;
  fo.hook = &hook;
  auto out = l->m.model->forward(l->ids, c2, fo);
  CHECK(test::max_abs_diff(out, ref) < 1e-5);
  const auto& w = hook.views[0].attentions;  // (B, H, T, S)
  const int64_t T = l->ids.size(1);
  REQUIRE(w.sizes() == at::IntArrayRef({2, l->m.config.num_attention_heads, T, T}));
  CHECK(test::max_abs_diff(w.sum(-1), at::ones({2, l->m.config.num_attention_heads, T})) < 1e-5);
  CHECK(w.triu(1).abs().max().item<double>() == 0.0);  // causal
}

TEST_CASE("greedy generation is the argmax chain, sampling is seeded, EOS stops", "[generation]") {
  auto l = tiny();
  if (!l) {
    WARN("skipped: tiny model fixtures missing (run through ctest)");
    return;
  }
  const auto& model = *l->m.model;
  std::vector<int32_t> prompt;
  for (int64_t i = 0; i < 12; ++i) prompt.push_back(static_cast<int32_t>(l->ids[0][i].item<int64_t>()));

  SamplingConfig greedy;
  greedy.max_new_tokens = 8;
  KVCache c = model.new_cache();
  std::vector<int32_t> streamed;
  auto r = generate(model, c, prompt, greedy, [&](int32_t t) { streamed.push_back(t); return true; });
  REQUIRE(r.tokens.size() == 8);
  CHECK(streamed == r.tokens);
  // Independent check: recompute each step from scratch without a cache.
  std::vector<int64_t> seq(prompt.begin(), prompt.end());
  for (int32_t t : r.tokens) {
    KVCache fresh = model.new_cache();
    auto logits = model.forward(at::tensor(seq, at::kLong).unsqueeze(0), fresh);
    CHECK(logits[0][-1].argmax().item<int64_t>() == t);
    seq.push_back(t);
  }

  SamplingConfig s;
  s.max_new_tokens = 8;
  s.temperature = 1.5;
  s.top_p = 0.9;
  s.seed = 7;
  KVCache c1 = model.new_cache(), c2 = model.new_cache();
  CHECK(generate(model, c1, prompt, s).tokens == generate(model, c2, prompt, s).tokens);

  SamplingConfig tiny_p = s;
  tiny_p.top_p = 1e-9;  // only the most likely token survives: equals greedy
  KVCache c3 = model.new_cache();
  CHECK(generate(model, c3, prompt, tiny_p).tokens == r.tokens);

  SamplingConfig stop = greedy;
  stop.stop_ids = {r.tokens[3]};
  KVCache c4 = model.new_cache();
  auto rs = generate(model, c4, prompt, stop);
  CHECK(rs.stopped_on_eos);
  auto first = std::find(r.tokens.begin(), r.tokens.end(), r.tokens[3]);
  CHECK(rs.tokens == std::vector<int32_t>(r.tokens.begin(), first));
}
