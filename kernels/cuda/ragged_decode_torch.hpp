#pragma once
// The torch side of the ragged decode attention kernel (kernels/cuda/ragged_decode.cuh), in kvf_cuda_torch.
#include <cstdint>
#include <vector>

#include <ATen/Tensor.h>

namespace kvf::cuda {

// q: (B, Hq, 1, d) CUDA; keys/values: the packed (R, d) rows of a ragged cache, same device and dtype as q
// (float32 or bfloat16); head i = b*Hkv + h holds rows [start[i], start[i] + len[i]). Returns (B, Hq, 1, d) in
// q's dtype, on the current stream. Throws kvf::Error for what the kernel does not take (other dtypes, d > 256,
// more than 8 query heads per kv head); the caller then uses its generic path.
at::Tensor ragged_decode_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                                   const std::vector<int64_t>& start, const std::vector<int64_t>& len,
                                   int64_t kv_heads, double scale);

}  // namespace kvf::cuda
