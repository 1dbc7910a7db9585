#pragma once
// Kernels over a packed kept set (compose/kept_sets.hpp's layout, on the device): offsets (heads + 1) int64,
// positions (offsets[heads]) int32 ascending per head. Ragged counts are fine (adakv). float32, torch-free.
#include <cstdint>

#include <cuda_runtime.h>

namespace kvf::cuda {

struct KeptView {
  const int64_t* offsets = nullptr;    // device, heads + 1
  const int32_t* positions = nullptr;  // device, rows
  int64_t heads = 0, rows = 0;         // rows = offsets[heads] (known on the host)
};

// Ko/Vo (rows, d) <- the kept rows of K/V (heads, S, d), head after head (CpuExecutor::gather's layout).
cudaError_t gather_kept(const float* K, const float* V, int64_t S, int64_t d, const KeptView& kept, float* Ko,
                        float* Vo, cudaStream_t stream);

// key_rerotation on the packed kept keys (rows, d), in place: row j of head i is rotated by j - positions[j]
// (postops::KeyRerotation::rerotate_pair per channel pair, d / 2 pairs as on the CPU; inv_freq (d/2) on the device).
cudaError_t rerotate_kept(float* keys, int64_t d, const KeptView& kept, const float* inv_freq, cudaStream_t stream);

}  // namespace kvf::cuda
