#pragma once
// Kernels of the wrapper executors (chunkkv's chunk scores, think's channel pruning) and of lagkv's scorer. Each
// evaluates the CPU policy's own KVF_HOST_DEVICE functions in the CPU's order where the result must be bitwise the
// CPU's (chunkkv chunk means, lagkv scores, think's channel order on given scores). float32, torch-free; raw device
// pointers and a stream; asynchronous; returns the launch status.
#include <cstdint>

#include <cuda_runtime.h>

#include "kernels/cuda/kept_rows.cuh"

namespace kvf::cuda {

// chunkkv: keys (B, n_chunks) int64 = chunk_order_key of chunk j's mean over its positions of the head-summed
// scores (ChunkKV::head_sum, summed in double position by position, as granularity::ChunkKV::run), scores
// (B, H, S). Chunks of C positions, the last one S - j * C long.
cudaError_t chunkkv_chunk_keys(const float* scores, int64_t B, int64_t H, int64_t S, int64_t C, int64_t* keys,
                               cudaStream_t stream);

// think, query side: qh (B, Hq, d) = float(mean over the w rows of double(q * q)) of the RoPE'd pre-RoPE queries
// Q (B, Hq, w, d), row r rotated with RoPE row rope_rows - w + r of cos/sin (B, rope_rows, d)
// (postops::ThinK::query_norms before the group mean).
cudaError_t think_query_energy(const float* Q, const float* cos, const float* sin, int64_t B, int64_t Hq, int64_t w,
                               int64_t d, int64_t rope_rows, float* qh, cudaStream_t stream);

// think, key side and pruning, on the packed kept keys (rows, d) of kept.heads heads: kn[c] = float(mean over the
// head's rows of double(k * k)), score = qn (heads, d) * kn, the m channels first in ThinK::channel_before's order
// zeroed in every row of the head. workspace: think_workspace_bytes(kept.heads, d) bytes.
size_t think_workspace_bytes(int64_t heads, int64_t d);
cudaError_t think_prune(float* keys, int64_t d, const KeptView& kept, const float* qn, int64_t m, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream);

// lagkv scores (B*H heads of keys/values (S, d)) into out (B*H, S), exactly scorers::LagKV::score_head.
// workspace: lagkv_workspace_bytes(...) bytes.
size_t lagkv_workspace_bytes(int64_t heads, int64_t S, int64_t d, int64_t n_sink, int64_t lag);
cudaError_t lagkv_scores(const float* K, const float* V, int64_t heads, int64_t S, int64_t d, int64_t n_sink,
                         int64_t lag, bool cross_scoring, float* out, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream);

}  // namespace kvf::cuda
