#pragma once
// token: the whole cache is scored once and selected per token (kvpress's default).
#include "compose/concepts.hpp"
#include "compose/score_layer.hpp"

namespace kvf::granularity {

struct Token {
  static constexpr std::string_view name = "token";
  static constexpr bool needs_per_head_selector = false;
  // The whole sequence is one selection unit: with a per-head-count selector, a head's score -> select -> gather
  // needs nothing from other heads (the executor may then run them head by head).
  static constexpr bool whole_sequence = true;
  struct Params {};

  // Score the whole layer once, then let the selector choose.
  template <class Sc, class Se>
  static void run(const Params&, const typename Sc::Params& sp, const typename Se::Params& selp, const LayerInputs& in,
                  const SelectContext& ctx, std::vector<float>& scores, KeptSets& kept) {
    scores.resize(static_cast<size_t>(in.batch * in.kv_heads * in.seq));
    score_layer<Sc>(sp, in, scores.data());
    Se::select(selp, ctx, scores.data(), kept);
  }
};
static_assert(Granularity<Token>);

}  // namespace kvf::granularity
