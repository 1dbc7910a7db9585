// Cache layouts (dense, masked, ragged), the press hook, layer snapshots and the kvpress pipeline.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/generation.hpp"
#include "core/layer_snapshot.hpp"
#include "core/model_loader.hpp"
#include "core/pipeline.hpp"
#include "kernels/press_hook.hpp"
#include "kernels/registry.hpp"
#include "tests/model_support.hpp"
#include "tests/press_support.hpp"

using namespace kvf;

namespace {

// A non-uniform kept set (different counts per head), as a head-wise selector would produce.
CompressResult uneven_result(const LayerCache& cache, uint64_t seed) {
  const int64_t B = cache.keys.size(0), H = cache.keys.size(1), S = cache.keys.size(2), D = cache.keys.size(3);
  at::manual_seed(seed);
  CompressResult r;
  r.kept.reset(B, H);
  std::vector<int64_t> flat;
  for (int64_t i = 0; i < B * H; ++i) {
    const int64_t n = 1 + (i * 7 + 3) % S;  // 1..S entries
    auto perm = std::get<0>(at::randperm(S, at::kLong).narrow(0, 0, n).sort());
    for (int64_t j = 0; j < n; ++j) {
      const auto p = perm[j].item<int64_t>();
      r.kept.positions.push_back(static_cast<int32_t>(p));
      flat.push_back(i * S + p);
    }
    r.kept.offsets[i + 1] = r.kept.offsets[i] + n;
  }
  auto idx = at::tensor(flat, at::kLong);
  r.keys = cache.keys.reshape({B * H * S, D}).index_select(0, idx);
  r.values = cache.values.reshape({B * H * S, D}).index_select(0, idx);
  return r;
}

}  // namespace

TEST_CASE("a ragged per-head cache attends exactly like a masked full cache", "[cache][ragged]") {
  const auto dirs = test::tiny_model_dirs();
  REQUIRE(!dirs.empty());
  for (const auto& dir : dirs) {
    DYNAMIC_SECTION(dir.filename().string()) {
      auto m = load_model((dir / "checkpoint").string());
      const auto& c = m.config;
      at::manual_seed(5);
      auto ctx = at::randint(c.vocab_size, {2, 19}, at::kLong);
      auto step = at::randint(c.vocab_size, {2, 3}, at::kLong);
      KVCache ragged = m.model->new_cache(), masked = m.model->new_cache();
      m.model->forward(ctx, ragged);
      m.model->forward(ctx, masked);
      int64_t bytes_ragged = 0, bytes_masked = 0;
      for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        auto r = uneven_result(ragged.layers[l], 100 + l);
        apply_result(r, ragged.layers[l], CacheMode::Compact);
        apply_result(r, masked.layers[l], CacheMode::Masked);
        REQUIRE(ragged.layers[l].ragged());
        REQUIRE(masked.layers[l].masked());
        bytes_ragged += ragged.layers[l].bytes();
        bytes_masked += masked.layers[l].bytes();
      }
      CHECK(bytes_ragged < bytes_masked);  // the ragged cache really frees memory
      // A 3-token step (causal among the new tokens) and then a 1-token step.
      auto a = m.model->forward(step, ragged);
      auto b = m.model->forward(step, masked);
      CHECK(test::max_abs_diff(a, b) < 1e-4);
      auto one = step.narrow(1, 0, 1).contiguous();
      CHECK(test::max_abs_diff(m.model->forward(one, ragged), m.model->forward(one, masked)) < 1e-4);
      // Truncation restores the compressed context in both layouts.
      ragged.truncate(4);
      masked.truncate(4);
      CHECK(test::max_abs_diff(m.model->forward(step, ragged), m.model->forward(step, masked)) < 1e-4);
    }
  }
}

TEST_CASE("the press hook compresses at prefill only, and the layer output used the full cache", "[hook]") {
  const auto dirs = test::tiny_model_dirs();
  REQUIRE(!dirs.empty());
  auto m = load_model((dirs.front() / "checkpoint").string());
  at::manual_seed(7);
  auto ids = at::randint(m.config.vocab_size, {1, 24}, at::kLong);
  auto press = press_registry().make("knorm", 0.5);
  PressHook hook(*press);
  KVCache full = m.model->new_cache(), pressed = m.model->new_cache();
  ForwardOptions fo;
  auto logits_full = m.model->forward(ids, full);
  fo.hook = &hook;
  auto logits_pressed = m.model->forward(ids, pressed, fo);
  CHECK(test::max_abs_diff(logits_full, logits_pressed) == 0.0);  // compression never changes the prefill
  REQUIRE(static_cast<int64_t>(hook.stats().size()) == m.config.num_hidden_layers);
  for (int64_t l = 0; l < m.config.num_hidden_layers; ++l) CHECK(pressed.length(l) == 12);
  CHECK(pressed.bytes() * 2 == full.bytes());
  m.model->forward(ids.narrow(1, 0, 1).contiguous(), pressed, fo);  // a decoding step: not compressed
  CHECK(pressed.length(0) == 13);
  CHECK(static_cast<int64_t>(hook.stats().size()) == m.config.num_hidden_layers);
}

TEST_CASE("layer snapshots round-trip and compress like the live layer", "[snapshot]") {
  test::LayerShape s;
  s.attentions = true;
  test::RandomLayer L(s);
  const auto dir = test::temp_dir("snapshot");
  const auto path = dir / "layer.safetensors";
  const std::string cfg =
      R"({"model_type":"llama","hidden_size":32,"intermediate_size":64,"num_hidden_layers":4,"num_attention_heads":4,)"
      R"("num_key_value_heads":2,"head_dim":16,"vocab_size":64,"max_position_embeddings":4096,"rms_norm_eps":1e-6})";
  save_layer_snapshot(path, L.view, L.cache, cfg);
  auto snap = load_layer_snapshot(path);
  CHECK(snap->view.layer == s.layer);
  CHECK(snap->cache.keys.equal(L.cache.keys));
  CHECK(snap->view.attentions.equal(L.view.attentions));
  auto press = press_registry().make("knorm", 0.5);
  auto a = press->compress(L.view, L.cache, Backend::Fused);
  auto b = press->compress(snap->view, snap->cache, Backend::Fused);
  CHECK(a.kept.positions == b.kept.positions);
  CHECK(a.keys.equal(b.keys));

  // Bad snapshots name the file and the problem.
  auto message = [](const std::filesystem::path& p) {
    try {
      load_layer_snapshot(p);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  auto bad = dir / "bad.safetensors";
  save_layer_snapshot(bad, L.view, L.cache, R"({"model_type":"llama"})");
  CHECK_THAT(message(bad), Catch::Contains("bad.safetensors") && Catch::Contains("missing required field"));
  auto wrong = cfg;
  wrong.replace(wrong.find("\"head_dim\":16"), 13, "\"head_dim\":8 ");
  save_layer_snapshot(bad, L.view, L.cache, wrong);
  CHECK_THAT(message(bad), Catch::Contains("tensor 'keys' has shape"));
}

TEST_CASE("pipeline: questions are never compressed and the cache is reset between them", "[pipeline][smollm2]") {
  auto m = load_model("default");
  const std::string context =
      "The secret code of the vault is 4172. The vault is located in Zurich, in the basement of an old bank. "
      "Alice opened it in 1998 and found a red notebook inside. Bob later moved the notebook to Geneva.";
  const std::vector<std::string> qs{"What is the secret code?", "What is the secret code?"};
  PipelineOptions o;
  o.max_new_tokens = 12;
  auto plain = run_pipeline(m, context, qs, nullptr, o);
  REQUIRE(plain.answers.size() == 2);
  CHECK(plain.answers[0] == plain.answers[1]);  // the second question saw exactly the same cache
  CHECK_THAT(plain.answers[0], Catch::Contains("4172"));
  CHECK(plain.cache_bytes_after == plain.cache_bytes_before);

  // Without a press the pipeline equals greedy decoding of context + question at the same positions.
  const auto prompt = build_pipeline_prompt(m, context, qs, o);
  std::vector<int32_t> ids = prompt.context_ids;
  ids.insert(ids.end(), prompt.question_ids[0].begin(), prompt.question_ids[0].end());
  KVCache cache = m.model->new_cache();
  SamplingConfig sc;
  sc.max_new_tokens = 12;
  sc.stop_ids = m.stop_ids();
  auto g = generate(*m.model, cache, ids, sc);
  CHECK(m.tokenizer->decode(g.tokens, true) == plain.answers[0]);

  auto press = press_registry().make("knorm", 0.5);
  PressHook hook(*press);
  auto pressed = run_pipeline(m, context, qs, &hook, o);
  CHECK(pressed.answers[0] == pressed.answers[1]);
  CHECK(pressed.cache_bytes_after * 2 <= pressed.cache_bytes_before);  // int(C * 0.5) entries per head
  CHECK(pressed.context_tokens == plain.context_tokens);

  // max_context_length keeps the first tokens.
  o.max_context_length = 10;
  CHECK(build_pipeline_prompt(m, context, qs, o).context_ids.size() == 10);
}

TEST_CASE("SmolLM2 finds a needle near the end with no press, snapkv and adakv at 0.5", "[pipeline][smollm2][needle]") {
  auto m = load_model("default");
  const char* filler[] = {"The grass is green and the sky is blue.", "The sun rises in the east and sets in the west.",
                          "Rivers flow from the mountains to the sea.", "Birds sing in the trees every morning.",
                          "The old library keeps thousands of dusty books.", "Farmers plant wheat in the spring."};
  std::string context;
  for (int i = 0; i < 40; ++i) context += std::string(filler[(i * 7 + 3) % 6]) + " ";
  context += "The special magic number is 7342. ";
  for (int i = 0; i < 3; ++i) context += std::string(filler[(i * 5 + 1) % 6]) + " ";
  PipelineOptions o;
  o.max_new_tokens = 12;
  const std::vector<std::string> q{"What is the special magic number?"};
  auto plain = run_pipeline(m, context, q, nullptr, o);
  INFO("no press: " << plain.answers[0]);
  CHECK_THAT(plain.answers[0], Catch::Contains("7342"));
  for (const std::string spec : {"snapkv", "adakv(snapkv)"}) {
    auto press = press_registry().make(spec, 0.5);
    PressHook hook(*press);
    auto r = run_pipeline(m, context, q, &hook, o);
    INFO(spec << ": " << r.answers[0] << " (" << r.cache_bytes_after << " of " << r.cache_bytes_before << " bytes)");
    CHECK_THAT(r.answers[0], Catch::Contains("7342"));
    // int(C * 0.5) entries per head (adakv: the same total, spread unevenly over the heads of a ragged cache).
    const double kept = static_cast<double>(r.cache_bytes_after) / static_cast<double>(r.cache_bytes_before);
    CHECK(kept <= 0.5);
    CHECK(kept > 0.49);
  }
  // kvpress's masked behaviour keeps the whole cache in memory.
  auto press = press_registry().make("adakv(snapkv)", 0.5);
  PressHook masked(*press, Backend::Fused, CacheMode::Masked);
  auto r = run_pipeline(m, context, q, &masked, o);
  CHECK_THAT(r.answers[0], Catch::Contains("7342"));
  CHECK(r.cache_bytes_after >= r.cache_bytes_before);
}

TEST_CASE("pipeline answers equal kvpress's pipeline on SmolLM2, token for token", "[pipeline][smollm2][kvpress]") {
  const auto path = test::fixture("pipeline/pipeline.json");
  REQUIRE(!path.empty());
  nlohmann::json j;
  {
    std::ifstream f(path);
    j = nlohmann::json::parse(f);
  }
  auto m = load_model("default");
  const auto questions = j["questions"].get<std::vector<std::string>>();
  for (const auto& run : j["runs"]) {
    const std::string spec = run["spec"];
    DYNAMIC_SECTION((spec.empty() ? "no press" : spec)) {
      PipelineOptions o;
      o.max_new_tokens = j["max_new_tokens"];
      std::unique_ptr<RuntimePress> press;
      std::unique_ptr<PressHook> hook;
      if (!spec.empty()) {
        press = press_registry().make(spec, run["compression_ratio"].get<double>());
        hook = std::make_unique<PressHook>(*press);
        o.rerotated_positions = press->rerotates_positions();
      }
      auto r = run_pipeline(m, j["context"], questions, hook.get(), o);
      const auto want = run["answers"].get<std::vector<std::string>>();
      REQUIRE(r.answers.size() == want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        INFO("question " << i);
        CHECK(r.answers[i] == want[i]);
      }
    }
  }
}

TEST_CASE("shared prefill: prefill_context + answer_questions == run_pipeline, bit for bit", "[pipeline][smollm2][shared]") {
  // One thread: ~10x faster on a busy machine (both paths run with the same setting; restored at the end).
  struct Threads {
    int saved = at::get_num_threads();
    Threads() { at::set_num_threads(1); }
    ~Threads() { at::set_num_threads(saved); }
  } threads;
  auto m = load_model("default");
  const char* filler[] = {"The grass is green and the sky is blue.", "The sun rises in the east and sets in the west.",
                          "Rivers flow from the mountains to the sea.", "Birds sing in the trees every morning."};
  std::string context;
  for (int i = 0; i < 8; ++i) context += std::string(filler[(i * 3 + 1) % 4]) + " ";
  context += "The special magic number is 7342. ";
  for (int i = 0; i < 2; ++i) context += std::string(filler[i % 4]) + " ";
  const std::vector<std::string> qs{"What is the special magic number?", "Where do rivers flow?"};
  PipelineOptions o;
  o.max_new_tokens = 4;
  const PrefilledContext rec = prefill_context(m, context, qs, o);
  REQUIRE(static_cast<int64_t>(rec.layers.size()) == m.config.num_hidden_layers);
  const int64_t T = static_cast<int64_t>(rec.prompt.context_ids.size());
  CHECK(rec.seen_tokens == T);
  CHECK(rec.bytes() == prefill_record_bytes(m, T));  // the budget estimate is exact
  const at::Tensor keys0 = rec.layers[3].cache.keys.clone(), hidden0 = rec.layers[3].view.hidden_states.clone();

  // Every layer's kept set and kept rows, as the press produced them.
  struct Kept {
    std::vector<std::vector<int32_t>> positions;
    std::vector<at::Tensor> keys, values;
  };
  auto record_into = [](PressHook& hook, Kept& k) {
    hook.on_result = [&k](const LayerView&, const CompressResult& r) {
      k.positions.push_back(r.kept.positions);
      k.keys.push_back(r.keys.defined() ? r.keys.clone() : at::Tensor());  // undefined: a masked cache's own rows
      k.values.push_back(r.values.defined() ? r.values.clone() : at::Tensor());
    };
  };
  struct Case {
    std::string spec;
    CacheMode mode;
  };
  const std::vector<Case> cases = {{"", CacheMode::Compact},
                                   {"knorm", CacheMode::Compact},
                                   {"snapkv", CacheMode::Compact},
                                   {"streaming_llm", CacheMode::Compact},
                                   {"key_rerotation(knorm)", CacheMode::Compact},
                                   {"adakv(snapkv)", CacheMode::Compact},  // ragged per-head cache
                                   {"adakv(snapkv)", CacheMode::Masked},
                                   {"expected_attention", CacheMode::Compact},
                                   {"adakv(expected_attention(epsilon=0.01))", CacheMode::Compact},
                                   {"knorm", CacheMode::Compact}};  // again: the recording was left intact
  for (const auto& c : cases) {
    INFO((c.spec.empty() ? "no press" : c.spec) << (c.mode == CacheMode::Masked ? " (masked)" : ""));
    std::unique_ptr<RuntimePress> press;
    std::unique_ptr<PressHook> h1, h2;
    Kept k1, k2;
    PipelineOptions po = o;
    if (!c.spec.empty()) {
      press = press_registry().make(c.spec, 0.5);
      h1 = std::make_unique<PressHook>(*press, Backend::Fused, c.mode);
      h2 = std::make_unique<PressHook>(*press, Backend::Fused, c.mode);
      record_into(*h1, k1);
      record_into(*h2, k2);
      po.rerotated_positions = press->rerotates_positions();
    }
    REQUIRE(can_replay(m, h2.get()));
    const auto want = run_pipeline(m, context, qs, h1.get(), po);
    const auto got = answer_questions(m, rec, h2.get(), po);
    CHECK(got.answers == want.answers);
    CHECK(got.answer_tokens == want.answer_tokens);
    CHECK(got.context_tokens == want.context_tokens);
    CHECK(got.cache_bytes_before == want.cache_bytes_before);
    CHECK(got.cache_bytes_after == want.cache_bytes_after);
    CHECK(got.layer_bytes_after == want.layer_bytes_after);
    REQUIRE(k1.positions.size() == k2.positions.size());
    for (size_t l = 0; l < k1.positions.size(); ++l) {
      INFO("layer " << l);
      CHECK(k1.positions[l] == k2.positions[l]);
      REQUIRE(k1.keys[l].defined() == k2.keys[l].defined());
      if (k1.keys[l].defined()) {
        CHECK(k1.keys[l].equal(k2.keys[l]));
        CHECK(k1.values[l].equal(k2.values[l]));
      }
    }
    if (c.spec == "adakv(snapkv)" && c.mode == CacheMode::Compact) CHECK(got.cache_bytes_after < got.cache_bytes_before);
  }
  CHECK(rec.layers[3].cache.keys.equal(keys0));
  CHECK(rec.layers[3].view.hidden_states.equal(hidden0));

  // observed_attention needs the attention weights: not replayable, refused (callers prefill as usual).
  auto oa = press_registry().make("observed_attention", 0.5);
  PressHook oh(*oa);
  CHECK_FALSE(can_replay(m, &oh));
  CHECK_THROWS_AS(answer_questions(m, rec, &oh, o), Error);
  // The prompt options must match the recording.
  PipelineOptions other = o;
  other.answer_prefix = "Answer:";
  CHECK_THROWS_AS(answer_questions(m, rec, nullptr, other), Error);
}

TEST_CASE("decoding appends in place only into storage a cache alone holds (dense and ragged)", "[cache][room]") {
  at::manual_seed(3);
  auto rows = [](int64_t T) { return std::make_pair(at::randn({2, 3, T, 4}), at::randn({2, 3, T, 4})); };
  SECTION("dense") {
    LayerCache c;
    auto [k0, v0] = rows(5);
    c.append(k0, v0);
    CHECK(c.bytes() == 2 * k0.nbytes());  // a prefill holds exactly its entries
    at::Tensor ref_k = k0, ref_v = v0;
    auto step = [&](int64_t T) {
      auto [k, v] = rows(T);
      c.append(k, v);
      ref_k = at::cat({ref_k, k}, 2), ref_v = at::cat({ref_v, v}, 2);
    };
    step(1);  // first decoding step: a new storage with room
    const void* storage = c.keys.data_ptr();
    CHECK(c.bytes() > 2 * ref_k.nbytes());  // the room is counted
    step(1);
    step(3);
    CHECK(c.keys.data_ptr() == storage);  // in place
    CHECK(c.keys.equal(ref_k));
    CHECK(c.values.equal(ref_v));
    // A copy (the pipeline's prefill recording) never sees its rows change: the original regrows instead.
    LayerCache copy = c;
    const auto copy_k = c.keys.clone();
    c.truncate(2);
    ref_k = ref_k.narrow(2, 0, ref_k.size(2) - 2), ref_v = ref_v.narrow(2, 0, ref_v.size(2) - 2);
    step(1);
    CHECK(c.keys.data_ptr() != storage);
    CHECK(copy.keys.equal(copy_k));
    CHECK(c.keys.equal(ref_k));
    CHECK(c.values.equal(ref_v));
  }
  SECTION("ragged") {
    LayerCache c;
    const std::vector<int64_t> counts = {3, 0, 5, 1, 2, 4};  // (b, h) = 2 x 3, one empty head
    auto pk = at::randn({15, 4}), pv = at::randn({15, 4});
    c.set_ragged(pk, pv, counts, 3);
    std::vector<at::Tensor> ref_k, ref_v;
    for (int64_t i = 0, off = 0; i < 6; off += counts[static_cast<size_t>(i)], ++i) {
      ref_k.push_back(pk.narrow(0, off, counts[static_cast<size_t>(i)]));
      ref_v.push_back(pv.narrow(0, off, counts[static_cast<size_t>(i)]));
    }
    auto step = [&](int64_t T) {
      auto [k, v] = rows(T);
      c.append(k, v);
      for (int64_t i = 0; i < 6; ++i) {
        ref_k[static_cast<size_t>(i)] = at::cat({ref_k[static_cast<size_t>(i)], k[i / 3][i % 3]}, 0);
        ref_v[static_cast<size_t>(i)] = at::cat({ref_v[static_cast<size_t>(i)], v[i / 3][i % 3]}, 0);
      }
    };
    step(1);
    const void* storage = c.packed_keys.data_ptr();
    step(2);
    CHECK(c.packed_keys.data_ptr() == storage);
    LayerCache copy = c;
    const auto copy_head = c.head_keys(2).clone();
    c.truncate(2);
    for (auto* r : {&ref_k, &ref_v})
      for (auto& t : *r) t = t.narrow(0, 0, t.size(0) - 2);
    step(1);
    CHECK(c.packed_keys.data_ptr() != storage);
    CHECK(copy.head_keys(2).equal(copy_head));
    for (int64_t i = 0; i < 6; ++i) {
      CHECK(c.head_length(i / 3, i % 3) == ref_k[static_cast<size_t>(i)].size(0));
      CHECK(c.head_keys(i).equal(ref_k[static_cast<size_t>(i)]));
      CHECK(c.head_values(i).equal(ref_v[static_cast<size_t>(i)]));
    }
  }
}
