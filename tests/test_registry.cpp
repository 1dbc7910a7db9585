// Registry-driven suites: every registered press is checked here with no press-specific test code.
//   fused CPU executor == libtorch reference (tie-aware), over shapes (batch, GQA/MHA, odd lengths, qk-norm,
//   attention bias) and compression ratios; cr = 0 keeps the cache untouched; specs round-trip.
#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "kernels/press_hook.hpp"
#include "kernels/registry.hpp"
#include "tests/press_support.hpp"

using namespace kvf;

namespace {

std::vector<test::LayerShape> shapes() {
  std::vector<test::LayerShape> out;
  test::LayerShape a;  // GQA, batch 1
  a.seed = 1;
  out.push_back(a);
  test::LayerShape b;  // MHA, batch 2, odd length
  b.batch = 2, b.q_heads = 3, b.kv_heads = 3, b.seq = 37, b.head_dim = 8, b.hidden = 24, b.seed = 2, b.layer = 0;
  out.push_back(b);
  test::LayerShape c;  // Qwen-style: q/k norm, biases, last layer, longer
  c.q_heads = 6, c.kv_heads = 2, c.seq = 97, c.head_dim = 16, c.hidden = 48, c.qk_norm = true;
  c.attention_bias = true, c.seed = 3, c.layer = 3;
  out.push_back(c);
  return out;
}

}  // namespace

TEST_CASE("every registered press: fused executor equals the reference path (tie-aware)", "[press][registry]") {
  const auto& reg = press_registry();
  REQUIRE(!reg.entries().empty());
  for (const auto& e : reg.entries()) {
    for (auto shape : shapes()) {
      for (double cr : {0.25, 0.5, 0.9}) {
        DYNAMIC_SECTION(e.example << " seq=" << shape.seq << " cr=" << cr) {
          auto press = reg.make(e.example, cr);
          shape.attentions = press->needs_attentions();
          test::RandomLayer L(shape);
          auto fused = press->compress(L.view, L.cache, Backend::Fused);
          auto ref = press->compress(L.view, L.cache, Backend::Reference);
          const std::string diff = test::compare_results(fused, ref, shape.seq);
          INFO(diff);
          CHECK(diff.empty());
          CHECK(fused.kept.total() < shape.batch * shape.kv_heads * shape.seq);  // something was removed
          CHECK(fused.kept.total() > 0);
        }
      }
    }
  }
}

namespace {

// Fused and reference agree, or both reject the input with the same kvf::Error.
std::string fused_vs_reference(const RuntimePress& press, const test::LayerShape& shape) {
  test::RandomLayer L(shape);
  std::string fe, re;
  CompressResult fused, ref;
  try {
    fused = press.compress(L.view, L.cache, Backend::Fused);
  } catch (const Error& e) {
    fe = e.what();
  }
  try {
    ref = press.compress(L.view, L.cache, Backend::Reference);
  } catch (const Error& e) {
    re = e.what();
  }
  if (!fe.empty() || !re.empty())
    return fe == re ? std::string() : "fused error '" + fe + "' vs reference error '" + re + "'";
  return test::compare_results(fused, ref, shape.seq);
}

}  // namespace

TEST_CASE("every registered press: adversarial inputs (ties, signed zeros, infinities)", "[press][registry]") {
  using A = test::LayerShape::Adversarial;
  for (const auto& e : press_registry().entries())
    for (auto adv : {A::Ties, A::SignedZeros, A::Inf}) {
      DYNAMIC_SECTION(e.example << " adversarial=" << static_cast<int>(adv)) {
        auto press = press_registry().make(e.example, 0.5);
        test::LayerShape s;
        s.seed = 11;
        s.adversarial = adv;
        s.attentions = press->needs_attentions();
        const std::string diff = fused_vs_reference(*press, s);
        INFO(diff);
        CHECK(diff.empty());
      }
    }
}

TEST_CASE("every registered press: sequence lengths 1 to 4096", "[press][registry]") {
  for (const auto& e : press_registry().entries())
    for (int64_t S : {1, 2, 5, 4096}) {
      DYNAMIC_SECTION(e.example << " seq=" << S) {
        auto press = press_registry().make(e.example, 0.5);
        test::LayerShape s;
        s.seq = S;
        s.seed = 13;
        s.attentions = press->needs_attentions() && S <= 1024;  // (1, 4, S, S) weights
        if (press->needs_attentions() && S > 1024) {
          WARN("skipped S=" << S << " for " << e.example << ": its attention-weight input would be 268 MB");
          continue;
        }
        const std::string diff = fused_vs_reference(*press, s);
        INFO(diff);
        CHECK(diff.empty());
      }
    }
}

TEST_CASE("every registered press: compression_ratio 0 keeps the cache untouched", "[press][registry]") {
  for (const auto& e : press_registry().entries()) {
    DYNAMIC_SECTION(e.example) {
      auto press = press_registry().make(e.example, 0.0);
      test::LayerShape s;
      s.attentions = press->needs_attentions();
      test::RandomLayer L(s);
      for (auto backend : {Backend::Fused, Backend::Reference}) {
        auto r = press->compress(L.view, L.cache, backend);
        REQUIRE(r.kept.total() == s.batch * s.kv_heads * s.seq);
        CHECK(r.keys.view({s.batch, s.kv_heads, s.seq, s.head_dim}).equal(L.cache.keys));
        CHECK(r.values.view({s.batch, s.kv_heads, s.seq, s.head_dim}).equal(L.cache.values));
      }
    }
  }
}

TEST_CASE("every registered press: masked mode selects only, and its cache equals the one from written rows",
          "[press][registry][masked]") {
  for (const auto& e : press_registry().entries())
    for (auto shape : shapes())
      for (double cr : {0.0, 0.5}) {
        DYNAMIC_SECTION(e.example << " seq=" << shape.seq << " cr=" << cr) {
          auto press = press_registry().make(e.example, cr);
          shape.attentions = press->needs_attentions();
          test::RandomLayer L(shape);
          for (auto backend : {Backend::Fused, Backend::Reference}) {
            INFO((backend == Backend::Fused ? "fused" : "reference"));
            const auto full = press->compress(L.view, L.cache, backend, Rows::Write);
            const auto sel = press->compress(L.view, L.cache, backend, Rows::SkipUnchanged);
            // Rows only where a post-op rewrites them (key_rerotation, think); the selection is the same.
            CHECK(sel.keys.defined() == press->rewrites_rows());
            CHECK(sel.values.defined() == press->rewrites_rows());
            CHECK(sel.kept.offsets == full.kept.offsets);
            CHECK(sel.kept.positions == full.kept.positions);
            REQUIRE(sel.scores.defined() == full.scores.defined());
            if (full.scores.defined()) {
              const auto again = press->compress(L.view, L.cache, backend, Rows::Write);
              INFO("write vs write: " << (again.scores - full.scores).abs().max().item<float>() << ", skip vs write: "
                   << (sel.scores - full.scores).abs().max().item<float>());
              CHECK(sel.scores.equal(full.scores));
            }
            LayerCache a = L.cache, b = L.cache;
            apply_result(full, a, CacheMode::Masked);
            apply_result(sel, b, CacheMode::Masked);
            CHECK(a.keys.equal(b.keys));
            CHECK(a.values.equal(b.values));
            CHECK(a.keep_mask.equal(b.keep_mask));
            if (!press->rewrites_rows()) CHECK(b.keys.equal(L.cache.keys));  // rows left where they are
            LayerCache c = L.cache;
            if (!sel.keys.defined())
              CHECK_THROWS_WITH(apply_result(sel, c, CacheMode::Compact), Catch::Contains("needs the kept rows"));
          }
        }
      }
}

TEST_CASE("every registered press: its spec round-trips and names every parameter", "[press][registry][spec]") {
  for (const auto& e : press_registry().entries()) {
    DYNAMIC_SECTION(e.example) {
      auto press = press_registry().make(e.example, 0.5);
      auto again = press_registry().make(press->spec(), 0.5);
      CHECK(again->spec() == press->spec());
      CHECK(parse_spec(press->spec()).shape() == e.shape);
    }
  }
}

TEST_CASE("bad press specs: unknown names and parameters list what exists", "[press][registry][bad-input]") {
  const auto& reg = press_registry();
  auto message = [&](const std::string& spec, double cr) {
    try {
      reg.make(spec, cr);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  CHECK_THAT(message("no_such_press", 0.5), Catch::Contains("unknown press 'no_such_press'") &&
                                                Catch::Contains("knorm"));
  CHECK_THAT(message("knorm(window_size=3)", 0.5), Catch::Contains("has no parameter 'window_size'"));
  CHECK_THAT(message("knorm", 1.0), Catch::Contains("compression_ratio must be in [0, 1)"));
  CHECK_THAT(message("knorm", -0.1), Catch::Contains("compression_ratio must be in [0, 1)"));
  CHECK_THAT(message("knorm(", 0.5), Catch::Contains("press spec"));
  CHECK_THAT(message("knorm(compression_ratio=0.5)", 0.5), Catch::Contains("--compression-ratio"));
}
