#pragma once
// Small helpers shared by the torch bridges of the CUDA kernels (device_ops.cpp, device_wrappers.cpp): argument
// checks that name the tensor, CUDA status -> kvf::Error, the current stream, a DeviceKept as the kernels' view.
// Include only from kvf_cuda_torch sources.
#include <string>

#include <ATen/Tensor.h>
#include <ATen/cuda/CUDAContext.h>

#include "core/error.hpp"
#include "kernels/cuda/device_ops.hpp"
#include "kernels/cuda/kept_rows.cuh"

namespace kvf::cuda::bridge {

inline void require_cuda_f32(const at::Tensor& t, const char* what, int64_t dim) {
  if (!t.defined() || !t.is_cuda() || t.scalar_type() != at::kFloat || !t.is_contiguous() || t.dim() != dim)
    throw Error(std::string("cuda: ") + what + " must be a contiguous float32 CUDA tensor with " +
                std::to_string(dim) + " dimensions");
}
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
}
inline cudaStream_t stream() { return at::cuda::getCurrentCUDAStream().stream(); }
inline KeptView view_of(const DeviceKept& k) {
  return {k.offsets.data_ptr<int64_t>(), k.positions.data_ptr<int32_t>(), k.batch * k.heads, k.rows};
}

}  // namespace kvf::cuda::bridge
