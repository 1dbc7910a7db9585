// Each function follows its policy's score_head step by step (same formulas, same order of means), on whole-layer
// tensors; the float summation order differs (cuBLAS), so scores agree with the CPU executor within rounding.
#include "kernels/cuda/device_scorers.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include "core/error.hpp"
#include "kernels/query_statistics.hpp"

namespace kvf::cuda {
namespace {

// Any device: these are tensor ops only, and tests/test_device_scorers_host.cpp runs them on CPU tensors against the
// CPU policies (the executors call them with CUDA tensors).
void require_keys(const at::Tensor& k) {
  if (!k.defined() || k.scalar_type() != at::kFloat || k.dim() != 4)
    throw Error("device scorers: keys must be a float32 (B, H, S, d) tensor");
}
at::Tensor on(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t.to(like.device(), at::kFloat).contiguous() : t;
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// The last w window queries, rotated with the last w rows of cos/sin: (B, Hq, w, d).
at::Tensor window_queries(const QueryInputs& q, const at::Tensor& keys, int64_t w) {
  const int64_t T = q.hidden_states.size(1), R = q.cos.size(1);
  const at::Tensor Q = prerope_queries(q, keys, T - w, w);
  const at::Tensor c = on(q.cos, keys).narrow(1, R - w, w).unsqueeze(1), s = on(q.sin, keys).narrow(1, R - w, w).unsqueeze(1);
  return Q * c + rotate_half(Q) * s;
}

void require_queries(const QueryInputs& q, const at::Tensor& keys, const char* who) {
  if (q.q_heads <= 0 || q.q_heads % keys.size(1) != 0)
    throw Error(std::string(who) + ": the query heads must be a multiple of the kv heads");
  if (!q.attentions.defined() && (!q.hidden_states.defined() || !q.q_proj.defined() || !q.cos.defined()))
    throw Error(std::string(who) + ": needs the hidden states, q_proj and RoPE tables (or the attention weights)");
}

}  // namespace

// Pre-RoPE queries of hidden rows [t0, t0 + rows): (B, Hq, rows, d) (query_states.hpp's prerope_queries).
at::Tensor prerope_queries(const QueryInputs& q, const at::Tensor& like, int64_t t0, int64_t rows) {
  return prerope_query_rows(on(q.hidden_states, like), on(q.q_proj, like), on(q.q_bias, like), on(q.q_norm, like),
                            q.rms_norm_eps, q.q_heads, t0, rows);
}


at::Tensor keydiff_scores(const at::Tensor& keys) {
  require_keys(keys);
  const c10::DeviceGuard guard(keys.device());
  const int64_t S = keys.size(2);
  const at::Tensor nk = keys.norm(2, -1);                                     // (B, H, S)
  const at::Tensor unit = keys / nk.clamp_min(1e-12).unsqueeze(-1);          // F.normalize
  at::Tensor a = (unit.to(at::kDouble).sum(2) / static_cast<double>(S)).to(at::kFloat);  // mean in double (keydiff.hpp)
  a = a / a.norm(2, -1, true).clamp_min(1e-8);
  const at::Tensor dot = at::matmul(keys, a.unsqueeze(-1)).squeeze(-1);
  return (-(dot / nk.clamp_min(1e-8))).contiguous();
}

at::Tensor snapkv_scores(const QueryInputs& q, const at::Tensor& keys, int64_t w, int64_t k) {
  require_keys(keys);
  require_queries(q, keys, "snapkv");
  const c10::DeviceGuard guard(keys.device());
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), d = keys.size(3), G = q.q_heads / H, n = S - w;
  at::Tensor sums;  // (B, H, G, n): the window rows' attention, summed over the rows
  if (q.attentions.defined()) {
    const int64_t T = q.attentions.size(2);
    sums = on(q.attentions, keys).narrow(2, T - w, w).narrow(3, 0, n).sum(2).view({B, H, G, n});
  } else {
    const at::Tensor Q = window_queries(q, keys, w).view({B, H, G * w, d});
    at::Tensor z = (at::matmul(Q, keys.transpose(2, 3)) / std::sqrt(static_cast<double>(d))).view({B, H, G, w, S});
    // Window row i is position n + i: it sees keys 0 .. n + i.
    const auto i64 = keys.options().dtype(at::kLong);
    const at::Tensor mask = at::arange(S, i64).view({1, S}) > (at::arange(w, i64).view({w, 1}) + n);
    z = at::softmax(z.masked_fill(mask, -INFINITY), -1);
    sums = z.narrow(-1, 0, n).sum(3);
  }
  const at::Tensor mean = (sums / static_cast<double>(w)).reshape({B * H, G, n});
  const at::Tensor pooled = at::avg_pool1d(mean, {k}, {1}, {k / 2});  // zero padding, always / k
  at::Tensor out = at::zeros({B, H, S}, keys.options());
  out.narrow(2, 0, n).copy_(pooled.view({B, H, G, n}).mean(2));
  return out;
}

at::Tensor tova_scores(const QueryInputs& q, const at::Tensor& keys) {
  require_keys(keys);
  require_queries(q, keys, "tova");
  const c10::DeviceGuard guard(keys.device());
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), d = keys.size(3), G = q.q_heads / H, n = S - 1;
  at::Tensor total;  // (B, n): the last query's attention summed over all query heads
  if (q.attentions.defined()) {
    const int64_t T = q.attentions.size(2);
    total = on(q.attentions, keys).narrow(2, T - 1, 1).narrow(3, 0, n).sum({1, 2});
  } else {
    const at::Tensor Q = window_queries(q, keys, 1).view({B, H, G, d});
    const at::Tensor z = at::softmax(at::matmul(Q, keys.transpose(2, 3)) / std::sqrt(static_cast<double>(d)), -1);
    total = z.narrow(-1, 0, n).sum({1, 2});
  }
  at::Tensor out = at::zeros({B, H, S}, keys.options());
  out.narrow(2, 0, n).copy_((total / static_cast<double>(q.q_heads)).unsqueeze(1).expand({B, H, n}));
  return out;
}

at::Tensor observed_attention_scores(const QueryInputs& q, const at::Tensor& keys) {
  require_keys(keys);
  if (!q.attentions.defined()) throw Error("observed_attention: needs the layer's attention weights (eager attention)");
  if (q.q_heads <= 0 || q.q_heads % keys.size(1) != 0)
    throw Error("observed_attention: the query heads must be a multiple of the kv heads");
  const c10::DeviceGuard guard(keys.device());
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), G = q.q_heads / H;
  const at::Tensor col = on(q.attentions, keys).sum(2);  // (B, Hq, S)
  const at::Tensor seen = at::arange(S, 0, -1, keys.options());  // S - t queries see position t
  return (col / seen).view({B, H, G, S}).mean(2).contiguous();
}

at::Tensor expected_attention_scores(const QueryInputs& q, const at::Tensor& keys, const at::Tensor& values,
                                     const ExpectedAttentionArgs& a) {
  require_keys(keys);
  if (q.q_heads <= 0 || q.q_heads % keys.size(1) != 0 || !q.hidden_states.defined() || !q.q_proj.defined() ||
      !q.inv_freq.defined() || !values.defined())
    throw Error("expected_attention: needs the hidden states, q_proj, inv_freq and the values");
  const c10::DeviceGuard guard(keys.device());
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), d = keys.size(3), G = q.q_heads / H;
  const int64_t sink = a.n_sink, n = S - sink, T = q.hidden_states.size(1), half = d / 2;
  const int64_t t0 = std::min(sink, T), Tq = std::max<int64_t>(T - sink, 0);
  // Query statistics per query head (biased covariance), the CPU bridge's function (kernels/query_statistics.hpp);
  // T <= n_sink gives NaN, as kvpress.
  at::Tensor mu, cov;
  if (Tq > 0) {
    const QueryStatistics st = query_statistics(on(q.hidden_states, keys), on(q.q_proj, keys), on(q.q_bias, keys),
                                                on(q.q_norm, keys), q.rms_norm_eps, q.q_heads, t0, Tq,
                                                a.use_covariance);
    mu = st.mean;
    cov = st.covariance;
  } else {
    mu = at::full({B, q.q_heads, d}, NAN, keys.options());
    cov = at::full({B, q.q_heads, d, d}, NAN, keys.options());
  }
  // The averaged future rotation Rbar (mean_rope + rotate in expected_attention.hpp), float32 positions.
  const at::Tensor pos = at::arange(T, T + a.n_future_positions, keys.options());
  const at::Tensor f = pos.view({-1, 1}) * on(q.inv_freq, keys).narrow(0, 0, half).view({1, -1});  // (F, d/2)
  const at::Tensor cbar = f.cos().mean(0), sbar = f.sin().mean(0);
  at::Tensor R = at::diag(at::cat({cbar, cbar}));
  R.narrow(0, 0, half).narrow(1, half, half).copy_(at::diag(-sbar));
  R.narrow(0, half, half).narrow(1, 0, half).copy_(at::diag(sbar));
  const at::Tensor mu_r = at::matmul(mu, R.t()).view({B, H, G, 1, d});
  const at::Tensor K = keys.narrow(2, sink, n).unsqueeze(2);  // (B, H, 1, n, d)
  at::Tensor z = at::matmul(mu_r, K.transpose(-1, -2)).squeeze(3) / std::sqrt(static_cast<double>(d));  // (B,H,G,n)
  if (a.use_covariance) {
    const at::Tensor cov_r = at::matmul(R, at::matmul(cov, R.t())).view({B, H, G, d, d});
    const at::Tensor ks = at::matmul(K, cov_r.transpose(-1, -2));                           // (B, H, G, n, d)
    z = z + (ks * K).sum(-1) / static_cast<double>(d) / 2.0;
  }
  at::Tensor s = at::softmax(z, -1).mean(2);  // (B, H, n)
  if (a.use_vnorm) s = (s + a.epsilon) * on(values, keys).narrow(2, sink, n).norm(2, -1);
  at::Tensor out = at::zeros({B, H, S}, keys.options());
  out.narrow(2, sink, n).copy_(s);
  return out;
}

}  // namespace kvf::cuda
