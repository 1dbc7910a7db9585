#pragma once
// Press<Scorer, Selector, Granularity, PostOps...>: a press as a pure type (nothing captured, nothing lazy).
// kernels/ executes it; Params carries the runtime values (kvpress's parameter names and defaults).
//
// Invalid combinations fail to compile with one sentence saying why (pinned by tests/must_not_compile).
#include <tuple>

#include "compose/concepts.hpp"

namespace kvf {

template <class Sc, class Se, class Gr, class... Po>
struct Press {
  static_assert(Scorer<Sc>, "kvf::Press: the first argument must be a Scorer (Params, name, needs_attentions, "
                            "score_head, protect, validate; see compose/concepts.hpp).");
  static_assert(Selector<Se>, "kvf::Press: the second argument must be a Selector (Params, name, head_wise, select).");
  static_assert(Granularity<Gr>, "kvf::Press: the third argument must be a Granularity (Params, name, "
                                 "needs_per_head_selector).");
  static_assert((PostOp<Po> && ...), "kvf::Press: every argument after the Granularity must be a PostOp "
                                     "(Params, name, apply; see compose/concepts.hpp).");
  static_assert(!(Gr::needs_per_head_selector && Se::head_wise),
                "kvf::Press: chunk/chunkkv/block granularities select per head (they wrap a kvpress ScorerPress); "
                "a head-wise selector such as adakv cannot be used inside them.");
  static_assert(!(Gr::needs_per_head_selector && Sc::needs_attentions),
                "kvf::Press: chunk/chunkkv/block granularities re-score sub-ranges without attention weights "
                "(kvpress asserts attentions is None), so a scorer that needs them (observed_attention) cannot be used.");

  using scorer = Sc;
  using selector = Se;
  using granularity = Gr;
  using postops = std::tuple<Po...>;

  struct Params {
    double compression_ratio = 0.0;  // fraction REMOVED, as in kvpress
    typename Sc::Params scorer{};
    typename Se::Params selector{};
    typename Gr::Params granularity{};
    std::tuple<typename Po::Params...> post{};
  };
};

}  // namespace kvf
