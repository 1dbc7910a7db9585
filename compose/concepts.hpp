#pragma once
// One concept per policy slot. Each policy header checks itself right under its definition
// (static_assert(Scorer<Knorm>)), so a broken policy fails where it is written, not where it is used.
#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "compose/kept_sets.hpp"
#include "compose/layer_inputs.hpp"

namespace kvf {

// Positions a scorer protects, and with what value (kvpress pads them after scoring the rest).
struct Protect {
  enum class Kind { None, MaxPlusOne };  // MaxPlusOne: max over ALL scores of the layer (every batch row and head) + 1
  Kind kind = Kind::None;
  int64_t first = 0;  // positions [0, first)
  int64_t last = 0;   // positions [S - last, S)
};

// Per-thread scratch memory a scorer may use (reused across heads; grows as needed).
struct Scratch {
  std::vector<float> a, b, c;
};

// What a selector knows besides the scores.
struct SelectContext {
  int64_t batch = 0, heads = 0, seq = 0;
  int64_t layer = 0, num_layers = 1;
  double compression_ratio = 0.0;
  int64_t protected_tail = 0;  // the scorer's protected window (PyramidKV's budget needs it)
};

template <class P>
concept HasParams = std::is_aggregate_v<typename P::Params> && std::default_initializable<typename P::Params>;

// Scorer: scores every cached position of one (batch, kv head); higher = keep.
template <class S>
concept Scorer = HasParams<S> && requires(const typename S::Params& p, const LayerInputs& in, Scratch& ws, float* out) {
  { S::name } -> std::convertible_to<std::string_view>;
  { S::needs_attentions } -> std::convertible_to<bool>;
  { S::score_head(p, in, int64_t{0}, int64_t{0}, ws, out) } -> std::same_as<void>;  // writes in.seq scores
  { S::protect(p, in) } -> std::same_as<Protect>;
  { S::validate(p, in) } -> std::same_as<void>;  // throws kvf::Error naming the parameter / the shape problem
};

// Optional Scorer members, found by the executors with `requires`:
//   static std::pair<int64_t, int64_t> query_rows(const Params&, const LayerInputs&)
//       hidden rows [begin, end) whose pre-RoPE queries the scorer reads: the torch bridge projects them once per
//       layer for all heads (LayerInputs::queries) instead of once per kv head. Post-ops may declare it too.
//   static QueryStatsRequest query_stats_request(const Params&, const LayerInputs&)
//       hidden rows whose pre-RoPE query mean (and covariance) the scorer reads: the torch bridge computes them once
//       per layer for all heads (LayerInputs::query_mean / query_cov), by the cheaper of two evaluations
//       (kernels/query_statistics.hpp), instead of projecting every row.
//   static void finish_layer(const Params&, const LayerInputs&, float* scores)
//       runs once after every head was scored (before protection): scores shared across heads (tova) are
//       reduced here instead of being recomputed by every head.
//   static constexpr bool token_local = true
//       the score of position t reads only row t of its own head's keys (knorm): it does not depend on which other
//       positions are present, so set-iterative granularities (block) may score the layer once.
template <class Sc>
concept TokenLocalScorer = requires { requires Sc::token_local; };
//   static constexpr bool reads_values = false, reads_hidden_states = false
//       score_head never reads LayerInputs::values / hidden_states, so granularities that gather sub-sets (block)
//       need not gather them. Without the member a scorer may read them.
template <class Sc>
constexpr bool scorer_reads_values() {
  if constexpr (requires { Sc::reads_values; }) return Sc::reads_values;
  return true;
}
template <class Sc>
constexpr bool scorer_reads_hidden_states() {
  if constexpr (requires { Sc::reads_hidden_states; }) return Sc::reads_hidden_states;
  return true;
}

struct QueryStatsRequest {
  int64_t row0 = 0, rows = 0;  // hidden rows [row0, row0 + rows) of the view
  bool covariance = false;
};
template <class X, class P>
concept DeclaresQueryStats = requires(const P& p, const LayerInputs& in) {
  { X::query_stats_request(p, in) } -> std::same_as<QueryStatsRequest>;
};

template <class X, class P>
concept DeclaresQueryRows = requires(const P& p, const LayerInputs& in) {
  { X::query_rows(p, in) } -> std::convertible_to<std::pair<int64_t, int64_t>>;
};

// Selector: turns the layer's scores (B, H, S) into kept sets.
template <class S>
concept Selector = HasParams<S> && requires(const typename S::Params& p, const SelectContext& c, float* scores, KeptSets& out) {
  { S::name } -> std::convertible_to<std::string_view>;
  { S::head_wise } -> std::convertible_to<bool>;  // may keep different counts per head (ragged cache)
  { S::select(p, c, scores, out) } -> std::same_as<void>;  // may modify scores in place (AdaKV safeguard)
};

// Optional Selector member:
//   static int64_t per_head_count(const Params&, const SelectContext&)
//       select() keeps exactly this many positions in every head, the top of that head's own scores
//       (top_n_positions). With a whole-sequence granularity and a scorer that neither protects nor finishes the
//       layer, the CPU executor then scores, selects and gathers each head in one pass, while its keys are cached.
template <class Se>
concept PerHeadCountSelector = requires(const typename Se::Params& p, const SelectContext& c) {
  { Se::per_head_count(p, c) } -> std::convertible_to<int64_t>;
};
// Optional Granularity member: static constexpr bool whole_sequence = true (token): one selection over all
// positions, scored once.
template <class G>
concept WholeSequenceGranularity = requires { requires G::whole_sequence; };

// Granularity: the unit of selection. It drives scoring and selection for one layer.
template <class G>
concept Granularity = HasParams<G> && requires {
  { G::name } -> std::convertible_to<std::string_view>;
  { G::needs_per_head_selector } -> std::convertible_to<bool>;  // true for kvpress's ScorerPress-only wrappers
};

// PostOp: acts on what was kept (re-rotation, channel pruning), in place on the packed kept rows:
// keys/values are (kept.total(), d), head after head in KeptSets order (positions ascending).
template <class P>
concept PostOp = HasParams<P> && requires(const typename P::Params& p, const LayerInputs& in, const KeptSets& kept,
                                          float* keys, float* values) {
  { P::name } -> std::convertible_to<std::string_view>;
  { P::apply(p, in, kept, keys, values) } -> std::same_as<void>;
};

}  // namespace kvf
