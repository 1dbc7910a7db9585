// Ragged gather and key re-rotation over a packed kept set (kept_rows.cuh). One warp per output row; the row's
// head comes from a binary search over the offsets (kept_index.hpp), so any per-head counts work.
#include "kernels/cuda/kept_rows.cuh"

#include "kernels/cuda/kept_index.hpp"
#include "kernels/cuda/row_copy.cuh"
#include "policies/postops/key_rerotation.hpp"

namespace kvf::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__global__ void __launch_bounds__(kThreads)
    gather_kept_kernel(const float* K, const float* V, int64_t S, int d, bool vec4, const int64_t* offsets,
                       const int32_t* positions, int64_t heads, int64_t rows, float* Ko, float* Vo) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x) / 32; r < rows; r += warps) {
    const int64_t head = kept_head_of_row(offsets, heads, r);
    const int64_t src = (head * S + positions[r]) * d, dst = r * d;
    warp_copy_kv_row(K, V, Ko, Vo, src, dst, d, vec4, lane);
  }
}

__global__ void __launch_bounds__(kThreads)
    rerotate_kept_kernel(float* keys, int d, const int64_t* offsets, const int32_t* positions, int64_t heads,
                         int64_t rows, const float* inv_freq) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x) / 32; r < rows; r += warps) {
    const int64_t j = r - offsets[kept_head_of_row(offsets, heads, r)];
    // The CPU's delta: static_cast<float>(j) - static_cast<float>(pos[j]) (postops::KeyRerotation::apply).
    const float delta = static_cast<float>(j) - static_cast<float>(positions[r]);
    for (int c = lane; c < d / 2; c += 32) postops::KeyRerotation::rerotate_pair(keys + r * d, d / 2, c, delta, inv_freq);
  }
}

unsigned blocks_for_rows(int64_t rows) {
  const int64_t g = (rows + kWarps - 1) / kWarps;
  return static_cast<unsigned>(g < 1 ? 1 : (g > 65535 * 16 ? 65535 * 16 : g));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

cudaError_t gather_kept(const float* K, const float* V, int64_t S, int64_t d, const KeptView& kept, float* Ko,
                        float* Vo, cudaStream_t stream) {
  if (S < 0 || d < 1 || d > (1 << 20) || kept.heads < 0 || kept.rows < 0) return cudaErrorInvalidValue;
  if (kept.rows == 0) return cudaSuccess;
  if (!K || !V || !Ko || !Vo || !kept.offsets || !kept.positions || kept.heads == 0) return cudaErrorInvalidValue;
  const bool vec4 = d % 4 == 0 && aligned16(K) && aligned16(V) && aligned16(Ko) && aligned16(Vo);
  gather_kept_kernel<<<blocks_for_rows(kept.rows), kThreads, 0, stream>>>(
      K, V, S, static_cast<int>(d), vec4, kept.offsets, kept.positions, kept.heads, kept.rows, Ko, Vo);
  return cudaGetLastError();
}

cudaError_t rerotate_kept(float* keys, int64_t d, const KeptView& kept, const float* inv_freq, cudaStream_t stream) {
  if (d < 1 || d > (1 << 20) || kept.heads < 0 || kept.rows < 0) return cudaErrorInvalidValue;
  if (kept.rows == 0) return cudaSuccess;
  if (!keys || !inv_freq || !kept.offsets || !kept.positions || kept.heads == 0) return cudaErrorInvalidValue;
  rerotate_kept_kernel<<<blocks_for_rows(kept.rows), kThreads, 0, stream>>>(
      keys, static_cast<int>(d), kept.offsets, kept.positions, kept.heads, kept.rows, inv_freq);
  return cudaGetLastError();
}

}  // namespace kvf::cuda
