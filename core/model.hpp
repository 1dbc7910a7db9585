#pragma once
// Model: the Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) on libtorch.
// RMSNorm, RoPE (rotate_half, llama3 scaling), GQA, SwiGLU, tied embeddings, q/k/v bias, q/k norm.
// fp32 or bf16; batch >= 1 (sequences of one batch share their length); one dense KV cache per layer.
#include <atomic>
#include <cstdint>

#include <ATen/Tensor.h>

#include "core/config.hpp"
#include "core/hooks.hpp"
#include "core/kv_cache.hpp"
#include "core/weights.hpp"

namespace kvf {

struct ForwardOptions {
  at::Tensor position_ids;    // (B, T); default: cache.seen_tokens + arange(T)
  LayerHook* hook = nullptr;  // called after each layer's attention
  bool last_logits_only = false;  // return (B, 1, V): prefill for generation needs only the last row
};

// Decode attention (one new token) over a ragged cache on an accelerator, installed by kernels/ when a fused
// kernel is linked (kernels/cuda/ragged_decode.cuh); returns an undefined tensor to decline (the model then runs
// its generic per-head path). q: (B, Hq, 1, D) post-RoPE; returns (B, Hq, 1, D).
using RaggedDecodeKernel = at::Tensor (*)(const at::Tensor& q, const LayerCache& cache, double scale);
std::atomic<RaggedDecodeKernel>& ragged_decode_kernel();

class Model {
 public:
  Model(ModelConfig cfg, ModelWeights weights);
  const ModelConfig& config() const { return cfg_; }
  const ModelWeights& weights() const { return w_; }
  at::ScalarType dtype() const { return w_.embed_tokens.scalar_type(); }
  KVCache new_cache() const { return KVCache(cfg_.num_hidden_layers); }

  // input_ids: (B, T) int64. Appends to `cache` and returns logits (B, T, V) float32.
  at::Tensor forward(const at::Tensor& input_ids, KVCache& cache, const ForwardOptions& opts = {}) const;

 private:
  at::Tensor attention(int64_t layer, const at::Tensor& x, const at::Tensor& position_ids, const at::Tensor& cos,
                       const at::Tensor& sin, LayerCache& cache, LayerHook* hook, Phase phase) const;
  ModelConfig cfg_;
  ModelWeights w_;
  at::Tensor inv_freq_;
};

}  // namespace kvf
