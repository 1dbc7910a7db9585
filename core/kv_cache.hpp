#pragma once
// KVCache: one LayerCache per layer, keys stored post-RoPE. Three layouts:
//   dense   keys/values (B, Hkv, S, D) — every head holds the same positions;
//   masked  dense + keep_mask (B, Hkv, S): evicted slots stay in memory but are hidden from attention
//           (kvpress's head-wise behaviour, kept for comparison: no memory saved);
//   ragged  one (n_i, D) tensor per (batch, kv head): head-wise presses (adakv) keep different counts per
//           head and really free the rest. Attention runs per head over its own entries (core/attention.hpp).
// `seen_tokens` counts every token that went through the model, so positions of new tokens continue from the
// original sequence length after a press shortened the cache (as kvpress's pipeline does).
#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

namespace kvf {

struct LayerCache {
  // dense/masked: (B, Hkv, S, D), possibly views of key_store/value_store, (B, Hkv, cap, D) tensors with room for
  // cap - S more positions: decoding appends in place (core/kv_cache.cpp) when this cache alone holds the store
  // (a copied LayerCache shares the handles, so the original then regrows instead). bytes() counts the room.
  // Tensors taken from `keys` may see rows past a truncate() change; LayerCache copies never do.
  at::Tensor keys;
  at::Tensor values;
  at::Tensor key_store, value_store;  // undefined until the first append after a prefill or a press
  at::Tensor keep_mask;  // masked: (B, Hkv, S) bool, true = visible; undefined otherwise
  // ragged: every (b, h)'s entries in one pair of (R, D) tensors. Head i = b*Hkv + h holds rows
  // [head_start[i], head_start[i] + head_len[i]) in position order, with room up to head_cap[i] rows, so decoding
  // appends one row per head in place (one index_copy_ for all heads) instead of re-concatenating every head.
  at::Tensor packed_keys, packed_values;
  std::vector<int64_t> head_start, head_len, head_cap;
  int64_t ragged_heads = 0;  // Hkv of the ragged layout

  bool ragged() const { return packed_keys.defined(); }
  bool masked() const { return keep_mask.defined(); }
  int64_t length() const;        // slots per head (ragged: the longest head)
  int64_t head_length(int64_t b, int64_t h) const;
  // Head (b, h)'s keys/values of a ragged cache: (head_len, D) views into the packed tensors.
  at::Tensor head_keys(int64_t i) const;
  at::Tensor head_values(int64_t i) const;
  int64_t bytes() const;         // memory held (masked: the full dense cache plus the mask; ragged: with the room)
  // Replaces the whole cache with dense (B, Hkv, S, D) keys/values (a press's uniform result).
  void set_dense(const at::Tensor& k, const at::Tensor& v);
  // Appends new entries (B, Hkv, T, D) to every head, in any layout.
  void append(const at::Tensor& k, const at::Tensor& v);
  // Drops the last n entries of every head (the pipeline's reset between questions).
  void truncate(int64_t n);
  // Installs a ragged layout from packed (total, D) rows, head after head, counts[b*Hkv + h] rows each (no room:
  // the first append makes some).
  void set_ragged(const at::Tensor& keys_packed, const at::Tensor& values_packed, const std::vector<int64_t>& counts,
                  int64_t heads);
};

struct KVCache {
  std::vector<LayerCache> layers;
  int64_t seen_tokens = 0;

  explicit KVCache(int64_t num_layers = 0) : layers(static_cast<size_t>(num_layers)) {}
  int64_t bytes() const;
  int64_t length(int64_t layer) const { return layers.at(static_cast<size_t>(layer)).length(); }
  void truncate(int64_t n);  // every layer; seen_tokens -= n
  KVCache clone() const;     // deep copy
};

}  // namespace kvf
