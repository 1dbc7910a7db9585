#pragma once
// Every CudaExecutor specialisation (kernels/cuda/cuda_executor.hpp says what one is). Included by
// kernels/typed_press.hpp when KVF_HAVE_CUDA is defined, so each registered press finds its CUDA executor.
//
// The device mirrors the compose DSL: CudaScorer<Sc> (cuda_scorers.hpp), CudaSelector<Se> (cuda_selectors.hpp),
// CudaPostOp<Po> (cuda_postops.hpp), composed per granularity; a press whose parts are not all available keeps the
// primary template (available = false) and TypedPress runs it on host copies.
#include "kernels/cuda/cuda_executor.hpp"
#include "kernels/cuda/cuda_token_executor.hpp"        // granularity::Token
#include "kernels/cuda/cuda_granularity_executors.hpp"  // granularity::Chunk, ChunkKV, Block (token-local)
