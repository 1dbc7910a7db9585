#pragma once
// observed_attention (kvpress ObservedAttentionPress, H2O-style): the attention each position received during
// the prefill, normalised by how many (causal) queries could see it, then averaged over the GQA group:
//   s[t] = mean_{g < G} (sum_i A[b, h*G + g, i, t]) / (S - t)
// Needs the eager attention weights (B, Hq, T, S). No protection. kvpress's divisor is arange(S, 0, -1) cast to
// the attention dtype (inexact above 256 in bf16); here it is exact (float32 attentions).
#include <string>

#include "compose/concepts.hpp"
#include "core/error.hpp"

namespace kvf::scorers {

struct ObservedAttention {
  static constexpr std::string_view name = "observed_attention";
  static constexpr bool needs_attentions = true;
  static constexpr bool reads_values = false, reads_hidden_states = false;
  struct Params {};

  static void validate(const Params&, const LayerInputs& in) {
    if (!in.attentions)
      throw Error("observed_attention: needs the layer's attention weights (eager attention)");
  }
  static Protect protect(const Params&, const LayerInputs&) { return {}; }

  static void score_head(const Params&, const LayerInputs& in, int64_t b, int64_t h, Scratch& ws, float* out) {
    const int64_t S = in.seq, G = in.group();
    ws.a.resize(static_cast<size_t>(S));
    float* col = ws.a.data();
    for (int64_t t = 0; t < S; ++t) out[t] = 0.f;
    for (int64_t g = 0; g < G; ++g) {
      for (int64_t t = 0; t < S; ++t) col[t] = 0.f;
      for (int64_t i = 0; i < in.tokens; ++i) {
        const float* row = in.attention(b, h * G + g, i);
        for (int64_t t = 0; t < S; ++t) col[t] += row[t];
      }
      for (int64_t t = 0; t < S; ++t) out[t] += col[t] / static_cast<float>(S - t);
    }
    for (int64_t t = 0; t < S; ++t) out[t] /= static_cast<float>(G);
  }
};
static_assert(Scorer<ObservedAttention>);

}  // namespace kvf::scorers
