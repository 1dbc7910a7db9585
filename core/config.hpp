#pragma once
// ModelConfig: the Llama-family architecture parameters kvforge understands.
// Filled from a Hugging Face config.json (parse_config_json) or from GGUF metadata (gguf_model.hpp).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace kvf {

struct RopeScaling {
  std::string rope_type = "default";  // "default" or "llama3" ("linear" also accepted)
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type;  // llama | mistral | qwen2 | qwen3
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_attention_heads unless given
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (qwen2 always, llama optional)
  bool qk_norm = false;         // qwen3 per-head RMSNorm on q and k
  std::vector<int64_t> eos_token_ids;
  int64_t bos_token_id = -1;
  int64_t sliding_window = 0;  // 0 = full attention; else the model attends at most this far (not implemented)
  std::string name;  // where it came from (folder name or GGUF general.name)
};

// Parse an HF config.json object. `source` names the file in error messages.
// Throws kvf::Error naming the missing or unsupported field.
ModelConfig parse_config_json(const nlohmann::json& j, const std::string& source);
ModelConfig load_config_json(const std::filesystem::path& path);

}  // namespace kvf
