#include "core/model.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <stdexcept>

#include "core/error.hpp"
#include "core/rope.hpp"

#include <c10/core/InferenceMode.h>

namespace kvf {
namespace {

// transformers' LlamaRMSNorm: normalise in float32, cast back, then scale.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  auto xf = x.to(at::kFloat);
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  xf = xf * at::rsqrt(var + eps);
  return w * xf.to(x.scalar_type());
}

at::Tensor opt(const at::Tensor& t) { return t.defined() ? t : at::Tensor(); }

// Boolean mask (T, S), true = may attend: all `past` cached entries, then causal over the new ones.
at::Tensor append_mask(int64_t T, int64_t S, const at::Device& dev) {
  const int64_t past = S - T;
  auto i = at::arange(T, at::TensorOptions().dtype(at::kLong).device(dev)).unsqueeze(1);
  auto j = at::arange(S, at::TensorOptions().dtype(at::kLong).device(dev)).unsqueeze(0);
  return (j - past) <= i;
}

}  // namespace

Model::Model(ModelConfig cfg, ModelWeights weights) : cfg_(std::move(cfg)), w_(std::move(weights)) {
  if (static_cast<int64_t>(w_.layers.size()) != cfg_.num_hidden_layers)
    throw Error("model: weights have " + std::to_string(w_.layers.size()) + " layers, config says " +
                std::to_string(cfg_.num_hidden_layers));
  inv_freq_ = rope_inv_freq(cfg_);
}

at::Tensor Model::attention(int64_t layer, const at::Tensor& x, const at::Tensor& position_ids, const at::Tensor& cos,
                            const at::Tensor& sin, LayerCache& cache, LayerHook* hook, Phase phase) const {
  const auto& L = w_.layers[static_cast<size_t>(layer)];
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t H = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, D = cfg_.head_dim;

  auto q = at::linear(x, L.q_proj, opt(L.q_bias)).view({B, T, H, D});
  auto k = at::linear(x, L.k_proj, opt(L.k_bias)).view({B, T, Hkv, D});
  auto v = at::linear(x, L.v_proj, opt(L.v_bias)).view({B, T, Hkv, D}).transpose(1, 2);
  if (cfg_.qk_norm) {
    q = rms_norm(q, L.q_norm, cfg_.rms_norm_eps);
    k = rms_norm(k, L.k_norm, cfg_.rms_norm_eps);
  }
  q = apply_rope(q.transpose(1, 2), cos, sin);  // (B, H, T, D)
  k = apply_rope(k.transpose(1, 2), cos, sin);  // (B, Hkv, T, D)

  if (cache.length() == 0) {
    cache.keys = k.contiguous();
    cache.values = v.contiguous();
  } else {
    cache.keys = at::cat({cache.keys, k}, 2);
    cache.values = at::cat({cache.values, v}, 2);
  }
  const int64_t S = cache.length();
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));

  at::Tensor out, weights;
  const bool eager = hook && hook->wants_attention_weights(layer, phase);
  if (eager) {
    // transformers' eager path: scores in the model dtype, softmax in float32.
    auto keys = cache.keys, values = cache.values;
    if (H != Hkv) {
      keys = keys.repeat_interleave(H / Hkv, 1);
      values = values.repeat_interleave(H / Hkv, 1);
    }
    auto scores = at::matmul(q, keys.transpose(2, 3)) * scale;
    if (T > 1) scores = scores.masked_fill(append_mask(T, S, x.device()).logical_not(), -INFINITY);
    weights = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    out = at::matmul(weights, values);
  } else {
    at::Tensor mask;
    bool causal = false;
    if (T > 1) {
      if (S == T) causal = true;
      else mask = append_mask(T, S, x.device());
    }
    // An undefined tensor inside the optional would count as a mask: pass nullopt instead.
    const std::optional<at::Tensor> attn_mask = mask.defined() ? std::optional<at::Tensor>(mask) : std::nullopt;
    out = at::scaled_dot_product_attention(q, cache.keys, cache.values, attn_mask, 0.0, causal, scale,
                                           /*enable_gqa=*/H != Hkv);
  }
  out = at::linear(out.transpose(1, 2).reshape({B, T, H * D}), L.o_proj);

  if (hook) {
    LayerView view;
    view.layer = layer;
    view.phase = phase;
    view.config = &cfg_;
    view.weights = &L;
    view.hidden_states = x;
    view.position_ids = position_ids;
    view.cos = cos;
    view.sin = sin;
    view.inv_freq = inv_freq_;
    view.attentions = weights;
    hook->after_attention(view, cache);
  }
  return out;
}

at::Tensor Model::forward(const at::Tensor& input_ids, KVCache& cache, const ForwardOptions& opts) const {
  c10::InferenceMode inference;  // no autograd bookkeeping anywhere in the runtime
  if (input_ids.dim() != 2) throw Error("forward: input_ids must be (batch, tokens)");
  if (static_cast<int64_t>(cache.layers.size()) != cfg_.num_hidden_layers)
    throw Error("forward: cache has " + std::to_string(cache.layers.size()) + " layers, model has " +
                std::to_string(cfg_.num_hidden_layers));
  const int64_t B = input_ids.size(0), T = input_ids.size(1);
  const auto dev = w_.embed_tokens.device();
  auto ids = input_ids.to(dev, at::kLong);
  at::Tensor pos = opts.position_ids.defined()
                       ? opts.position_ids.to(dev, at::kLong)
                       : at::arange(cache.seen_tokens, cache.seen_tokens + T, at::TensorOptions().dtype(at::kLong).device(dev))
                             .unsqueeze(0)
                             .expand({B, T});
  auto [cos, sin] = rope_cos_sin(inv_freq_, pos, dtype());
  const Phase phase = cache.seen_tokens == 0 ? Phase::Prefill : Phase::Decode;
  if (cfg_.sliding_window > 0 && cache.length(0) + T > cfg_.sliding_window)
    throw Error("model '" + cfg_.name + "' uses sliding-window attention (window " +
                std::to_string(cfg_.sliding_window) + "), which kvforge does not implement; this sequence needs " +
                std::to_string(cache.length(0) + T) + " positions");

  auto h = at::embedding(w_.embed_tokens, ids);
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    const auto& L = w_.layers[static_cast<size_t>(l)];
    auto x = rms_norm(h, L.input_layernorm, cfg_.rms_norm_eps);
    h = h + attention(l, x, pos, cos, sin, cache.layers[static_cast<size_t>(l)], opts.hook, phase);
    x = rms_norm(h, L.post_attention_layernorm, cfg_.rms_norm_eps);
    h = h + at::linear(at::silu(at::linear(x, L.gate_proj)) * at::linear(x, L.up_proj), L.down_proj);
  }
  h = rms_norm(h, w_.norm, cfg_.rms_norm_eps);
  if (opts.last_logits_only) h = h.narrow(1, T - 1, 1);
  cache.seen_tokens += T;
  return at::linear(h, w_.lm_head).to(at::kFloat);
}

}  // namespace kvf
