#pragma once
// tova (kvpress TOVAPress): the last token's attention, averaged over ALL query heads (not a GQA mean), the same
// scores for every kv head; the last position is protected with the layer-wide max + 1.
//   s[t] = mean_{j < Hq} softmax_t(q_j . k_t / sqrt(d))   over all S keys, t in [0, S - 1)
// The last query is recomputed from the last hidden row (q_proj + bias, q_norm) rotated with the last cos/sin
// row (kvpress: SnapKVPress.compute_window_attention with window 1), or read from row T - 1 of the eager
// attention weights when they are given.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

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

  static std::pair<int64_t, int64_t> query_rows(const Params&, const LayerInputs& in) {
    return {in.tokens - 1, in.tokens};
  }
  // Kv head h writes the softmax sum of its own G query heads; finish_layer adds the heads of a batch row, divides
  // by Hq and gives every kv head the same row (each query head's attention is computed once per layer).
  static void score_head(const Params&, const LayerInputs& in, int64_t b, int64_t h, Scratch& ws, float* out) {
    const int64_t S = in.seq, n = S - 1, G = in.group();
    ws.b.resize(static_cast<size_t>(G * n));
    float* acc = ws.b.data();
    for (int64_t t = 0; t < S; ++t) out[t] = 0.f;
    SnapKV::window_attention_sums(in, b, h, 1, ws, acc);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t t = 0; t < n; ++t) out[t] += acc[g * n + t];
  }
  static void finish_layer(const Params&, const LayerInputs& in, float* scores) {
    const int64_t S = in.seq, n = S - 1, H = in.kv_heads;
    std::vector<float> total(static_cast<size_t>(S));
    for (int64_t b = 0; b < in.batch; ++b) {
      float* row0 = scores + b * H * S;
      std::fill(total.begin(), total.end(), 0.f);
      for (int64_t h = 0; h < H; ++h)
        for (int64_t t = 0; t < n; ++t) total[static_cast<size_t>(t)] += row0[h * S + t];
      for (int64_t t = 0; t < n; ++t) total[static_cast<size_t>(t)] /= static_cast<float>(in.q_heads);
      for (int64_t h = 0; h < H; ++h) std::copy(total.begin(), total.end(), row0 + h * S);
    }
  }
};
static_assert(Scorer<TOVA>);

}  // namespace kvf::scorers
