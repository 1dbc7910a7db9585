#pragma once
// Reference specialisations of the basic policies: knorm, topk (ScorerPress), token granularity.
#include "kernels/reference/reference.hpp"
#include "policies/granularity/token.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/selectors/topk.hpp"

namespace kvf {

template <>
struct RefScorer<scorers::Knorm> {
  static at::Tensor score(const scorers::Knorm::Params&, const PressInputs& in) { return -in.keys.norm(2, -1); }
};

template <>
struct RefSelector<selectors::TopK> {
  static KeptSets select(const selectors::TopK::Params&, const SelectContext& c, const at::Tensor& scores) {
    const int64_t n = std::clamp<int64_t>(n_kept(c.seq, c.compression_ratio), 0, c.seq);
    return kept_from_indices(std::get<1>(scores.topk(n, -1)));
  }
};

template <>
struct RefGranularity<granularity::Token> {
  template <class Sc, class Se>
  static void run(const granularity::Token::Params&, const typename Sc::Params& sp, const typename Se::Params& selp,
                  const PressInputs& in, const SelectContext& ctx, at::Tensor& scores, KeptSets& kept) {
    scores = RefScorer<Sc>::score(sp, in).to(at::kFloat).contiguous();
    kept = RefSelector<Se>::select(selp, ctx, scores);
  }
};

}  // namespace kvf
