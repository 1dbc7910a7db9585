#pragma once
// Mean and covariance of a layer's pre-RoPE queries over a range of hidden rows, for every query head at once
// (expected_attention's statistics; kvpress's get_query_statistics): libtorch ops on any device, so the CPU bridge
// (TypedPress) and the CUDA scorer (kernels/cuda/device_scorers.cpp) share them.
//
// Two evaluations of the same math. `Direct` is kvpress's: project every row, Q (B, Hq, N, d), then mu = mean_t Q_t
// and Sigma = Qc^T Qc / N per head (N * hidden * Hq*d multiply-adds for the projection). `Gram` uses that the
// projection is linear (q_proj + bias, no q_norm): mu = W mean(h) + b and Sigma_j = W_j C W_j^T with C the hidden
// rows' covariance Hc^T Hc / N, formed once for all heads and only on and above its block diagonal (C is
// symmetric): ~N * hidden^2 * (nb + 1) / (2 nb) + Hq*d * hidden^2 multiply-adds. For the Llama-3.1-8B shape at
// N = 32768 that is 0.67x of Direct's work, at N = 131072 0.58x (at N = 8192 1.05x: Direct). Auto picks the cheaper (the mean alone is always
// the linear path's one GEMV); q_norm forces Direct.
// The float results differ from Direct's in rounding only (the sums run in another order).
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

namespace kvf {

enum class QueryStatsPath { Auto, Direct, Gram };

struct QueryStatistics {
  at::Tensor mean;        // (B, Hq, d) float32
  at::Tensor covariance;  // (B, Hq, d, d) float32, biased (/ N); undefined unless asked for
};

inline constexpr int64_t kSmallProjectionRows = 512;

// Pre-RoPE queries of hidden rows [t0, t0 + rows): (B, Hq, rows, d) float32 on hidden's device.
inline at::Tensor prerope_query_rows(const at::Tensor& hidden, const at::Tensor& q_proj, const at::Tensor& q_bias,
                                     const at::Tensor& q_norm, double eps, int64_t q_heads, int64_t t0, int64_t rows) {
  const int64_t B = hidden.size(0), d = q_proj.size(0) / q_heads;
  at::Tensor x;
  if (hidden.is_cpu() && B * rows <= kSmallProjectionRows) {
    // Few rows (a window): W h^T instead of h W^T. The same dot products, but MKL then streams the large q_proj
    // as the left operand instead of packing it as the right one: 1.5-2.3x faster for 8-256 rows on the 8B shape
    // (docs/results.md); bitwise equal to h W^T for 32 and 64 rows there, within rounding otherwise.
    const at::Tensor h = hidden.narrow(1, t0, rows).reshape({B * rows, hidden.size(2)});
    x = at::mm(q_proj, h.t()).t().reshape({B, rows, q_proj.size(0)});
  } else {
    x = at::matmul(hidden.narrow(1, t0, rows), q_proj.t());
  }
  if (q_bias.defined()) x = x + q_bias;
  x = x.view({B, rows, q_heads, d});
  if (q_norm.defined()) x = q_norm * (x * at::rsqrt(x.pow(2).mean(-1, true) + eps));
  return x.permute({0, 2, 1, 3}).contiguous();
}

// Multiply-adds of each path (the choice of Auto), for N rows, hidden size D, Hq*d = P outputs, nb column blocks.
inline std::pair<double, double> query_stats_costs(int64_t N, int64_t D, int64_t Hq, int64_t d, int64_t block) {
  const double n = static_cast<double>(N), hd = static_cast<double>(D), p = static_cast<double>(Hq * d);
  const double nb = static_cast<double>((D + block - 1) / block);
  const double direct = n * hd * p + n * p * static_cast<double>(d);
  const double gram = n * hd * hd * (nb + 1) / (2 * nb) + p * hd * hd + p * hd * static_cast<double>(d);
  return {direct, gram};
}

// X^T X for X (N, D), float32: the blocks on and above the diagonal by GEMM, the rest mirrored.
inline at::Tensor symmetric_gram(const at::Tensor& X, int64_t block) {
  const int64_t D = X.size(1);
  at::Tensor C = at::empty({D, D}, X.options());
  for (int64_t i = 0; i < D; i += block) {
    const int64_t bi = std::min(block, D - i);
    const at::Tensor Xi = X.narrow(1, i, bi);
    for (int64_t j = i; j < D; j += block) {
      const int64_t bj = std::min(block, D - j);
      const at::Tensor Cij = at::mm(Xi.t(), X.narrow(1, j, bj));
      C.narrow(0, i, bi).narrow(1, j, bj).copy_(Cij);
      if (j != i) C.narrow(0, j, bj).narrow(1, i, bi).copy_(Cij.t());
    }
  }
  return C;
}

// Statistics of the pre-RoPE queries of hidden rows [t0, t0 + rows) (rows > 0), all inputs float32 on one device:
// hidden (B, T, D), q_proj (Hq*d, D), q_bias (Hq*d) or undefined, q_norm (d) or undefined.
inline QueryStatistics query_statistics(const at::Tensor& hidden, const at::Tensor& q_proj, const at::Tensor& q_bias,
                                        const at::Tensor& q_norm, double eps, int64_t q_heads, int64_t t0,
                                        int64_t rows, bool covariance, QueryStatsPath path = QueryStatsPath::Auto) {
  constexpr int64_t kBlock = 512;
  const int64_t B = hidden.size(0), D = hidden.size(2), d = q_proj.size(0) / q_heads;
  if (path == QueryStatsPath::Auto) {
    // Without the covariance the linear path is one GEMV (mean of h, then W); with it, the cheaper one.
    const auto [direct, gram] = query_stats_costs(rows, D, q_heads, d, kBlock);
    path = !covariance || gram < direct ? QueryStatsPath::Gram : QueryStatsPath::Direct;
  }
  if (q_norm.defined()) path = QueryStatsPath::Direct;  // RMSNorm per head is not linear
  QueryStatistics s;
  if (path == QueryStatsPath::Direct) {
    const at::Tensor Q = prerope_query_rows(hidden, q_proj, q_bias, q_norm, eps, q_heads, t0, rows);
    s.mean = Q.mean(2);
    if (covariance) {
      const at::Tensor c = Q - s.mean.unsqueeze(2);
      s.covariance = at::matmul(c.transpose(2, 3), c) / static_cast<double>(rows);
    }
    return s;
  }
  const at::Tensor h = hidden.narrow(1, t0, rows);  // (B, N, D)
  const at::Tensor hm = h.mean(1);                  // (B, D)
  at::Tensor mu = at::matmul(hm, q_proj.t());       // (B, Hq*d)
  if (q_bias.defined()) mu = mu + q_bias;
  s.mean = mu.view({B, q_heads, d}).contiguous();
  if (!covariance) return s;
  const at::Tensor W = q_proj.view({q_heads, d, D});
  std::vector<at::Tensor> covs;
  for (int64_t b = 0; b < B; ++b) {
    const at::Tensor hc = h.select(0, b) - hm.select(0, b);                        // (N, D), centred
    const at::Tensor C = symmetric_gram(hc, kBlock) / static_cast<double>(rows);  // (D, D)
    const at::Tensor M = at::matmul(q_proj, C).view({q_heads, d, D});             // W_j C
    covs.push_back(at::matmul(M, W.transpose(1, 2)));                             // W_j C W_j^T
  }
  s.covariance = at::stack(covs);  // (B, Hq, d, d)
  return s;
}

}  // namespace kvf
