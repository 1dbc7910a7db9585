#pragma once
// Torch-level building blocks of the wrapper executors (cuda_granularity_executors.hpp, CudaPostOp<ThinK>) and of
// CudaScorer<LagKV>: CUDA tensors in and out, on the current stream, float32. Part of kvf_cuda_torch (tensors and
// numbers only, see device_ops.hpp).
#include <cstdint>
#include <functional>

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

// granularity::Block's run_iterative, round by round with tensor ops (any device), for scorers that read neither the
// hidden states nor attention weights (keydiff): every head starts with [0, n); each round scores the kept set plus
// the next block with `score` ((B, H, m, d) keys and values -> (B, H, m) scores, protection applied) and keeps its n
// best, carried in descending-score order (NaN first, ties to the earlier entry of the set: a stable descending
// sort, as the CPU's partial_sort with score_before). `values` undefined: not gathered (the scorer gets an
// undefined tensor). positions: (B*H, n) int32 ascending; scores (B, H, S): each position's score from the last
// round that scored it, NaN where none did (n == S runs no round).
struct BlockRounds {
  at::Tensor positions, scores;
};
using SetScorer = std::function<at::Tensor(const at::Tensor& keys, const at::Tensor& values)>;
BlockRounds block_iterative(const at::Tensor& keys, const at::Tensor& values, int64_t n, int64_t block_size,
                            const SetScorer& score);

// scorers::LagKV on keys/values (B, H, S, d): (B, H, S) scores, bitwise LagKV::score_head's.
at::Tensor lagkv_scores(const at::Tensor& keys, const at::Tensor& values, int64_t n_sink, int64_t lag_size,
                        bool cross_scoring);

}  // namespace kvf::cuda
