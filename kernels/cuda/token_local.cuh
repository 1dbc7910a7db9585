#pragma once
// The fused CUDA executor of the token-local presses (scorer x topk x token): knorm and streaming_llm.
// score -> per-head top-n (select_topn.cuh) -> gather the kept K/V rows, ascending positions, head after head
// (the layout of kvf::PressOutput / KeptSets). float32. Torch-free: raw device pointers and a stream.
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace kvf::cuda {

enum class TokenScorer { Knorm, StreamingLLM };

struct TokenLocalLayer {
  const float* keys = nullptr;    // (B, H, S, d) contiguous, on the device
  const float* values = nullptr;  // (B, H, S, d)
  int64_t batch = 0, kv_heads = 0, seq = 0, head_dim = 0;
};

struct TokenLocalPress {
  TokenScorer scorer = TokenScorer::Knorm;
  double compression_ratio = 0.0;  // fraction removed (kvpress)
  int64_t n_sink = 4;              // streaming_llm; needs seq > n_sink (kvpress asserts it)
};

struct TokenLocalOutput {
  float* scores = nullptr;       // (B, H, S); not written at cr == 0 (kvpress does not score then)
  int32_t* positions = nullptr;  // (B, H, n), ascending per head
  float* keys = nullptr;         // (B*H*n, d), head after head
  float* values = nullptr;       // (B*H*n, d)
};

// The scorers alone (used by the CudaExecutor framework, kernels/cuda/cuda_scorers.hpp). Asynchronous on `stream`.
// knorm: scores[r] = Knorm::token_score(keys + r * d, d) for r < rows (keys: rows x d, any alignment).
cudaError_t knorm_scores(const float* keys, int64_t rows, int64_t d, float* scores, cudaStream_t stream);
// streaming_llm: (heads, S) scores StreamingLLM::slot_score for the applying press's ratio.
cudaError_t streaming_llm_scores(int64_t heads, int64_t S, int64_t n_sink, double compression_ratio, float* scores,
                                 cudaStream_t stream);

// Positions kept per head: all of them at cr == 0, else compose/budget.hpp's n_kept (the topk selector).
int64_t token_local_kept(int64_t seq, double compression_ratio);
size_t token_local_workspace_bytes(const TokenLocalLayer& layer);
// Asynchronous on `stream`. cudaErrorInvalidValue for bad shapes, a missing buffer, a too-small workspace or
// streaming_llm with seq <= n_sink.
cudaError_t run_token_local(const TokenLocalLayer& layer, const TokenLocalPress& press, const TokenLocalOutput& out,
                            void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvf::cuda
