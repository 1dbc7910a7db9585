// Scorer presses (kvpress ScorerPress subclasses): scorer x per-head top-k x token.
// One line per press: r.add<Press<...>>("shape", "description", "example spec with small parameters");
#include "kernels/reference/basic.hpp"
#include "kernels/reference/scorers.hpp"
#include "kernels/typed_press.hpp"

namespace kvf {

void add_scorer_presses(PressRegistry& r) {
  using selectors::TopK;
  using granularity::Token;
  r.add<Press<scorers::Random, TopK, Token>>("random", "uniform random scores, seeded or not (kvpress RandomPress)",
                                             "random(seed=42)");
  r.add<Press<scorers::StreamingLLM, TopK, Token>>(
      "streaming_llm", "sink tokens + the most recent window (kvpress StreamingLLMPress)", "streaming_llm(n_sink=4)");
  r.add<Press<scorers::SnapKV, TopK, Token>>(
      "snapkv", "attention of the last window_size queries, pooled, window kept (kvpress SnapKVPress)",
      "snapkv(window_size=8, kernel_size=5)");
  r.add<Press<scorers::TOVA, TopK, Token>>("tova", "last query's attention averaged over all heads (kvpress TOVAPress)",
                                           "tova");
  r.add<Press<scorers::ObservedAttention, TopK, Token>>(
      "observed_attention", "prefill attention received, normalised per position (kvpress ObservedAttentionPress)",
      "observed_attention");
  r.add<Press<scorers::ExpectedAttention, TopK, Token>>(
      "expected_attention", "expected attention of Gaussian future queries x value norm (kvpress ExpectedAttentionPress)",
      "expected_attention(n_future_positions=64, n_sink=4)");
  r.add<Press<scorers::KeyDiff, TopK, Token>>("keydiff", "keys least aligned with the mean key (kvpress KeyDiffPress)",
                                              "keydiff");
  r.add<Press<scorers::LagKV, TopK, Token>>(
      "lagkv", "spread of keys/values relative to the next partition (kvpress LagKVPress)", "lagkv(n_sink=4, lag_size=8)");
}

}  // namespace kvf
