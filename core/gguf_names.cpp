#include "core/gguf_names.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace kvf {

ModelConfig config_from_gguf(const GgufFile& f) {
  const std::string src = f.path().string();
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama" && arch != "qwen2" && arch != "qwen3")
    throw Error(src + ": GGUF architecture '" + arch + "' is not supported (supported: llama, qwen2, qwen3)");
  const std::string a = arch + ".";
  auto positive = [&](const std::string& key, int64_t v) {
    if (v <= 0) throw Error(src + ": GGUF key '" + key + "' must be positive, got " + std::to_string(v));
    return v;
  };

  ModelConfig c;
  c.model_type = arch;
  c.num_hidden_layers = positive(a + "block_count", f.get_int(a + "block_count"));
  c.hidden_size = positive(a + "embedding_length", f.get_int(a + "embedding_length"));
  c.intermediate_size = positive(a + "feed_forward_length", f.get_int(a + "feed_forward_length"));
  c.num_attention_heads = positive(a + "attention.head_count", f.get_int(a + "attention.head_count"));
  c.num_key_value_heads = positive(a + "attention.head_count_kv",
                                   f.find_int(a + "attention.head_count_kv").value_or(c.num_attention_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    throw Error(src + ": attention.head_count " + std::to_string(c.num_attention_heads) +
                " is not a multiple of attention.head_count_kv " + std::to_string(c.num_key_value_heads));
  c.rms_norm_eps = f.get_float(a + "attention.layer_norm_rms_epsilon");
  c.rope_theta = f.find_float(a + "rope.freq_base").value_or(10000.0);
  c.max_position_embeddings = positive(a + "context_length", f.get_int(a + "context_length"));
  if (auto kl = f.find_int(a + "attention.key_length")) {
    c.head_dim = positive(a + "attention.key_length", *kl);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      throw Error(src + ": embedding_length " + std::to_string(c.hidden_size) + " is not a multiple of head_count " +
                  std::to_string(c.num_attention_heads) + " and attention.key_length is absent");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (auto vl = f.find_int(a + "attention.value_length"); vl && *vl != c.head_dim)
    throw Error(src + ": attention.value_length " + std::to_string(*vl) + " differs from key_length " +
                std::to_string(c.head_dim) + " (not supported)");
  if (auto rd = f.find_int(a + "rope.dimension_count"); rd && *rd != c.head_dim)
    throw Error(src + ": rope.dimension_count " + std::to_string(*rd) + " differs from the head size " +
                std::to_string(c.head_dim) + " (partial rotary embeddings are not supported)");
  // llama.cpp stores Llama 3.1-style rope scaling as a precomputed rope_freqs tensor, and linear/yarn in metadata.
  if (f.find_tensor("rope_freqs.weight"))
    throw Error(src + ": rope_freqs.weight (llama3 rope scaling in GGUF) is not supported; use the HF checkpoint");
  if (auto st = f.find_string(a + "rope.scaling.type"); st && *st != "none") {
    if (*st != "linear")
      throw Error(src + ": rope.scaling.type '" + *st + "' is not supported (supported: none, linear)");
    c.rope_scaling.rope_type = "linear";
    c.rope_scaling.factor = f.get_float(a + "rope.scaling.factor");
  }

  if (f.has("tokenizer.ggml.tokens")) {
    const auto& v = f.metadata().find("tokenizer.ggml.tokens")->second;
    const auto* arr = std::get_if<GgufArray>(&v.v);
    if (!arr) throw Error(src + ": GGUF key 'tokenizer.ggml.tokens' is not an array");
    c.vocab_size = static_cast<int64_t>(arr->size());
  } else if (auto vs = f.find_int(a + "vocab_size")) {
    c.vocab_size = *vs;
  } else {
    throw Error(src + ": no vocabulary size: neither 'tokenizer.ggml.tokens' nor '" + a + "vocab_size' is present");
  }
  positive("vocab size", c.vocab_size);
  if (auto eos = f.find_int("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {*eos};
  c.bos_token_id = f.find_int("tokenizer.ggml.bos_token_id").value_or(-1);

  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  c.attention_bias = arch == "qwen2" || f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = arch == "qwen3";
  c.name = f.find_string("general.name").value_or(f.path().stem().string());
  return c;
}

std::optional<std::string> hf_name_from_gguf(std::string_view n) {
  if (n == "token_embd.weight") return "model.embed_tokens.weight";
  if (n == "output_norm.weight") return "model.norm.weight";
  if (n == "output.weight") return "lm_head.weight";
  constexpr std::string_view blk = "blk.";
  if (!n.starts_with(blk)) return std::nullopt;
  n.remove_prefix(blk.size());
  size_t i = 0;
  while (i < n.size() && n[i] >= '0' && n[i] <= '9') ++i;
  if (i == 0 || i > 9 || i >= n.size() || n[i] != '.') return std::nullopt;
  if (i > 1 && n[0] == '0') return std::nullopt;  // "blk.01" is not a canonical layer index
  const std::string layer(n.substr(0, i));
  n.remove_prefix(i + 1);
  std::string_view suffix;
  if (n.ends_with(".weight")) suffix = ".weight";
  else if (n.ends_with(".bias")) suffix = ".bias";
  else return std::nullopt;
  const std::string_view base = n.substr(0, n.size() - suffix.size());
  static const std::pair<std::string_view, std::string_view> kMap[] = {
      {"attn_norm", "input_layernorm"},     {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},       {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},       {"attn_output", "self_attn.o_proj"},
      {"attn_q_norm", "self_attn.q_norm"},  {"attn_k_norm", "self_attn.k_norm"},
      {"ffn_gate", "mlp.gate_proj"},        {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  for (const auto& [g, h] : kMap) {
    if (base != g) continue;
    const bool is_norm = base.ends_with("norm");
    if (is_norm && suffix != ".weight") return std::nullopt;  // RMSNorms have no bias
    return "model.layers." + layer + "." + std::string(h) + std::string(suffix);
  }
  return std::nullopt;
}

void unpermute_qk_rows(float* data, int64_t rows, int64_t cols, int64_t n_head) {
  if (n_head <= 0 || rows <= 0 || cols <= 0 || rows % (2 * n_head) != 0)
    throw Error("unpermute_qk_rows: " + std::to_string(rows) + " rows cannot be split into " + std::to_string(n_head) +
                " heads of an even size (cols " + std::to_string(cols) + ")");
  // permute() maps, within each head, HF row (j * half + i) to GGUF row (i * 2 + j), j in {0, 1}.
  const int64_t head_rows = rows / n_head, half = head_rows / 2;
  const size_t row_bytes = size_t(cols) * sizeof(float);
  std::vector<float> tmp(size_t(head_rows * cols));
  for (int64_t h = 0; h < n_head; ++h) {
    float* head = data + h * head_rows * cols;
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        std::memcpy(tmp.data() + (j * half + i) * cols, head + (i * 2 + j) * cols, row_bytes);
    std::memcpy(head, tmp.data(), size_t(head_rows) * row_bytes);
  }
}

}  // namespace kvf
