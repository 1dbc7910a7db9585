// Registry-driven suites: every registered press is checked here with no press-specific test code.
//   fused CPU executor == libtorch reference (tie-aware), over shapes (batch, GQA/MHA, odd lengths, qk-norm,
//   attention bias) and compression ratios; cr = 0 keeps the cache untouched; specs round-trip.
#include <catch2/catch.hpp>

#include "core/error.hpp"
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
      for (double cr : {0.1, 0.25, 0.5, 0.8}) {
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
