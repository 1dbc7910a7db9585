#pragma once
// Dequantisation of ggml blocks to float32: F32, F16, BF16, Q8_0, Q4_0, Q4_1 (llama.cpp bit layout).
#include <cstddef>
#include <cstdint>

#include "core/gguf.hpp"

namespace kvf {

bool ggml_can_dequantize(GgmlType t);
int64_t ggml_block_size(GgmlType t);   // elements per block (1 for float types); throws if unsupported
size_t ggml_type_size(GgmlType t);     // bytes per block; throws if unsupported
// Bytes for n elements; throws kvf::Error if n is not a multiple of the block size or on overflow.
size_t ggml_nbytes(GgmlType t, int64_t n);
// Dequantise n elements from src (ggml_nbytes(t, n) bytes) into dst.
void dequantize(GgmlType t, const uint8_t* src, float* dst, int64_t n);

// Exact conversions of one IEEE binary16 / bfloat16 value (subnormals, infinities and NaN payloads kept).
float fp16_to_float(uint16_t h);
float bf16_to_float(uint16_t h);

}  // namespace kvf
