#pragma once
// The query/attention scorers on the device with libtorch ops (cuBLAS GEMMs): the same math as the policies'
// score_head (policies/scorers/*.hpp), whole layer at once. (B, H, S) float32 scores WITHOUT protection (the
// executor applies Scorer::protect, as compose/score_layer.hpp does); the protected slots hold 0.
// Part of kvf_cuda_torch: tensors and numbers only (no PressInputs, see device_ops.hpp). Device-agnostic tensor code:
// tests/test_device_scorers_host.cpp also runs it on CPU tensors against the CPU policies.
#include <cstdint>

#include <ATen/Tensor.h>

namespace kvf::cuda {

// What the query-side scorers read besides keys/values (PressInputs' fields, on the keys' device).
struct QueryInputs {
  at::Tensor hidden_states;         // (B, T, hidden)
  at::Tensor q_proj, q_bias, q_norm;  // (Hq*d, hidden); (Hq*d) or undefined; (d) or undefined
  at::Tensor cos, sin;              // (B, R, d)
  at::Tensor inv_freq;              // (d/2)
  at::Tensor attentions;            // (B, Hq, T, S) or undefined
  int64_t q_heads = 0;
  double rms_norm_eps = 1e-6;
};

// Pre-RoPE queries (q_proj + bias, then q_norm) of hidden rows [t0, t0 + rows): (B, Hq, rows, d) float32 on
// like's device (query_states.hpp's prerope_queries, one GEMM).
at::Tensor prerope_queries(const QueryInputs& q, const at::Tensor& like, int64_t t0, int64_t rows);

at::Tensor keydiff_scores(const at::Tensor& keys);
at::Tensor snapkv_scores(const QueryInputs& q, const at::Tensor& keys, int64_t window_size, int64_t kernel_size);
at::Tensor tova_scores(const QueryInputs& q, const at::Tensor& keys);
at::Tensor observed_attention_scores(const QueryInputs& q, const at::Tensor& keys);
struct ExpectedAttentionArgs {
  int64_t n_future_positions = 512, n_sink = 4;
  bool use_covariance = true, use_vnorm = true;
  double epsilon = 0.0;
};
at::Tensor expected_attention_scores(const QueryInputs& q, const at::Tensor& keys, const at::Tensor& values,
                                     const ExpectedAttentionArgs& a);

}  // namespace kvf::cuda
