#pragma once
// From GGUF (llama.cpp conventions) to Hugging Face conventions.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/config.hpp"
#include "core/gguf.hpp"

namespace kvf {

// ModelConfig from GGUF metadata ("general.architecture" = llama | qwen2 | qwen3; "<arch>.block_count", ...).
// Missing keys throw kvf::Error naming the key.
ModelConfig config_from_gguf(const GgufFile& f);

// llama.cpp tensor name -> HF name, e.g. "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight",
// "token_embd.weight" -> "model.embed_tokens.weight", "output.weight" -> "lm_head.weight". nullopt if unknown.
std::optional<std::string> hf_name_from_gguf(std::string_view gguf_name);

// llama.cpp's convert script permutes the rows of llama-family Q and K projections (HF's rotate_half
// layout -> interleaved). Undo it in place for a row-major (rows, cols) matrix, rows = n_head * head_dim
// (works for weights, cols = hidden, and biases, cols = 1).
void unpermute_qk_rows(float* data, int64_t rows, int64_t cols, int64_t n_head);

}  // namespace kvf
