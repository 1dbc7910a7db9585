// block(<scorer needing attention weights>): BlockPress re-scores subsets without attention weights (kvpress
// asserts attentions is None), so a scorer like observed_attention must be rejected at compile time.
#include "compose/press.hpp"
#include "policies/granularity/block.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/selectors/topk.hpp"

struct NeedsAttention : kvf::scorers::Knorm {
  static constexpr std::string_view name = "needs_attention";
#ifdef KVF_MNC_CONTROL
  static constexpr bool needs_attentions = false;
#else
  static constexpr bool needs_attentions = true;
#endif
};
static_assert(kvf::Scorer<NeedsAttention>);

using P = kvf::Press<NeedsAttention, kvf::selectors::TopK, kvf::granularity::Block>;
P::Params params;
