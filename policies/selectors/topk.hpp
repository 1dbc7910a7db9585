#pragma once
// topk (kvpress ScorerPress): every (batch, kv head) keeps its n = int(S * (1 - cr)) best positions.
// cr == 0 keeps everything without looking at the scores (kvpress skips scoring entirely).
#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/parallel.hpp"
#include "policies/selection.hpp"

namespace kvf::selectors {

struct TopK {
  static constexpr std::string_view name = "topk";
  static constexpr bool head_wise = false;
  struct Params {};

  static void select(const Params& p, const SelectContext& c, float* scores, KeptSets& out) {
    select_per_head(c, scores, per_head_count(p, c), out);
  }
  // Every head keeps this many, by top_n_positions on its own scores (lets the executor fuse head by head).
  static int64_t per_head_count(const Params&, const SelectContext& c) { return n_kept(c.seq, c.compression_ratio); }
  // Shared with per-layer budgets: the same n for every head.
  static void select_per_head(const SelectContext& c, const float* scores, int64_t n, KeptSets& out) {
    n = std::clamp<int64_t>(n, 0, c.seq);
    out.reset_uniform(c.batch, c.heads, n);
    std::vector<TopNScratch> scratch(static_cast<size_t>(default_workers()));
    parallel_for(c.batch * c.heads, default_workers(), [&](int64_t i, int w) {
      top_n_positions(scores + i * c.seq, c.seq, n, scratch[static_cast<size_t>(w)], out.positions.data() + i * n);
    });
  }
};
static_assert(Selector<TopK>);

}  // namespace kvf::selectors
