#pragma once
// KVCache: one (keys, values) pair per layer, dense layout (B, Hkv, S, D), keys stored post-RoPE.
// `seen_tokens` counts every token that went through the model, so positions of new tokens continue
// from the original sequence length after a press shortened the cache (as kvpress's pipeline does).
#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

namespace kvf {

struct LayerCache {
  at::Tensor keys;    // (B, Hkv, S, D)
  at::Tensor values;  // (B, Hkv, S, D)
  int64_t length() const { return keys.defined() ? keys.size(2) : 0; }
  int64_t bytes() const;
};

struct KVCache {
  std::vector<LayerCache> layers;
  int64_t seen_tokens = 0;

  explicit KVCache(int64_t num_layers = 0) : layers(static_cast<size_t>(num_layers)) {}
  int64_t bytes() const;
  int64_t length(int64_t layer) const { return layers.at(static_cast<size_t>(layer)).length(); }
  // A deep copy (keys/values cloned): the pipeline resets to a compressed cache between questions.
  KVCache clone() const;
};

}  // namespace kvf
