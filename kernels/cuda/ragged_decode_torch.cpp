#include "kernels/cuda/ragged_decode_torch.hpp"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <string>

#include "core/error.hpp"
#include "kernels/cuda/ragged_decode.cuh"

namespace kvf::cuda {

at::Tensor ragged_decode_attention(const at::Tensor& q, const at::Tensor& keys, const at::Tensor& values,
                                   const std::vector<int64_t>& start, const std::vector<int64_t>& len,
                                   int64_t kv_heads, double scale) {
  if (!q.is_cuda() || keys.device() != q.device() || values.device() != q.device())
    throw Error("ragged decode: q, keys and values must be CUDA tensors on one device");
  if (q.dim() != 4 || q.size(2) != 1) throw Error("ragged decode: q must be (B, Hq, 1, d)");
  if (keys.scalar_type() != q.scalar_type() || values.scalar_type() != q.scalar_type() ||
      (q.scalar_type() != at::kFloat && q.scalar_type() != at::kBFloat16))
    throw Error("ragged decode: q, keys and values must share a dtype, float32 or bfloat16");
  const int64_t B = q.size(0), Hq = q.size(1), d = q.size(3);
  if (keys.dim() != 2 || keys.size(1) != d || values.sizes() != keys.sizes())
    throw Error("ragged decode: keys/values must be (R, d) with q's d");
  if (static_cast<int64_t>(start.size()) != B * kv_heads || len.size() != start.size())
    throw Error("ragged decode: start/len must have B * kv_heads entries");
  // Review fix: the kernel reads rows [start[i], start[i] + len[i]) of keys/values unchecked; a layout that does not
  // fit the packed tensors would read out of bounds on the device.
  for (size_t i = 0; i < start.size(); ++i)
    if (start[i] < 0 || len[i] < 0 || start[i] + len[i] > keys.size(0))
      throw Error("ragged decode: head " + std::to_string(i) + "'s rows [" + std::to_string(start[i]) + ", " +
                  std::to_string(start[i] + len[i]) + ") are not within the " + std::to_string(keys.size(0)) +
                  " packed rows");
  const c10::cuda::CUDAGuard guard(q.device());
  const auto i64 = at::TensorOptions().dtype(at::kLong);
  std::vector<int64_t> both(start);
  both.insert(both.end(), len.begin(), len.end());
  const at::Tensor meta = at::tensor(both, i64).to(q.device(), /*non_blocking=*/false);
  const at::Tensor qc = q.contiguous(), K = keys.contiguous(), V = values.contiguous();
  at::Tensor out = at::empty_like(qc);
  RaggedDecodeArgs a;
  a.q = qc.data_ptr();
  a.keys = K.data_ptr();
  a.values = V.data_ptr();
  a.start = meta.data_ptr<int64_t>();
  a.len = a.start + start.size();
  a.out = out.data_ptr();
  a.batch = B, a.q_heads = Hq, a.kv_heads = kv_heads, a.head_dim = d;
  a.max_len = len.empty() ? 0 : *std::max_element(len.begin(), len.end());
  a.scale = static_cast<float>(scale);
  a.type = q.scalar_type() == at::kBFloat16 ? CacheType::BF16 : CacheType::F32;
  const size_t ws_bytes = ragged_decode_workspace_bytes(a);
  const at::Tensor ws = at::empty({static_cast<int64_t>(ws_bytes)}, q.options().dtype(at::kByte));
  const cudaError_t e = ragged_decode_attention(a, ws_bytes ? ws.data_ptr() : nullptr, ws_bytes,
                                                at::cuda::getCurrentCUDAStream().stream());
  if (e != cudaSuccess) throw Error(std::string("ragged decode: ") + cudaGetErrorString(e));
  return out;
}

}  // namespace kvf::cuda
