// Token-local presses on the GPU (token_local.cuh). The scores come from the policies' own KVF_HOST_DEVICE
// functions (Knorm::token_score, StreamingLLM::slot_score), compiled with --fmad=false like the host's
// -ffp-contract=off, so they are the same floats as the host functions give.
#include "kernels/cuda/token_local.cuh"

// knorm.hpp includes policies/dense.hpp (Eigen) for the host scorers; keep Eigen host-only in this TU.
#define EIGEN_NO_CUDA

#include "compose/budget.hpp"
#include "kernels/cuda/row_copy.cuh"
#include "kernels/cuda/select_topn.cuh"
#include "policies/scorers/knorm.hpp"
#include "policies/scorers/streaming_llm.hpp"

namespace kvf::cuda {
namespace {

constexpr int kKnormRows = 64;  // rows per block; thread r scores row r

// Knorm: the block copies its rows to shared memory with coalesced loads, then each thread runs the policy's
// token_score on its row. Rows are padded to d + 1 floats so the 64 threads read 64 different banks.
__global__ void __launch_bounds__(kKnormRows) knorm_kernel(const float* keys, int64_t rows, int d, float* scores) {
  extern __shared__ float tile[];
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kKnormRows;
  const int nrows = static_cast<int>(min(static_cast<int64_t>(kKnormRows), rows - row0));
  const float* src = keys + row0 * d;
  const int stride = d + 1;
  if (d % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 16 == 0) {
    const int quads = nrows * d / 4;
#pragma unroll 4
    for (int i = threadIdx.x; i < quads; i += kKnormRows) {
      const float4 q = reinterpret_cast<const float4*>(src)[i];
      const int r = 4 * i / d, c = 4 * i % d;
      float* dst = tile + r * stride + c;
      dst[0] = q.x;
      dst[1] = q.y;
      dst[2] = q.z;
      dst[3] = q.w;
    }
  } else {
    for (int i = threadIdx.x; i < nrows * d; i += kKnormRows) tile[(i / d) * stride + i % d] = src[i];
  }
  __syncthreads();
  if (static_cast<int>(threadIdx.x) < nrows)
    scores[row0 + threadIdx.x] = scorers::Knorm::token_score(tile + threadIdx.x * stride, d);
}

// Knorm without staging, for rows too wide for the block's shared-memory tile (64 x (d + 1) floats beyond the
// device's opt-in limit, ~227 KB on sm_90: d > ~900). Same function on the same floats, so the same scores.
__global__ void knorm_direct_kernel(const float* keys, int64_t rows, int d, float* scores) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r < rows) scores[r] = scorers::Knorm::token_score(keys + r * d, d);
}

__global__ void streaming_llm_kernel(int64_t total, int64_t S, int64_t lo, int64_t hi, float* scores) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    scores[i] = scorers::StreamingLLM::slot_score(i % S, lo, hi);
}

__global__ void iota_kernel(int64_t total, int64_t S, int32_t* positions) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    positions[i] = static_cast<int32_t>(i % S);
}

// One warp per kept row: out row r = head r / n's position positions[r], for keys and values.
__global__ void gather_kernel(const float* K, const float* V, const int32_t* positions, int64_t rows, int64_t n,
                              int64_t S, int d, float* Ko, float* Vo) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; r < rows; r += warps) {
    const int64_t src = ((r / n) * S + positions[r]) * d, dst = r * d;
    // cudaMalloc'd (B, H, S, d) arrays: rows are 16-byte aligned when d % 4 == 0
    warp_copy_kv_row(K, V, Ko, Vo, src, dst, d, d % 4 == 0, lane);
  }
}

unsigned grid_for(int64_t work, int per_block) {
  const int64_t g = (work + per_block - 1) / per_block;
  return static_cast<unsigned>(g < 1 ? 1 : (g > 65535 * 16 ? 65535 * 16 : g));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

cudaError_t knorm_scores(const float* keys, int64_t rows, int64_t d, float* scores, cudaStream_t stream) {
  if (rows < 0 || d < 1 || d > 4096 || (rows > 0 && (!keys || !scores))) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  const size_t smem = kKnormRows * static_cast<size_t>(d + 1) * sizeof(float);
  const int64_t blocks = (rows + kKnormRows - 1) / kKnormRows;
  if (blocks > INT32_MAX) return cudaErrorInvalidConfiguration;
  if (smem > 48 * 1024) {
    // Review fix: d <= 4096 is accepted, but 64 x (d + 1) floats exceed the opt-in shared memory per block for
    // d > ~900 (cudaFuncSetAttribute then fails): such rows are scored from global memory instead.
    int dev = 0, optin = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e != cudaSuccess) return e;
    if (smem > static_cast<size_t>(optin)) {
      knorm_direct_kernel<<<static_cast<unsigned>((rows + 255) / 256), 256, 0, stream>>>(keys, rows,
                                                                                          static_cast<int>(d), scores);
      return cudaGetLastError();
    }
    e = cudaFuncSetAttribute(knorm_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  knorm_kernel<<<static_cast<unsigned>(blocks), kKnormRows, smem, stream>>>(keys, rows, static_cast<int>(d), scores);
  return cudaGetLastError();
}

cudaError_t streaming_llm_scores(int64_t heads, int64_t S, int64_t n_sink, double compression_ratio, float* scores,
                                 cudaStream_t stream) {
  if (heads < 0 || S < 0 || (heads * S > 0 && !scores)) return cudaErrorInvalidValue;
  if (heads * S == 0) return cudaSuccess;
  int64_t lo = 0, hi = 0;
  scorers::StreamingLLM::pruned_range(S, n_sink, compression_ratio, lo, hi);
  streaming_llm_kernel<<<grid_for(heads * S, 256), 256, 0, stream>>>(heads * S, S, lo, hi, scores);
  return cudaGetLastError();
}

int64_t token_local_kept(int64_t seq, double compression_ratio) {
  if (compression_ratio == 0.0) return seq;
  const int64_t n = n_kept(seq, compression_ratio);
  return n < seq ? n : seq;
}

size_t token_local_workspace_bytes(const TokenLocalLayer& layer) {
  return select_topn_workspace_bytes(layer.batch * layer.kv_heads, layer.seq);
}

cudaError_t run_token_local(const TokenLocalLayer& layer, const TokenLocalPress& press, const TokenLocalOutput& out,
                            void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const int64_t heads = layer.batch * layer.kv_heads, S = layer.seq, d = layer.head_dim;
  if (layer.batch < 0 || layer.kv_heads < 0 || S < 1 || d < 1 || d > 4096 || !layer.keys || !layer.values ||
      !out.positions || !out.keys || !out.values)
    return cudaErrorInvalidValue;
  if (press.scorer == TokenScorer::StreamingLLM && S <= press.n_sink) return cudaErrorInvalidValue;
  if (d % 4 == 0 && !(aligned16(layer.keys) && aligned16(layer.values) && aligned16(out.keys) && aligned16(out.values)))
    return cudaErrorMisalignedAddress;
  if (heads == 0) return cudaSuccess;
  const int64_t n = token_local_kept(S, press.compression_ratio);
  const size_t row_bytes = static_cast<size_t>(d) * sizeof(float);
  if (press.compression_ratio == 0.0) {  // kvpress: the cache untouched, nothing scored
    iota_kernel<<<grid_for(heads * S, 256), 256, 0, stream>>>(heads * S, S, out.positions);
    cudaMemcpyAsync(out.keys, layer.keys, heads * S * row_bytes, cudaMemcpyDeviceToDevice, stream);
    cudaMemcpyAsync(out.values, layer.values, heads * S * row_bytes, cudaMemcpyDeviceToDevice, stream);
    return cudaGetLastError();
  }
  if (!out.scores) return cudaErrorInvalidValue;
  cudaError_t e = press.scorer == TokenScorer::Knorm
                      ? knorm_scores(layer.keys, heads * S, d, out.scores, stream)
                      : streaming_llm_scores(heads, S, press.n_sink, press.compression_ratio, out.scores, stream);
  if (e != cudaSuccess) return e;
  e = select_topn(out.scores, heads, S, n, out.positions, workspace, workspace_bytes, stream);
  if (e != cudaSuccess || n == 0) return e;
  gather_kernel<<<grid_for(heads * n, 8), 256, 0, stream>>>(layer.keys, layer.values, out.positions, heads * n, n, S,
                                                            static_cast<int>(d), out.keys, out.values);
  return cudaGetLastError();
}

}  // namespace kvf::cuda
