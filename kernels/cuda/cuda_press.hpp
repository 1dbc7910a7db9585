#pragma once
// The torch side of the CUDA executors (built only with KVF_HAVE_CUDA): CUDA tensors in, CUDA tensors out, on the
// current stream. The only place where kernels/cuda meets libtorch.
#include <cstdint>
#include <string_view>

#include <ATen/Tensor.h>

namespace kvf::cuda {

struct CudaCompressResult {
  at::Tensor scores;     // (B, H, S) float32 as selection saw them; undefined at cr == 0 (as kvf::CompressResult)
  at::Tensor positions;  // (B, H, n) int32, ascending per head
  at::Tensor keys;       // (B*H*n, d) float32, head after head (KeptSets order)
  at::Tensor values;     // (B*H*n, d)
};

// Presses with a CUDA executor: "knorm", "streaming_llm" (each with the topk selector, token granularity).
bool has_cuda_press(std::string_view press);

// keys, values: (B, H, S, d) float32 CUDA tensors on one device. Throws kvf::Error for an unknown press, bad
// tensors, streaming_llm with S <= n_sink, or a CUDA error.
CudaCompressResult compress_token_local(const at::Tensor& keys, const at::Tensor& values, std::string_view press,
                                        double compression_ratio, int64_t n_sink = 4);

}  // namespace kvf::cuda
