#pragma once
// Reference specialisations of the plain kvpress scorers: random, streaming_llm, snapkv, tova,
// observed_attention, expected_attention, keydiff, lagkv. Each mirrors the kvpress 0.5.5 score() line by line
// with libtorch ops on the float32 PressInputs, and returns (B, H, S) scores with kvpress's own protection
// padding (max + 1 over the whole tensor, or the ones of streaming_llm / lagkv).
// Include only from the registry translation units.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "kernels/reference/reference.hpp"
#include "policies/scorers/expected_attention.hpp"
#include "policies/scorers/keydiff.hpp"
#include "policies/scorers/lagkv.hpp"
#include "policies/scorers/observed_attention.hpp"
#include "policies/scorers/random.hpp"
#include "policies/scorers/snapkv.hpp"
#include "policies/scorers/streaming_llm.hpp"
#include "policies/scorers/tova.hpp"

namespace kvf {

namespace ref {

// transformers' rotate_half.
inline at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// transformers' repeat_kv: (B, H, S, d) -> (B, H*G, S, d), query head j uses kv head j // G.
inline at::Tensor repeat_kv(const at::Tensor& x, int64_t G) {
  if (G == 1) return x;
  const int64_t B = x.size(0), H = x.size(1), S = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({B, H, G, S, d}).reshape({B, H * G, S, d});
}

// kvpress get_prerope_query_states: q_proj (+ bias), (B, Hq, T, d), then Qwen3's q_norm when present.
inline at::Tensor prerope_queries(const PressInputs& in, const at::Tensor& h) {
  const int64_t B = h.size(0), T = h.size(1), Hq = in.config->num_attention_heads, d = in.keys.size(3);
  auto q = at::linear(h, in.q_proj, in.q_bias.defined() ? in.q_bias : at::Tensor()).view({B, T, Hq, d}).transpose(1, 2);
  if (in.q_norm.defined()) {  // Qwen3RMSNorm
    auto var = q.pow(2).mean(-1, true);
    q = in.q_norm * (q * at::rsqrt(var + in.config->rms_norm_eps));
  }
  return q;
}

// SnapKVPress.compute_window_attention: (B, Hq, w, S - w).
inline at::Tensor window_attention(const PressInputs& in, int64_t w) {
  const int64_t S = in.keys.size(2), d = in.keys.size(3), T = in.hidden_states.size(1), R = in.cos.size(1);
  const int64_t G = in.config->num_attention_heads / in.keys.size(1);
  auto q = prerope_queries(in, in.hidden_states.slice(1, T - w, T));
  auto cos = in.cos.slice(1, R - w, R), sin = in.sin.slice(1, R - w, R);
  q = q * cos.unsqueeze(1) + rotate_half(q) * sin.unsqueeze(1);
  auto k = repeat_kv(in.keys, G);
  auto a = at::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(d));
  auto mask = at::triu(at::full_like(a, -INFINITY), S - w + 1);
  a = a + mask;
  a = at::softmax(a, -1, at::kFloat);
  return a.slice(-1, 0, S - w);
}

// F.pad(scores, (front, back), value=scores.max().item() + 1)
inline at::Tensor pad_max_plus_one(const at::Tensor& s, int64_t front, int64_t back) {
  return at::constant_pad_nd(s, {front, back}, s.max().item<double>() + 1.0);
}

}  // namespace ref

template <>
struct RefScorer<scorers::Random> {
  static at::Tensor score(const scorers::Random::Params& p, const PressInputs& in) {
    const auto sizes = in.keys.sizes().slice(0, 3);
    if (p.seed >= 0) {  // torch.Generator(device="cpu").manual_seed(seed); torch.rand(..., generator=g)
      auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(p.seed));
      return at::rand(sizes, gen, at::TensorOptions().dtype(at::kFloat));
    }
    return at::rand(sizes, at::TensorOptions().dtype(at::kFloat));
  }
};

template <>
struct RefScorer<scorers::StreamingLLM> {
  static at::Tensor score(const scorers::StreamingLLM::Params& p, const PressInputs& in) {
    scorers::StreamingLLM::validate(p, in.raw());
    const int64_t k_len = in.keys.size(2);
    const int64_t n_pruned = k_len - static_cast<int64_t>(static_cast<double>(k_len) * (1.0 - in.compression_ratio));
    auto scores = at::ones(in.keys.sizes().slice(0, 3), at::kFloat);
    scores.slice(2, p.n_sink, p.n_sink + n_pruned).fill_(0);
    return scores;
  }
};

template <>
struct RefScorer<scorers::SnapKV> {
  static at::Tensor score(const scorers::SnapKV::Params& p, const PressInputs& in) {
    scorers::SnapKV::validate(p, in.raw());
    const int64_t B = in.keys.size(0), H = in.keys.size(1), S = in.keys.size(2), T = in.hidden_states.size(1);
    const int64_t G = in.config->num_attention_heads / H, w = p.window_size, k = p.kernel_size;
    at::Tensor attn = in.attentions.defined() ? in.attentions.slice(2, T - w, T).slice(3, 0, S - w)
                                              : ref::window_attention(in, w);
    auto scores = attn.mean(-2);
    scores = at::avg_pool1d(scores, {k}, {1}, {k / 2});
    scores = scores.view({B, H, G, S - w}).mean(2);
    return ref::pad_max_plus_one(scores, 0, w);
  }
};

template <>
struct RefScorer<scorers::TOVA> {
  static at::Tensor score(const scorers::TOVA::Params& p, const PressInputs& in) {
    scorers::TOVA::validate(p, in.raw());
    const int64_t H = in.keys.size(1), S = in.keys.size(2), T = in.hidden_states.size(1);
    at::Tensor attn = in.attentions.defined() ? in.attentions.slice(2, T - 1, T).slice(3, 0, S - 1)
                                              : ref::window_attention(in, 1);
    auto scores = attn.mean(1);           // (B, 1, S - 1): mean over ALL query heads
    scores = scores.repeat({1, H, 1});  // the same for every kv head
    return ref::pad_max_plus_one(scores, 0, 1);
  }
};

template <>
struct RefScorer<scorers::ObservedAttention> {
  static at::Tensor score(const scorers::ObservedAttention::Params& p, const PressInputs& in) {
    scorers::ObservedAttention::validate(p, in.raw());
    const int64_t B = in.keys.size(0), H = in.keys.size(1), S = in.keys.size(2);
    auto scores = in.attentions.sum(2);
    auto n_tokens_in_sum = at::arange(S, 0, -1, at::kLong).to(in.attentions.scalar_type());
    scores = scores / n_tokens_in_sum;
    return scores.view({B, H, -1, S}).mean(2);
  }
};

template <>
struct RefScorer<scorers::ExpectedAttention> {
  using Params = scorers::ExpectedAttention::Params;

  // get_query_statistics + apply_avg_rope: mu (B, Hq, d), cov (B, Hq, d, d) or undefined.
  static std::pair<at::Tensor, at::Tensor> query_statistics(const Params& p, const PressInputs& in) {
    const int64_t q_len = in.hidden_states.size(1), d = in.keys.size(3);
    auto h = in.hidden_states.slice(1, p.n_sink);
    auto q = ref::prerope_queries(in, h);
    auto mu = q.mean(2, true);
    at::Tensor cov;
    if (p.use_covariance) {
      auto centered = q - mu;
      cov = at::einsum("bnsi,bnsj->bnij", {centered, centered}) / static_cast<double>(h.size(1));
    }
    mu = mu.squeeze(2);
    // rotary_emb(mu, position_ids) for positions q_len .. q_len + n_future - 1
    auto pos = at::arange(q_len, q_len + p.n_future_positions, at::kLong).to(at::kFloat);
    auto freqs = at::matmul(in.inv_freq.view({-1, 1}), pos.view({1, -1})).transpose(0, 1);  // (F, d/2)
    auto emb = at::cat({freqs, freqs}, -1);
    auto cos = emb.cos(), sin = emb.sin();
    auto Id = at::eye(d, at::kFloat);
    auto P = at::zeros({d, d}, at::kFloat);
    P.slice(0, d / 2).slice(1, 0, d / 2).copy_(at::eye(d / 2, at::kFloat));
    P.slice(0, 0, d / 2).slice(1, d / 2).copy_(-at::eye(d / 2, at::kFloat));
    auto R = cos.unsqueeze(1) * Id + sin.unsqueeze(1) * P;
    R = R.mean(0);
    mu = at::matmul(mu, R.t());
    if (cov.defined()) cov = at::matmul(R, at::matmul(cov, R.t()));
    return {mu, cov};
  }

  static at::Tensor score(const Params& p, const PressInputs& in) {
    scorers::ExpectedAttention::validate(p, in.raw());
    auto keys = in.keys.slice(2, p.n_sink);
    auto values = in.values.slice(2, p.n_sink);
    auto [mean_query, cov_query] = query_statistics(p, in);
    const int64_t B = keys.size(0), H = keys.size(1), q_len = keys.size(2), d = keys.size(3);
    const int64_t G = in.config->num_attention_heads / H;
    keys = ref::repeat_kv(keys, G).transpose(2, 3);
    auto scores = at::matmul(mean_query.unsqueeze(2), keys).squeeze(2) / std::sqrt(static_cast<double>(d));
    if (p.use_covariance)
      scores = scores + at::einsum("bhin,bhij,bhjn->bhn", {keys, cov_query, keys}) / static_cast<double>(d) / 2.0;
    scores = at::softmax(scores, -1);
    scores = scores.view({B, H, G, q_len}).mean(2);
    if (p.use_vnorm) scores = (scores + p.epsilon) * values.norm(2, -1);
    return ref::pad_max_plus_one(scores, p.n_sink, 0);
  }
};

template <>
struct RefScorer<scorers::KeyDiff> {
  static at::Tensor score(const scorers::KeyDiff::Params&, const PressInputs& in) {
    auto unit = in.keys / in.keys.norm(2, -1, true).clamp_min(1e-12);  // F.normalize
    auto anchor = unit.mean(2, true);
    return -at::cosine_similarity(in.keys, anchor, -1, 1e-8);
  }
};

template <>
struct RefScorer<scorers::LagKV> {
  // _get_states_score: target (B, H, n_part, lag, d) -> (B, H, n_part - 1, lag).
  static at::Tensor states_score(const at::Tensor& target) {
    auto ref = target.slice(2, 1);
    auto v = target.slice(2, 0, target.size(2) - 1);
    auto min_r = std::get<0>(ref.min(-2)).unsqueeze(-2).expand_as(v);
    auto max_r = std::get<0>(ref.max(-2)).unsqueeze(-2).expand_as(v);
    return ((v - min_r) / (max_r - min_r)).std(at::IntArrayRef{-1}, /*unbiased=*/true).softmax(-1);
  }

  static at::Tensor score(const scorers::LagKV::Params& p, const PressInputs& in) {
    const int64_t B = in.keys.size(0), H = in.keys.size(1), q_len = in.keys.size(2), d = in.keys.size(3);
    const int64_t lag = p.lag_size, sink = p.n_sink;
    if (q_len < sink + 2 * lag) {
      auto score = at::ones({B, H, q_len}, at::kFloat);
      if (q_len > sink)
        score.slice(2, sink).copy_((at::arange(q_len - sink, at::kLong) / (q_len - sink)).to(at::kFloat));
      return score;
    }
    const int64_t end = sink + ((q_len - sink) / lag) * lag, tail = lag + q_len - end;
    auto key_score = states_score(in.keys.slice(2, sink, end).reshape({B, H, -1, lag, d}));
    auto value_score = states_score(in.values.slice(2, sink, end).reshape({B, H, -1, lag, d}));
    auto score = (key_score + value_score) / 2;
    if (!p.cross_scoring) score = (score.argsort(int64_t{-1}).argsort(int64_t{-1}) / lag).to(at::kFloat);
    auto sinks = at::ones({B, H, sink}, score.options());
    auto tails = at::ones({B, H, tail}, score.options());
    return at::cat({sinks, score.reshape({B, H, -1}), tails}, -1);
  }
};

}  // namespace kvf
