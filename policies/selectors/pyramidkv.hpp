#pragma once
// pyramidkv (kvpress PyramidKVPress): per-layer budgets on a linear schedule, layer 0 keeping the most, the last
// layer the least, with the mean over layers equal to S * (1 - cr); then topk with that budget.
// kvpress's PyramidKVPress is a SnapKVPress subclass: its window W is SnapKV's window_size, which here is the
// scorer's protected tail (SelectContext::protected_tail), so `pyramidkv(window_size=64)` sets the scorer's window.
// Budget (kvpress 0.5.5 get_layer_budget, Python doubles):
//   cap = W + S(1-cr);  min = (cap - W) / beta;  max = 2(cap - W) - min
//   if max >= S - W: max = S - W, min = 2(cap - W) - max
//   if not (S >= max >= min >= W): fallback max(1, round(S(1-cr)))          (uniform, i.e. plain SnapKV)
//   else round(max - layer * (max - min) / (N - 1))   (N = 1: round(max))   (round = half to even)
// The fallback triggers whenever S(1-cr)/beta < W (cr > 1 - beta W / S): at high compression PyramidKV is SnapKV.
#include <algorithm>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/params.hpp"
#include "policies/selectors/topk.hpp"

namespace kvf::selectors {

struct PyramidKV {
  static constexpr std::string_view name = "pyramidkv";
  static constexpr bool head_wise = false;
  struct Params {
    int64_t beta = 20;
    static constexpr auto fields = std::make_tuple(field("beta", &Params::beta, 1, 1 << 30));
  };

  static int64_t layer_budget(int64_t seq, double cr, int64_t window, int64_t beta, int64_t layer,
                              int64_t num_layers) {
    const double L = static_cast<double>(seq), W = static_cast<double>(window);
    const double cap = W + L * (1.0 - cr);  // max_capacity_prompt
    double min_n = (cap - W) / static_cast<double>(beta);
    double max_n = (cap - W) * 2.0 - min_n;
    if (max_n >= static_cast<double>(seq - window)) {
      max_n = static_cast<double>(seq - window);
      min_n = (cap - W) * 2.0 - max_n;
    }
    if (!(L >= max_n && max_n >= min_n && min_n >= W)) return std::max<int64_t>(1, round_half_even(L * (1.0 - cr)));
    const double steps = num_layers > 1 ? (max_n - min_n) / static_cast<double>(num_layers - 1) : 0.0;
    return round_half_even(max_n - static_cast<double>(layer) * steps);
  }

  static void select(const Params& p, const SelectContext& c, float* scores, KeptSets& out) {
    TopK::select_per_head(
        c, scores, layer_budget(c.seq, c.compression_ratio, c.protected_tail, p.beta, c.layer, c.num_layers), out);
  }
};
static_assert(Selector<PyramidKV>);

}  // namespace kvf::selectors
