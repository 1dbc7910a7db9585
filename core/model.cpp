#include "core/model.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <stdexcept>

#include "core/device.hpp"
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

// What the T new queries may see of S slots: the cached entries (minus a masked cache's evicted slots), then
// causal over the new ones. Undefined when a plain causal mask (fresh prefill) or no mask (one new token) does.
at::Tensor visible_mask(int64_t T, int64_t S, const LayerCache& cache, int64_t group, const at::Device& dev) {
  at::Tensor m;
  if (T > 1 && S != T) m = append_mask(T, S, dev);                        // (T, S)
  if (cache.masked()) {
    auto keep = cache.keep_mask.repeat_interleave(group, 1).unsqueeze(2);  // (B, Hq, 1, S)
    if (T > 1 && !m.defined()) m = append_mask(T, S, dev);
    m = m.defined() ? keep.logical_and(m) : keep;
  }
  return m;
}

// Attention over a ragged cache: each (batch, kv head) attends over its own n_i entries, whose last T are this
// step's tokens (causal among themselves). Scores in the model dtype, softmax in float32, as the eager path.
// A decoding step on an accelerator goes to the fused kernel when one is installed.
at::Tensor ragged_attention(const at::Tensor& q, const LayerCache& cache, double scale) {
  const int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), D = q.size(3);
  if (T == 1 && !q.is_cpu())
    if (RaggedDecodeKernel k = ragged_decode_kernel().load(std::memory_order_acquire)) {
      at::Tensor out = k(q, cache, scale);
      if (out.defined()) return out;
    }
  const int64_t Hkv = cache.ragged_heads, G = Hq / Hkv;
  auto out = at::empty({B, Hq, T, D}, q.options());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hkv; ++h) {
      const auto K = cache.head_keys(b * Hkv + h);
      const auto V = cache.head_values(b * Hkv + h);
      auto qg = q[b].narrow(0, h * G, G);                     // (G, T, D)
      auto sc = at::matmul(qg, K.t()) * scale;                // (G, T, n)
      if (T > 1) sc = sc.masked_fill(append_mask(T, K.size(0), q.device()).logical_not(), -INFINITY);
      auto w = at::softmax(sc, -1, at::kFloat).to(q.scalar_type());
      out[b].narrow(0, h * G, G).copy_(at::matmul(w, V));
    }
  return out;
}

}  // namespace

std::atomic<RaggedDecodeKernel>& ragged_decode_kernel() {
  static std::atomic<RaggedDecodeKernel> k{nullptr};
  return k;
}

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

  cache.append(k, v.contiguous());
  const int64_t S = cache.length();
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));

  at::Tensor out, weights;
  const bool eager = hook && hook->wants_attention_weights(layer, phase);
  if (cache.ragged()) {
    if (eager) throw Error("attention weights of a ragged (head-wise compressed) cache are not available");
    out = ragged_attention(q, cache, scale);
  } else if (eager) {
    // transformers' eager path: scores in the model dtype, softmax in float32.
    auto keys = cache.keys, values = cache.values;
    if (H != Hkv) {
      keys = keys.repeat_interleave(H / Hkv, 1);
      values = values.repeat_interleave(H / Hkv, 1);
    }
    auto scores = at::matmul(q, keys.transpose(2, 3)) * scale;
    auto visible = visible_mask(T, S, cache, H / Hkv, x.device());
    if (!visible.defined() && T > 1) visible = append_mask(T, S, x.device());  // fresh prefill: causal
    if (visible.defined()) scores = scores.masked_fill(visible.logical_not(), -INFINITY);
    weights = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
    out = at::matmul(weights, values);
  } else {
    auto visible = visible_mask(T, S, cache, H / Hkv, x.device());
    const bool causal = !visible.defined() && T > 1;  // S == T: a fresh prefill
    // An undefined tensor inside the optional would count as a mask: pass nullopt instead.
    const std::optional<at::Tensor> attn_mask = visible.defined() ? std::optional<at::Tensor>(visible) : std::nullopt;
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
  auto logits = at::linear(h, w_.lm_head).to(at::kFloat);
  synchronize(dev);  // return when a GPU is done: the callers' wall-clock timers then measure the work
  return logits;
}

}  // namespace kvf
