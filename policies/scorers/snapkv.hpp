#pragma once
// snapkv (kvpress SnapKVPress): how much the last window_size queries attend to each earlier position.
//   per query head j of the group: W[i, t] = softmax_t(q_i . k_t / sqrt(d)) over all S keys with the causal mask
//   (window row i is position S - w + i, so t > S - w + i is masked), window columns dropped after the softmax;
//   s_j[t] = avg_pool1d(mean_i W[i, t], kernel_size, padding kernel_size // 2)  (zero padding, always / k);
//   s[t] = mean over the G query heads of the group.      t in [0, S - w); the last w positions are protected
//   with the layer-wide max + 1.
// The window queries q_i are recomputed from the last w hidden rows (q_proj + bias, q_norm) and rotated with the
// last w rows of cos/sin, as kvpress's compute_window_attention; when the layer's eager attention weights are
// given (B, Hq, T, S), rows T - w .. T - 1 are read instead (kvpress's `attentions is not None` branch).
// Asserts tokens > window_size (kvpress) and an odd kernel_size (kvpress crashes on an even one).
#include <cmath>
#include <string>

#include "compose/concepts.hpp"
#include "compose/params.hpp"
#include "core/error.hpp"
#include "policies/scorers/query_states.hpp"

namespace kvf::scorers {

struct SnapKV {
  static constexpr std::string_view name = "snapkv";
  static constexpr bool needs_attentions = false;
  struct Params {
    int64_t window_size = 64;
    int64_t kernel_size = 5;
    static constexpr auto fields = std::make_tuple(field("window_size", &Params::window_size, 1, 1 << 30),
                                                   field("kernel_size", &Params::kernel_size, 1, 1 << 30));
  };

  static void validate(const Params& p, const LayerInputs& in) {
    if (in.tokens <= p.window_size)
      throw Error("snapkv: the query length (" + std::to_string(in.tokens) + ") must be greater than window_size=" +
                  std::to_string(p.window_size));
    if (in.seq <= p.window_size)
      throw Error("snapkv: the cache (" + std::to_string(in.seq) + " tokens) must be longer than window_size=" +
                  std::to_string(p.window_size));
    if (p.kernel_size % 2 == 0)
      throw Error("snapkv: kernel_size must be odd (kvpress's pooled length is wrong for even kernels), got " +
                  std::to_string(p.kernel_size));
    if (!in.attentions && (!in.q_proj || !in.cos || !in.sin || !in.hidden_states))
      throw Error("snapkv: needs the hidden states, q_proj and RoPE tables (or the attention weights)");
  }
  static Protect protect(const Params& p, const LayerInputs&) {
    return {Protect::Kind::MaxPlusOne, 0, p.window_size};
  }
  static std::pair<int64_t, int64_t> query_rows(const Params& p, const LayerInputs& in) {
    return {in.tokens - p.window_size, in.tokens};
  }

  // Window attention summed over the window rows, per query head of kv head h: acc (G, n) with n = S - w.
  // Shared with tova (w = 1).
  static void window_attention_sums(const LayerInputs& in, int64_t b, int64_t h, int64_t w, Scratch& ws,
                                    float* acc) {
    const int64_t S = in.seq, d = in.head_dim, G = in.group(), n = S - w;
    for (int64_t i = 0; i < G * n; ++i) acc[i] = 0.f;
    if (in.attentions) {
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < w; ++i) {
          const float* row = in.attention(b, h * G + g, in.tokens - w + i);
          for (int64_t t = 0; t < n; ++t) acc[g * n + t] += row[t];
        }
      return;
    }
    // The G * w window queries of the group (precomputed per layer, or one GEMM each), then their logits against
    // all S keys in ONE GEMM (K is packed once per kv head), then the causal softmax row by row (row i sees keys
    // 0 .. S - w + i).
    ws.a.resize(static_cast<size_t>(G * w * d + G * w * S));
    float* Qw = ws.a.data();
    float* Z = Qw + G * w * d;
    const float sqrt_d = static_cast<float>(std::sqrt(static_cast<double>(d)));
    const float* K = in.key(b, h);
    for (int64_t g = 0; g < G; ++g) {
      float* Qg = Qw + g * w * d;
      detail::prerope_queries(in, b, in.tokens - w, w, h * G + g, Qg);
      for (int64_t i = 0; i < w; ++i) {
        const int64_t r = in.rope_rows - w + i;
        detail::rope_in_place(Qg + i * d, in.cos_row(b, r), in.sin_row(b, r), d);
      }
    }
    dense::gemm_nt(Qw, G * w, d, d, K, S, d, Z, S);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t i = 0; i < w; ++i) {
        float* z = Z + (g * w + i) * S;
        dense::softmax_in_place(z, n + i + 1, sqrt_d);  // row i sees keys 0 .. n + i
        Eigen::Map<Eigen::ArrayXf>(acc + g * n, n) += Eigen::Map<const Eigen::ArrayXf>(z, n);
      }
  }

  // out[t] = (1/k) sum_{u = t - k/2}^{t + k/2} x[u], x zero outside [0, n) (avg_pool1d, count_include_pad).
  KVF_HOST_DEVICE static void avg_pool(const float* x, int64_t n, int64_t k, float* out) {
    const int64_t r = k / 2;
    for (int64_t t = 0; t < n; ++t) {
      float s = 0.f;
      for (int64_t u = t - r; u <= t + r; ++u)
        if (u >= 0 && u < n) s += x[u];
      out[t] = s / static_cast<float>(k);
    }
  }

  static void score_head(const Params& p, const LayerInputs& in, int64_t b, int64_t h, Scratch& ws, float* out) {
    const int64_t S = in.seq, w = p.window_size, G = in.group(), n = S - w;
    ws.b.resize(static_cast<size_t>(G * n + n));
    float* acc = ws.b.data();
    float* pooled = acc + G * n;
    window_attention_sums(in, b, h, w, ws, acc);
    for (int64_t t = 0; t < S; ++t) out[t] = 0.f;
    for (int64_t g = 0; g < G; ++g) {
      float* a = acc + g * n;
      for (int64_t t = 0; t < n; ++t) a[t] /= static_cast<float>(w);  // mean over the window rows
      avg_pool(a, n, p.kernel_size, pooled);
      for (int64_t t = 0; t < n; ++t) out[t] += pooled[t];
    }
    for (int64_t t = 0; t < n; ++t) out[t] /= static_cast<float>(G);  // GQA mean; [n, S) is protected
  }
};
static_assert(Scorer<SnapKV>);

}  // namespace kvf::scorers
