#pragma once
// per_layer (kvpress PerLayerCompressionPress): layer l keeps int(S * (1 - compression_ratios[l])) positions per
// head, chosen as topk does. The press's --compression-ratio only switches it on (0 leaves every layer
// untouched, as for every press); kvpress reports the mean of the list as the press's compression_ratio.
// A ratio of 1 keeps nothing (kvpress allows it); a list shorter than the model's layers is an error at the first
// layer it does not cover (kvpress: IndexError). Layers end with different cache lengths.
#include <string>
#include <vector>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/params.hpp"
#include "core/error.hpp"
#include "policies/selectors/topk.hpp"

namespace kvf::selectors {

struct PerLayer {
  static constexpr std::string_view name = "per_layer";
  static constexpr bool head_wise = false;
  struct Params {
    std::vector<double> compression_ratios;  // one per layer, fraction removed; required
    static constexpr auto fields =
        std::make_tuple(field("compression_ratios", &Params::compression_ratios, 0.0, 1.0));
  };

  static double layer_ratio(const Params& p, int64_t layer) {
    if (p.compression_ratios.empty())
      throw Error("per_layer: compression_ratios is required (one ratio per layer, e.g. compression_ratios=[0.1,0.5])");
    if (layer < 0 || layer >= static_cast<int64_t>(p.compression_ratios.size()))
      throw Error("per_layer: compression_ratios has " + std::to_string(p.compression_ratios.size()) +
                  " entries, no ratio for layer " + std::to_string(layer));
    return p.compression_ratios[static_cast<size_t>(layer)];
  }

  static int64_t budget(const Params& p, int64_t seq, int64_t layer) { return n_kept(seq, layer_ratio(p, layer)); }

  static void select(const Params& p, const SelectContext& c, float* scores, KeptSets& out) {
    TopK::select_per_head(c, scores, per_head_count(p, c), out);
  }
  static int64_t per_head_count(const Params& p, const SelectContext& c) { return budget(p, c.seq, c.layer); }
};
static_assert(Selector<PerLayer>);

}  // namespace kvf::selectors
