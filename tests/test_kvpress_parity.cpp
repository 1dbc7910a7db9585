// kvpress parity: every registered press (see tests/fixtures/make_press_fixtures.py) on the same layer as kvpress
// 0.5.5: same scores (where kvpress exposes them), same kept sets up to ties, same kept keys (incl. post-ops).
// Both backends are checked: the reference path and the fused executor.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/layer_snapshot.hpp"
#include "core/tensor_io.hpp"
#include "kernels/registry.hpp"
#include "tests/press_support.hpp"
#include "tests/test_support.hpp"

using namespace kvf;

namespace {

// kvpress's result as a CompressResult: kept sets from the mask, key rows from keys_at, values from the input.
CompressResult kvpress_result(const std::map<std::string, at::Tensor>& t, const LayerCache& cache,
                              const at::Tensor& fallback_scores) {
  auto mask = t.at("kept_mask").to(at::kBool);
  const int64_t B = mask.size(0), H = mask.size(1), S = mask.size(2), d = cache.keys.size(3);
  CompressResult r;
  r.kept.reset(B, H);
  std::vector<int64_t> flat;
  auto m = mask.contiguous();
  const bool* mp = m.data_ptr<bool>();
  for (int64_t i = 0; i < B * H; ++i) {
    for (int64_t s = 0; s < S; ++s)
      if (mp[i * S + s]) {
        r.kept.positions.push_back(static_cast<int32_t>(s));
        flat.push_back(i * S + s);
      }
    r.kept.offsets[i + 1] = static_cast<int64_t>(r.kept.positions.size());
  }
  auto idx = at::tensor(flat, at::kLong);
  r.keys = t.at("keys_at").reshape({B * H * S, d}).index_select(0, idx);
  r.values = cache.values.to(at::kFloat).reshape({B * H * S, d}).index_select(0, idx);
  auto it = t.find("scores");
  r.scores = it != t.end() ? it->second.to(at::kFloat) : fallback_scores;
  return r;
}

}  // namespace

TEST_CASE("presses without a kvpress peer say why", "[press][kvpress]") {
  const auto dir = test::fixture("kvpress");
  REQUIRE(!dir.empty());
  std::ifstream f(dir / "cases.json");
  const auto idx = nlohmann::json::parse(f);
  for (const auto& s : idx["skipped"]) {
    WARN("no kvpress peer for " << s["spec"].get<std::string>() << ": " << s["why"].get<std::string>());
    CHECK(!s["why"].get<std::string>().empty());
  }
  CHECK(idx["cases"].size() >= 3 * (press_registry().entries().size() - idx["skipped"].size()));
}

TEST_CASE("every registered press matches kvpress on the same layer", "[press][kvpress]") {
  const auto dir = test::fixture("kvpress");
  REQUIRE(!dir.empty());
  nlohmann::json idx;
  {
    std::ifstream f(dir / "cases.json");
    idx = nlohmann::json::parse(f);
  }
  std::map<std::string, std::unique_ptr<LayerSnapshot>> snaps;
  REQUIRE(!idx["cases"].empty());
  for (const auto& c : idx["cases"]) {
    const std::string spec = c["spec"];
    const double cr = c["compression_ratio"];
    const std::string model = c["model"];
    DYNAMIC_SECTION(model << ": " << spec << " cr=" << cr) {
      auto& snap = snaps[c["snapshot"].get<std::string>()];
      if (!snap) snap = load_layer_snapshot(dir / c["snapshot"].get<std::string>());
      const int64_t S = snap->cache.length();
      auto press = press_registry().make(spec, cr);
      const auto t = load_tensors(dir / c["file"].get<std::string>());
      for (auto backend : {Backend::Reference, Backend::Fused}) {
        auto ours = press->compress(snap->view, snap->cache, backend);
        auto theirs = kvpress_result(t, snap->cache, ours.scores);
        INFO((backend == Backend::Fused ? "fused: " : "reference: ") << "kvpress " << c["kvpress"].get<std::string>());
        const std::string diff = test::compare_results(ours, theirs, S, 1e-4, 1e-5, 1e-4);
        INFO(diff);
        CHECK(diff.empty());
      }
    }
  }
}
