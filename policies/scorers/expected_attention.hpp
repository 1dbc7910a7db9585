#pragma once
// expected_attention (kvpress ExpectedAttentionPress): the attention a Gaussian model of future queries is
// expected to pay to each key, times the value norm.
// Per query head j (pre-RoPE queries Q_t of the hidden rows t in [n_sink, T), T' = T - n_sink of them):
//   mu = mean_t Q_t,  Sigma = (1/T') sum_t (Q_t - mu)(Q_t - mu)^T          (biased)
//   Rbar = mean over positions p = T .. T + n_future - 1 of the RoPE matrix R_p   (R_p x = x*cos_p + rot(x)*sin_p)
//   mu~ = Rbar mu,  Sigma~ = Rbar Sigma Rbar^T
//   z_t = mu~ . k_t / sqrt(d) [+ k_t^T Sigma~ k_t / d / 2 if use_covariance]   over the keys t in [n_sink, S)
//   p_j = softmax_t(z)  (over the non-sink keys only)
// s[t] = mean_j p_j[t] over the GQA group; use_vnorm: s[t] = (s[t] + epsilon) * |V_t|. The first n_sink
// positions are protected with the layer-wide max + 1. T = the hidden-state length (kvpress's q_len); the
// future tables are rebuilt from inv_freq (attention_scaling 1: default / linear / llama3 RoPE).
// Asserts S > n_sink. T <= n_sink gives empty statistics and NaN scores, as in kvpress.
// mu and Sigma come from the torch bridge when it computed them for these rows (query_stats_request): for a linear
// q_proj (no q_norm) it may use mu = W mean(h) + b, Sigma = W Cov(h) W^T, the same math with fewer multiply-adds
// at long contexts (kernels/query_statistics.hpp); else score_head projects the rows per query head.
#include <cmath>
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "compose/concepts.hpp"
#include "compose/params.hpp"
#include "core/error.hpp"
#include "policies/scorers/query_states.hpp"

namespace kvf::scorers {

struct ExpectedAttention {
  static constexpr std::string_view name = "expected_attention";
  static constexpr bool needs_attentions = false;
  struct Params {
    int64_t n_future_positions = 512;
    int64_t n_sink = 4;
    bool use_covariance = true;
    bool use_vnorm = true;
    double epsilon = 0.0;
    static constexpr auto fields =
        std::make_tuple(field("n_future_positions", &Params::n_future_positions, 1, 1 << 30),
                        field("n_sink", &Params::n_sink, 0, 1 << 30), field("use_covariance", &Params::use_covariance),
                        field("use_vnorm", &Params::use_vnorm), field("epsilon", &Params::epsilon, 0.0, 1e300));
  };

  static void validate(const Params& p, const LayerInputs& in) {
    if (in.seq <= p.n_sink)
      throw Error("expected_attention: the cache (" + std::to_string(in.seq) +
                  " tokens) must be longer than n_sink=" + std::to_string(p.n_sink));
    if (!in.q_proj || !in.hidden_states || !in.inv_freq || !in.values)
      throw Error("expected_attention: needs the hidden states, q_proj, inv_freq and the values");
    if (in.head_dim % 2 != 0) throw Error("expected_attention: head_dim must be even (RoPE)");
  }
  static Protect protect(const Params& p, const LayerInputs&) { return {Protect::Kind::MaxPlusOne, p.n_sink, 0}; }
  // The statistics of rows [n_sink, T) come precomputed from the bridge when it can (one evaluation for all heads,
  // kernels/query_statistics.hpp); score_head projects the rows itself otherwise.
  static QueryStatsRequest query_stats_request(const Params& p, const LayerInputs& in) {
    const int64_t t0 = std::min(p.n_sink, in.tokens);
    return {t0, in.tokens - t0, p.use_covariance};
  }

  // Averaged future rotation: cbar, sbar (d) = mean over p in [T, T + n) of cos/sin(p * inv_freq[c mod d/2]).
  static void mean_rope(const float* inv_freq, int64_t d, int64_t T, int64_t n, float* cbar, float* sbar) {
    const int64_t half = d / 2;
    for (int64_t c = 0; c < half; ++c) {
      float cs = 0.f, ss = 0.f;
      for (int64_t q = T; q < T + n; ++q) {
        const float f = static_cast<float>(q) * inv_freq[c];  // transformers: float32 position x inv_freq
        cs += cosf(f);
        ss += sinf(f);
      }
      cbar[c] = cbar[c + half] = cs / static_cast<float>(n);
      sbar[c] = sbar[c + half] = ss / static_cast<float>(n);
    }
  }
  // y = Rbar x  with Rbar[a, a] = cbar[a], Rbar[a, a + d/2] = -sbar[a], Rbar[a + d/2, a] = sbar[a + d/2];
  // x and y are read/written with a stride (rows or columns of a d x d matrix).
  KVF_HOST_DEVICE static void rotate(const float* cbar, const float* sbar, int64_t d, const float* x, int64_t xs,
                                     float* y, int64_t ys) {
    const int64_t half = d / 2;
    for (int64_t a = 0; a < half; ++a) {
      const float lo = x[a * xs], hi = x[(a + half) * xs];
      y[a * ys] = cbar[a] * lo - sbar[a] * hi;
      y[(a + half) * ys] = cbar[a + half] * hi + sbar[a + half] * lo;
    }
  }
  // z = mu~ . k / sqrt(d) + k^T Sigma~ k / d / 2 (the quadratic term only when sigma is given).
  KVF_HOST_DEVICE static float logit(const float* mu, const float* sigma, const float* k, int64_t d, float sqrt_d) {
    float z = detail::dot(mu, k, d) / sqrt_d;
    if (sigma) {
      float quad = 0.f;
      for (int64_t a = 0; a < d; ++a) quad += k[a] * detail::dot(sigma + a * d, k, d);
      z += quad / static_cast<float>(d) / 2.f;
    }
    return z;
  }

  static void score_head(const Params& p, const LayerInputs& in, int64_t b, int64_t h, Scratch& ws, float* out) {
    const int64_t S = in.seq, d = in.head_dim, G = in.group(), sink = p.n_sink, n = S - sink;
    const int64_t T = in.tokens, Tq = std::max<int64_t>(T - sink, 0);
    // ws.a: queries (Tq x d, only without the bridge's statistics) | ws.b: mu, mu~, cbar, sbar, Sigma, Sigma R^T, Sigma~ | ws.c: logits (n)
    ws.b.resize(static_cast<size_t>(4 * d + 3 * d * d));
    ws.c.resize(static_cast<size_t>(n));
    float *mu = ws.b.data(), *mu_r = mu + d, *cbar = mu_r + d, *sbar = cbar + d, *sig = sbar + d, *tmp = sig + d * d,
          *sig_r = tmp + d * d;
    float* z = ws.c.data();
    thread_local std::vector<float> ks;  // Sigma~ k_t rows (n x d)
    mean_rope(in.inv_freq, d, T, p.n_future_positions, cbar, sbar);
    const float sqrt_d = static_cast<float>(std::sqrt(static_cast<double>(d)));
    const float* K = in.key(b, h) + sink * d;
    for (int64_t t = 0; t < S; ++t) out[t] = 0.f;
    float* s = out + sink;
    const bool given = Tq > 0 && in.has_query_stats(std::min(sink, T), Tq, p.use_covariance);
    for (int64_t g = 0; g < G; ++g) {
      const int64_t qh = h * G + g;
      if (given) {  // the bridge's statistics of this query head
        std::copy_n(in.query_mean + (b * in.q_heads + qh) * d, d, mu);
        if (p.use_covariance) std::copy_n(in.query_cov + (b * in.q_heads + qh) * d * d, d * d, sig);
      } else {
        ws.a.resize(static_cast<size_t>(Tq * d));
        float* Q = ws.a.data();
        detail::prerope_queries(in, b, sink, Tq, qh, Q);  // one GEMM for all Tq rows
        for (int64_t c = 0; c < d; ++c) {
          float acc = 0.f;
          for (int64_t t = 0; t < Tq; ++t) acc += Q[t * d + c];
          mu[c] = acc / static_cast<float>(Tq);
        }
        if (p.use_covariance) {
          for (int64_t t = 0; t < Tq; ++t)
            for (int64_t c = 0; c < d; ++c) Q[t * d + c] -= mu[c];  // centred
          dense::gram(Q, Tq, d, static_cast<float>(Tq), sig);  // Sigma = Qc^T Qc / Tq
        }
      }
      rotate(cbar, sbar, d, mu, 1, mu_r, 1);
      if (p.use_covariance) {
        for (int64_t a = 0; a < d; ++a) rotate(cbar, sbar, d, sig + a * d, 1, tmp + a * d, 1);  // Sigma R^T
        for (int64_t c = 0; c < d; ++c) rotate(cbar, sbar, d, tmp + c, d, sig_r + c, d);       // R (Sigma R^T)
      }
      Eigen::Map<Eigen::VectorXf> zv(z, n);
      dense::gemv_rows(K, n, d, mu_r, z);
      zv /= sqrt_d;
      if (p.use_covariance) {
        // + k_t^T Sigma~ k_t / (2d): Sigma~ k_t for all keys in one GEMM.
        ks.resize(static_cast<size_t>(n * d));
        dense::gemm_nt(K, n, d, d, sig_r, d, d, ks.data(), d);
        for (int64_t t = 0; t < n; ++t) z[t] += dense::dot(K + t * d, ks.data() + t * d, d) / static_cast<float>(d) / 2.f;
      }
      dense::softmax_in_place(z, n);
      Eigen::Map<Eigen::ArrayXf>(s, n) += Eigen::Map<const Eigen::ArrayXf>(z, n);
    }
    Eigen::Map<Eigen::ArrayXf> sa(s, n);
    sa /= static_cast<float>(G);
    if (p.use_vnorm) {
      ws.c.resize(static_cast<size_t>(n));
      dense::row_norms(in.value(b, h) + sink * d, n, d, ws.c.data());
      sa = (sa + static_cast<float>(p.epsilon)) * Eigen::Map<const Eigen::ArrayXf>(ws.c.data(), n);
    }
  }
};
static_assert(Scorer<ExpectedAttention>);

}  // namespace kvf::scorers
