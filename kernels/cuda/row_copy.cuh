#pragma once
// One warp copies one key row and one value row of d floats (the gathers of kept_rows.cu and token_local.cu),
// float4-wide when `vec4` (every row 16-byte aligned, d % 4 == 0). Include from .cu files only.
#include <cstdint>

namespace kvf::cuda {

__device__ inline void warp_copy_kv_row(const float* K, const float* V, float* Ko, float* Vo, int64_t src,
                                        int64_t dst, int64_t d, bool vec4, int lane) {
  if (vec4) {
    for (int64_t c = lane; c < d / 4; c += 32) {
      reinterpret_cast<float4*>(Ko + dst)[c] = reinterpret_cast<const float4*>(K + src)[c];
      reinterpret_cast<float4*>(Vo + dst)[c] = reinterpret_cast<const float4*>(V + src)[c];
    }
  } else {
    for (int64_t c = lane; c < d; c += 32) {
      Ko[dst + c] = K[src + c];
      Vo[dst + c] = V[src + c];
    }
  }
}

}  // namespace kvf::cuda
