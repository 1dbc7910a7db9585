#pragma once
// Per-head top-n selection on the GPU with exactly the CPU semantics of policies/selection.hpp (top_n_positions):
// keys from policies/score_key.hpp (-0 == +0, NaN highest), the n largest keys kept, ties at the threshold to the
// lowest positions, positions written in ascending order. Torch-free: raw device pointers and a stream.
// S must fit int32 (positions are int32).
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace kvf::cuda {

// Which algorithm finds each head's threshold key. Auto: Block while S fits one block's tile, else Radix.
enum class SelectPath { Auto, Block, Radix };

// One block's tile (256 threads x 16 keys): the Block path needs S <= this.
inline constexpr int64_t kSelectTile = 4096;

// Device workspace bytes select_topn needs for `heads` heads of S scores (0 for the Block path).
size_t select_topn_workspace_bytes(int64_t heads, int64_t S, SelectPath path = SelectPath::Auto);

// scores: (heads, S) float32, row-major, on the device. out: (heads, n) int32, head i's kept positions ascending
// at out + i * n. n is clamped to [0, S]. Asynchronous on `stream`; returns the launch status
// (cudaErrorInvalidValue for a too-small workspace or S beyond int32, cudaErrorInvalidConfiguration when
// path == Block and S > kSelectTile). nan_high: score_key's NaN order (true: NaN above every number, torch.topk;
// false: NaN below every number, AdaKV's global prune).
cudaError_t select_topn(const float* scores, int64_t heads, int64_t S, int64_t n, int32_t* out, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream, SelectPath path = SelectPath::Auto,
                        bool nan_high = true);

}  // namespace kvf::cuda
