#pragma once
// RoPE tables (rotate_half convention, as transformers' Llama/Qwen): inv_freq with optional llama3
// scaling, and cos/sin for given positions.
#include <ATen/Tensor.h>

#include "core/config.hpp"

namespace kvf {

at::Tensor rope_inv_freq(const ModelConfig& cfg);  // (D/2) float32
// cos, sin: (B, T, D) in `dtype`, computed in float32 like transformers.
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& inv_freq, const at::Tensor& position_ids,
                                               at::ScalarType dtype);
// x: (B, H, T, D); cos/sin: (B, T, D).
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace kvf
