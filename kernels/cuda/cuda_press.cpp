#include "kernels/cuda/cuda_press.hpp"

#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/error.hpp"
#include "kernels/cuda/token_local.cuh"

namespace kvf::cuda {

bool has_cuda_press(std::string_view press) { return press == "knorm" || press == "streaming_llm"; }

CudaCompressResult compress_token_local(const at::Tensor& keys, const at::Tensor& values, std::string_view press,
                                        double compression_ratio, int64_t n_sink) {
  if (!has_cuda_press(press)) throw Error("cuda: no CUDA executor for press '" + std::string(press) + "'");
  if (!keys.is_cuda() || !values.is_cuda() || keys.device() != values.device())
    throw Error("cuda: keys and values must be CUDA tensors on one device");
  if (keys.scalar_type() != at::kFloat || values.scalar_type() != at::kFloat)
    throw Error("cuda: keys and values must be float32 (bf16 is not implemented yet)");
  if (keys.dim() != 4 || keys.sizes() != values.sizes()) throw Error("cuda: keys and values must be (B, H, S, d)");
  if (!(compression_ratio >= 0.0 && compression_ratio < 1.0))
    throw Error("cuda: compression_ratio must be in [0, 1), got " + std::to_string(compression_ratio));
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), d = keys.size(3);
  if (press == "streaming_llm" && S <= n_sink)
    throw Error("streaming_llm: the cache (" + std::to_string(S) + " tokens) must be longer than n_sink=" +
                std::to_string(n_sink));

  const c10::cuda::CUDAGuard guard(keys.device());
  // The kernels read rows as float4 when d % 4 == 0: a view starting off a 16-byte boundary is copied first.
  auto ready = [](const at::Tensor& t) {
    const at::Tensor c = t.contiguous();
    return reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
  };
  const at::Tensor K = ready(keys), V = ready(values);
  const int64_t n = token_local_kept(S, compression_ratio);
  const auto f32 = K.options(), i32 = K.options().dtype(at::kInt);
  CudaCompressResult r;
  if (compression_ratio != 0.0) r.scores = at::empty({B, H, S}, f32);
  r.positions = at::empty({B, H, n}, i32);
  r.keys = at::empty({B * H * n, d}, f32);
  r.values = at::empty({B * H * n, d}, f32);
  const TokenLocalLayer layer{K.data_ptr<float>(), V.data_ptr<float>(), B, H, S, d};
  const TokenLocalPress p{press == "knorm" ? TokenScorer::Knorm : TokenScorer::StreamingLLM, compression_ratio, n_sink};
  const TokenLocalOutput out{r.scores.defined() ? r.scores.data_ptr<float>() : nullptr, r.positions.data_ptr<int32_t>(),
                             r.keys.data_ptr<float>(), r.values.data_ptr<float>()};
  const size_t ws_bytes = token_local_workspace_bytes(layer);
  const at::Tensor ws = at::empty({static_cast<int64_t>(ws_bytes)}, K.options().dtype(at::kByte));
  const cudaError_t e = run_token_local(layer, p, out, ws_bytes ? ws.data_ptr() : nullptr, ws_bytes,
                                        at::cuda::getCurrentCUDAStream().stream());
  if (e != cudaSuccess) throw Error(std::string("cuda: ") + std::string(press) + ": " + cudaGetErrorString(e));
  return r;
}

}  // namespace kvf::cuda
