#pragma once
// Query-side helpers shared by the scorers that recompute queries from the hidden states (snapkv, tova,
// expected_attention): kvpress's get_prerope_query_states (q_proj + bias, then Qwen3's per-head RMSNorm when the
// layer has q_norm), HF's rotate-half RoPE for one row, and a numerically stable softmax row. Torch-free; one
// query head of one token per call.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "compose/host_device.hpp"
#include "compose/layer_inputs.hpp"
#include "policies/dense.hpp"

namespace kvf::scorers::detail {

// q (d) = W_q[qh*d : (qh+1)*d, :] h + b_q (pre-RoPE), then q_norm: w * (x * rsqrt(mean(x^2) + eps)).
KVF_HOST_DEVICE inline void prerope_query(const float* w, const float* bias, const float* norm, double eps,
                                          const float* h, int64_t hidden, int64_t qh, int64_t d, float* q) {
  for (int64_t c = 0; c < d; ++c) {
    const float* row = w + (qh * d + c) * hidden;
    float acc = 0.f;
    for (int64_t x = 0; x < hidden; ++x) acc += row[x] * h[x];
    q[c] = bias ? acc + bias[qh * d + c] : acc;
  }
  if (norm) {
    float ss = 0.f;
    for (int64_t c = 0; c < d; ++c) ss += q[c] * q[c];
    const float r = 1.f / sqrtf(ss / static_cast<float>(d) + static_cast<float>(eps));
    for (int64_t c = 0; c < d; ++c) q[c] = norm[c] * (q[c] * r);
  }
}

inline void prerope_query(const LayerInputs& in, const float* h, int64_t qh, float* q) {
  prerope_query(in.q_proj, in.q_bias, in.q_norm, in.rms_norm_eps, h, in.hidden, qh, in.head_dim, q);
}

// Q (rows x d) <- the pre-RoPE queries of hidden rows [t0, t0 + rows) of batch row b for query head qh: one GEMM
// (host only), then bias and q_norm per row exactly as prerope_query.
inline void prerope_queries(const LayerInputs& in, int64_t b, int64_t t0, int64_t rows, int64_t qh, float* Q) {
  const int64_t d = in.head_dim;
  if (rows <= 0) return;
  const int64_t a0 = in.token_offset + t0;  // row of the underlying array
  if (in.queries && a0 >= in.query_row0 && a0 + rows <= in.query_row0 + in.query_rows) {
    const float* src = in.queries + ((b * in.q_heads + qh) * in.query_rows + (a0 - in.query_row0)) * d;
    std::copy_n(src, rows * d, Q);
    return;
  }
  dense::gemm_nt(in.hidden_row(b, t0), rows, in.hidden, in.hidden, in.q_proj + qh * d * in.hidden, d, in.hidden, Q, d);
  for (int64_t r = 0; r < rows; ++r) {
    float* q = Q + r * d;
    if (in.q_bias)
      for (int64_t c = 0; c < d; ++c) q[c] += in.q_bias[qh * d + c];
    if (in.q_norm) {
      float ss = 0.f;
      for (int64_t c = 0; c < d; ++c) ss += q[c] * q[c];
      const float rr = 1.f / sqrtf(ss / static_cast<float>(d) + static_cast<float>(in.rms_norm_eps));
      for (int64_t c = 0; c < d; ++c) q[c] = in.q_norm[c] * (q[c] * rr);
    }
  }
}

// x <- x * cos + rotate_half(x) * sin, rotate_half(x) = [-x[d/2:], x[:d/2]]  (in place).
KVF_HOST_DEVICE inline void rope_in_place(float* x, const float* cos, const float* sin, int64_t d) {
  const int64_t half = d / 2;
  for (int64_t c = 0; c < half; ++c) {
    const float a = x[c], b = x[c + half];
    x[c] = a * cos[c] - b * sin[c];
    x[c + half] = b * cos[c + half] + a * sin[c + half];
  }
}

// Channel c of rope_in_place(x) (x unchanged): the same two products and one add/sub, so the same float.
KVF_HOST_DEVICE inline float rope_channel(const float* x, const float* cos, const float* sin, int64_t d, int64_t c) {
  const int64_t half = d / 2;
  if (c < half) return x[c] * cos[c] - x[c + half] * sin[c];
  if (c < 2 * half) return x[c] * cos[c] + x[c - half] * sin[c];
  return x[c];  // odd d: the last channel is not rotated
}

KVF_HOST_DEVICE inline float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.f;
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

// z[0..n) <- softmax(z) (max-subtracted; -inf entries give 0).
KVF_HOST_DEVICE inline void softmax_in_place(float* z, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = z[i] > mx ? z[i] : mx;
  float sum = 0.f;
  for (int64_t i = 0; i < n; ++i) sum += (z[i] = expf(z[i] - mx));
  const float inv = 1.f / sum;
  for (int64_t i = 0; i < n; ++i) z[i] *= inv;
}

}  // namespace kvf::scorers::detail
