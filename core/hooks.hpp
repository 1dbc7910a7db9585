#pragma once
// The press hook point: called after each layer's attention, in prefill and in decoding.
// A hook reads the LayerView (what a press may use) and may replace that layer's cache.
// As in kvpress, the layer's own attention output has already been computed with the full cache.
#include <cstdint>

#include <ATen/Tensor.h>

#include "core/config.hpp"
#include "core/kv_cache.hpp"
#include "core/weights.hpp"

namespace kvf {

enum class Phase { Prefill, Decode };

struct LayerView {
  int64_t layer = 0;
  Phase phase = Phase::Prefill;
  const ModelConfig* config = nullptr;
  const LayerWeights* weights = nullptr;  // q_proj, q_norm, o_proj, ... of this layer
  at::Tensor hidden_states;  // (B, T, hidden): this step's input to self-attention (after input_layernorm)
  at::Tensor position_ids;   // (B, T) positions of this step's tokens
  at::Tensor cos, sin;       // (B, T, D) RoPE tables for this step's positions (rotate_half convention)
  at::Tensor inv_freq;       // (D/2) float32 RoPE frequencies (llama3 scaling applied): key re-rotation needs them
  at::Tensor attentions;     // (B, H, T, S) softmax weights; defined only when the hook asked for them
};

class LayerHook {
 public:
  virtual ~LayerHook() = default;
  // Whether this layer's attention weights must be materialised (eager attention path) at this phase.
  virtual bool wants_attention_weights(int64_t /*layer*/, Phase /*phase*/) const { return false; }
  // `cache` holds the full keys/values after this step's append; assign to replace them.
  virtual void after_attention(const LayerView& view, LayerCache& cache) = 0;
};

}  // namespace kvf
