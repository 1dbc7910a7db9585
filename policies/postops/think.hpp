#pragma once
// think (kvpress ThinKPress): key-channel pruning, per (batch, kv head), of the kept keys. With w = window_size:
//   Q = RoPE(pre-RoPE queries of the layer's last w hidden rows), with the RoPE rows of the last w positions
//   qn[c] = mean over the G query heads of the group of (mean over the w queries of Q[c]^2)
//   kn[c] = mean over the head's kept keys of K[c]^2          (kvpress: ThinK after the token press, as in
//                                                               ComposedPress([press, ThinKPress]))
//   the m = int(d * key_channel_compression_ratio) channels with the smallest qn * kn are set to 0 in every kept key.
// As kvpress: the pruned channels are ZEROED, the shape is unchanged (no memory saving); a channel and its RoPE
// partner (c, c + d/2) are judged independently; the queries come from the whole layer's hidden states (not a
// chunk's); keys appended later (question, answer) are not pruned. Ties go to the lower channel; a NaN score is
// never among the smallest (torch.topk(largest=False)). kvpress reports compression_ratio = r / 2 for ThinK alone.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <vector>

#include "compose/concepts.hpp"
#include "compose/host_device.hpp"
#include "compose/params.hpp"
#include "compose/parallel.hpp"
#include "core/error.hpp"
#include "policies/scorers/query_states.hpp"

namespace kvf::postops {

struct ThinK {
  static constexpr std::string_view name = "think";
  struct Params {
    double key_channel_compression_ratio = 0.0;
    int64_t window_size = 32;
    static constexpr auto fields =
        std::make_tuple(field("key_channel_compression_ratio", &Params::key_channel_compression_ratio, 0.0, 1.0),
                        field("window_size", &Params::window_size, 1, 1 << 30));
  };

  static std::pair<int64_t, int64_t> query_rows(const Params& p, const LayerInputs& in) {
    if (p.key_channel_compression_ratio == 0.0) return {0, 0};
    return {in.tokens - std::min(p.window_size, in.tokens), in.tokens};
  }

  static int64_t channels_pruned(int64_t d, double r) { return static_cast<int64_t>(static_cast<double>(d) * r); }

  // qn (B, H, d): the query side of the channel score.
  static std::vector<float> query_norms(const Params& p, const LayerInputs& in) {
    const int64_t B = in.batch, Hq = in.q_heads, H = in.kv_heads, G = in.group(), d = in.head_dim;
    const int64_t w = std::min(p.window_size, in.tokens);       // hidden_states[:, -w:]
    const int64_t wr = std::min(p.window_size, in.rope_rows);   // cos[:, -w:]
    if (w != wr) throw Error("think: the RoPE tables and the hidden states cover different windows");
    std::vector<float> qh(static_cast<size_t>(B * Hq * d), 0.f);
    parallel_for(B * Hq, default_workers(), [&](int64_t i, int) {
      const int64_t b = i / Hq, qhd = i % Hq;
      std::vector<float> Q(static_cast<size_t>(w * d));
      std::vector<double> acc(static_cast<size_t>(d), 0.0);
      scorers::detail::prerope_queries(in, b, in.tokens - w, w, qhd, Q.data());  // precomputed, or one GEMM
      for (int64_t r = 0; r < w; ++r) {
        float* q = Q.data() + r * d;
        const int64_t rr = in.rope_rows - w + r;
        scorers::detail::rope_in_place(q, in.cos_row(b, rr), in.sin_row(b, rr), d);
        for (int64_t c = 0; c < d; ++c) acc[static_cast<size_t>(c)] += static_cast<double>(q[c] * q[c]);
      }
      for (int64_t c = 0; c < d; ++c) qh[static_cast<size_t>(i * d + c)] = static_cast<float>(acc[c] / w);
    });
    std::vector<float> qn(static_cast<size_t>(B * H * d), 0.f);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t c = 0; c < d; ++c) {
          float s = 0.f;
          for (int64_t g = 0; g < G; ++g) s += qh[static_cast<size_t>(((b * Hq) + h * G + g) * d + c)];
          qn[static_cast<size_t>((b * H + h) * d + c)] = s / static_cast<float>(G);
        }
    return qn;
  }

  // The pruning order of channels: smaller score first, a NaN after every number, ties (-0 == +0, NaN == NaN) to
  // the lower channel. A strict total order; shared with the CUDA post-op (kernels/cuda/press_kernels.cu).
  KVF_HOST_DEVICE static bool channel_before(const float* score, int64_t a, int64_t b) {
    const bool na = score[a] != score[a], nb = score[b] != score[b];
    if (na != nb) return nb;
    if (!na && score[a] != score[b]) return score[a] < score[b];
    return a < b;
  }
  // Channel c is pruned iff fewer than m channels come before it (its index in the order above is < m).
  KVF_HOST_DEVICE static bool channel_pruned(const float* score, int64_t d, int64_t m, int64_t c) {
    int64_t r = 0;
    for (int64_t a = 0; a < d; ++a) r += channel_before(score, a, c);
    return r < m;
  }

  // The m channels with the smallest score (NaN never, ties to the lower channel), ascending.
  static void smallest_channels(const float* score, int64_t d, int64_t m, std::vector<int32_t>& out) {
    out.resize(static_cast<size_t>(d));
    std::iota(out.begin(), out.end(), 0);
    auto before = [score](int32_t a, int32_t b) { return channel_before(score, a, b); };
    std::nth_element(out.begin(), out.begin() + m, out.end(), before);
    out.resize(static_cast<size_t>(m));
    std::sort(out.begin(), out.end());
  }

  static void apply(const Params& p, const LayerInputs& in, const KeptSets& kept, float* keys, float*) {
    const int64_t d = in.head_dim, m = std::min(channels_pruned(d, p.key_channel_compression_ratio), d);
    if (p.key_channel_compression_ratio == 0.0 || m == 0) return;
    if (!in.hidden_states || !in.q_proj || !in.cos || !in.sin)
      throw Error("think: needs the layer's hidden states, q_proj and RoPE tables");
    const std::vector<float> qn = query_norms(p, in);
    parallel_for(kept.batch * kept.heads, default_workers(), [&](int64_t i, int) {
      const int64_t n = kept.offsets[i + 1] - kept.offsets[i];
      if (n == 0) return;  // nothing kept, nothing to prune
      float* k = keys + kept.offsets[i] * d;
      std::vector<double> acc(static_cast<size_t>(d), 0.0);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < d; ++c) acc[static_cast<size_t>(c)] += static_cast<double>(k[j * d + c] * k[j * d + c]);
      std::vector<float> score(static_cast<size_t>(d));
      for (int64_t c = 0; c < d; ++c)
        score[static_cast<size_t>(c)] = qn[static_cast<size_t>(i * d + c)] * static_cast<float>(acc[c] / n);
      std::vector<int32_t> pruned;
      smallest_channels(score.data(), d, m, pruned);
      for (int64_t j = 0; j < n; ++j)
        for (int32_t c : pruned) k[j * d + c] = 0.f;
    });
  }
};
static_assert(PostOp<ThinK>);

}  // namespace kvf::postops
