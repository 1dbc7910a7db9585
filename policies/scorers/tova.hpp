#pragma once
// tova (kvpress TOVAPress): the last token's attention, averaged over ALL query heads (not a GQA mean), the same
// scores for every kv head; the last position is protected with the layer-wide max + 1.
//   s[t] = mean_{j < Hq} softmax_t(q_j . k_t / sqrt(d))   over all S keys, t in [0, S - 1)
// The last query is recomputed from the last hidden row (q_proj + bias, q_norm) rotated with the last cos/sin
// row (kvpress: SnapKVPress.compute_window_attention with window 1), or read from row T - 1 of the eager
// attention weights when they are given.
#include <string>

#include "compose/concepts.hpp"
#include "core/error.hpp"
#include "policies/scorers/snapkv.hpp"

namespace kvf::scorers {

struct TOVA {
  static constexpr std::string_view name = "tova";
  static constexpr bool needs_attentions = false;
  struct Params {};

  static void validate(const Params&, const LayerInputs& in) {
    if (in.seq < 2) throw Error("tova: needs at least 2 cached tokens (the last one is protected)");
    if (!in.attentions && (!in.q_proj || !in.cos || !in.sin || !in.hidden_states || in.tokens < 1))
      throw Error("tova: needs the hidden states, q_proj and RoPE tables (or the attention weights)");
  }
  static Protect protect(const Params&, const LayerInputs&) { return {Protect::Kind::MaxPlusOne, 0, 1}; }

  // Every kv head computes the same mean over all Hq query heads (kv head h's slice of them is h's group).
  static void score_head(const Params&, const LayerInputs& in, int64_t b, int64_t, Scratch& ws, float* out) {
    const int64_t S = in.seq, n = S - 1, G = in.group();
    ws.b.resize(static_cast<size_t>(G * n));
    float* acc = ws.b.data();
    for (int64_t t = 0; t < S; ++t) out[t] = 0.f;
    for (int64_t kh = 0; kh < in.kv_heads; ++kh) {
      SnapKV::window_attention_sums(in, b, kh, 1, ws, acc);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t t = 0; t < n; ++t) out[t] += acc[g * n + t];
    }
    for (int64_t t = 0; t < n; ++t) out[t] /= static_cast<float>(in.q_heads);
  }
};
static_assert(Scorer<TOVA>);

}  // namespace kvf::scorers
