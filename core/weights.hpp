#pragma once
// ModelWeights: the Llama-family parameters as libtorch tensors in Hugging Face layout
// (linear weights are (out_features, in_features)), loaded from safetensors or GGUF.
#include <functional>
#include <string_view>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/ScalarType.h>

#include "core/config.hpp"

namespace kvf {

class GgufFile;
class SafetensorsCheckpoint;

struct LayerWeights {
  at::Tensor input_layernorm;           // (hidden)
  at::Tensor q_proj, k_proj, v_proj;    // (H*D, hidden), (Hkv*D, hidden), (Hkv*D, hidden)
  at::Tensor q_bias, k_bias, v_bias;    // undefined unless attention_bias
  at::Tensor o_proj;                    // (hidden, H*D)
  at::Tensor q_norm, k_norm;            // (D), undefined unless qk_norm
  at::Tensor post_attention_layernorm;  // (hidden)
  at::Tensor gate_proj, up_proj;        // (inter, hidden)
  at::Tensor down_proj;                 // (hidden, inter)
};

struct ModelWeights {
  at::Tensor embed_tokens;  // (vocab, hidden)
  at::Tensor norm;          // (hidden)
  at::Tensor lm_head;       // (vocab, hidden); same storage as embed_tokens when tied
  std::vector<LayerWeights> layers;
  int64_t bytes() const;
  // Moves every tensor to `device` in place, tensor by tensor (a tied lm_head stays tied).
  void to(const at::Device& device);
};

// Progress: (what, done, total) — called as tensors are loaded.
using LoadProgress = std::function<void(std::string_view what, int64_t done, int64_t total)>;

ModelWeights load_weights(const SafetensorsCheckpoint& ckpt, const ModelConfig& cfg, at::ScalarType dtype,
                          const LoadProgress& progress = {});
ModelWeights load_weights(const GgufFile& gguf, const ModelConfig& cfg, at::ScalarType dtype,
                          const LoadProgress& progress = {});

}  // namespace kvf
