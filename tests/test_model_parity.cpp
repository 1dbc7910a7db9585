// Parity of the libtorch runtime with transformers on tiny random checkpoints of every architecture.
#include <catch2/catch.hpp>

#include "core/model_loader.hpp"
#include "core/tensor_io.hpp"
#include "tests/model_support.hpp"

using namespace kvf;

TEST_CASE("fp32 logits match transformers within 1e-4 on tiny checkpoints", "[model][parity]") {
  auto dirs = test::tiny_model_dirs();
  if (dirs.empty()) {
    WARN("skipped: tiny model fixtures missing (run through ctest, which generates them)");
    return;
  }
  REQUIRE(dirs.size() >= 5);
  for (const auto& d : dirs) {
    INFO("checkpoint " << d.filename().string());
    auto m = load_model((d / "checkpoint").string());
    auto exp = load_tensors(d / "expected.safetensors");
    const auto ids = exp.at("input_ids");
    const int64_t T = ids.size(1);

    // One prefill over the whole batch.
    KVCache cache = m.model->new_cache();
    auto logits = m.model->forward(ids, cache);
    CHECK(logits.sizes() == exp.at("logits").sizes());
    const double full_diff = test::max_abs_diff(logits, exp.at("logits"));
    INFO("prefill max |diff| = " << full_diff);
    CHECK(full_diff < 1e-4);
    CHECK(cache.length(0) == T);
    CHECK(cache.seen_tokens == T);

    // Prefill 20 tokens then one token at a time through the cache.
    KVCache c2 = m.model->new_cache();
    std::vector<at::Tensor> parts{m.model->forward(ids.narrow(1, 0, 20), c2)};
    for (int64_t t = 20; t < T; ++t) parts.push_back(m.model->forward(ids.narrow(1, t, 1), c2));
    const double step_diff = test::max_abs_diff(at::cat(parts, 1), exp.at("logits_stepped"));
    INFO("stepped max |diff| = " << step_diff);
    CHECK(step_diff < 1e-4);
  }
}

TEST_CASE("a multi-token step after a cached prefix equals the one-shot prefill", "[model]") {
  auto dirs = test::tiny_model_dirs();
  if (dirs.empty()) {
    WARN("skipped: tiny model fixtures missing (run through ctest)");
    return;
  }
  auto m = load_model((dirs.front() / "checkpoint").string());
  auto ids = load_tensors(dirs.front() / "expected.safetensors").at("input_ids");
  KVCache a = m.model->new_cache(), b = m.model->new_cache();
  auto full = m.model->forward(ids, a);
  auto head = m.model->forward(ids.narrow(1, 0, 9), b);
  auto tail = m.model->forward(ids.narrow(1, 9, ids.size(1) - 9), b);  // exercises the (T, S) append mask
  CHECK(test::max_abs_diff(at::cat({head, tail}, 1), full) < 1e-5);
}

TEST_CASE("bf16 runtime stays close to fp32", "[model][bf16]") {
  auto dirs = test::tiny_model_dirs();
  if (dirs.empty()) {
    WARN("skipped: tiny model fixtures missing (run through ctest)");
    return;
  }
  for (const auto& d : dirs) {
    INFO("checkpoint " << d.filename().string());
    LoadOptions lo;
    lo.dtype = at::kBFloat16;
    auto m = load_model((d / "checkpoint").string(), lo);
    CHECK(m.model->dtype() == at::kBFloat16);
    auto exp = load_tensors(d / "expected.safetensors");
    KVCache cache = m.model->new_cache();
    auto logits = m.model->forward(exp.at("input_ids"), cache);
    CHECK(cache.layers[0].keys.scalar_type() == at::kBFloat16);
    // bf16 has 8 mantissa bits: ~0.4% relative error per op; logits here are O(1).
    const double diff = test::max_abs_diff(logits, exp.at("logits"));
    INFO("bf16 max |diff| = " << diff);
    CHECK(diff < 0.1);
  }
}
