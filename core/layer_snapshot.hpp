#pragma once
// Layer snapshots: one layer's press inputs in a safetensors file, so a press can be applied offline
// (`kvforge compress`) and compared with kvpress on the same data (experiments/dump_layer_snapshot.py writes
// them from any transformers model). Format (docs/formats.md):
//   tensors  hidden_states (B,T,hidden)  keys, values (B,Hkv,S,d) post-RoPE  cos, sin (B,T,d)  inv_freq (d/2)
//            position_ids (B,T) int64  q_proj (Hq*d,hidden)  o_proj (hidden,Hq*d)
//            optional: attentions (B,Hq,T,S)  q_bias (Hq*d)  q_norm (d)
//   metadata kvforge_snapshot = "1", config = the HF config.json text, layer_idx = "<int>"
#include <filesystem>

#include "core/config.hpp"
#include "core/hooks.hpp"
#include "core/kv_cache.hpp"
#include "core/weights.hpp"

namespace kvf {

struct LayerSnapshot {
  ModelConfig config;
  std::string config_json;
  LayerWeights weights;  // q_proj, o_proj (+ q_bias, q_norm) only
  LayerView view;        // points into config/weights of this object: do not copy or move it
  LayerCache cache;

  LayerSnapshot() = default;
  LayerSnapshot(const LayerSnapshot&) = delete;
  LayerSnapshot& operator=(const LayerSnapshot&) = delete;
};

// Every tensor's presence, dtype and shape is checked against the config; errors name the file and tensor.
std::unique_ptr<LayerSnapshot> load_layer_snapshot(const std::filesystem::path& path);
void save_layer_snapshot(const std::filesystem::path& path, const LayerView& view, const LayerCache& cache,
                         const std::string& config_json);

}  // namespace kvf
