#pragma once
// Torch-level building blocks of the wrapper executors (cuda_granularity_executors.hpp, CudaPostOp<ThinK>) and of
// CudaScorer<LagKV>: CUDA tensors in and out, on the current stream, float32. Part of kvf_cuda_torch (tensors and
// numbers only, see device_ops.hpp).
#include <cstdint>

#include <ATen/Tensor.h>

#include "kernels/cuda/device_ops.hpp"
#include "kernels/cuda/device_scorers.hpp"

namespace kvf::cuda {

// granularity::Chunk's selection on (B, H, S) scores (each chunk's protection already applied): per head, chunk
// after chunk, the chunk_kept(len, cr) best positions of every chunk (select_topn: the CPU's top_n_positions).
// Two select_topn calls whatever the chunk count (the full chunks as one (B*H*n_full, C) batch, the partial one).
DeviceKept chunk_select(const at::Tensor& scores, int64_t chunk_length, double compression_ratio);

// granularity::ChunkKV's selection for S >= chunk_length on (B, H, S) scores (protection applied): per batch row,
// the n best chunks by the double mean of the head-summed scores (bitwise the CPU's means; NaN first, ties to the
// earlier chunk), every head of the row keeping their positions, ascending.
DeviceKept chunkkv_select(const at::Tensor& scores, int64_t chunk_length, double compression_ratio);

// postops::ThinK: qn (B, H, d), the query side of the channel score (query_norms), from the last
// min(window, T) hidden rows rotated with the last rows of the RoPE tables.
at::Tensor think_query_norms(const QueryInputs& q, const at::Tensor& keys, int64_t window);
// The m channels of smallest qn * kn zeroed in every kept key of each head (kept_keys (rows, d), in place).
void think_prune(const at::Tensor& kept_keys, const DeviceKept& kept, const at::Tensor& qn, int64_t m);

// scorers::LagKV on keys/values (B, H, S, d): (B, H, S) scores, bitwise LagKV::score_head's.
at::Tensor lagkv_scores(const at::Tensor& keys, const at::Tensor& values, int64_t n_sink, int64_t lag_size,
                        bool cross_scoring);

}  // namespace kvf::cuda
