#pragma once
// Decode attention (one new query per head) over a ragged per-head KV cache, the layout of core's LayerCache:
// every (batch, kv head) i holds len[i] rows starting at row start[i] of packed (R, d) key/value arrays. The G
// query heads of kv head i attend over its rows only (GQA without repeating K/V). Split-K ("flash decoding"):
// blocks take 512-row slices of a head and keep an online softmax in float32; a second kernel merges the slices.
// A head with no rows gives zeros. Torch-free: raw device pointers and a stream.
#include <cstddef>
#include <cstdint>

#include <cuda_runtime.h>

namespace kvf::cuda {

enum class CacheType { F32, BF16 };

struct RaggedDecodeArgs {
  const void* q = nullptr;       // (B*Hq, d) in `type`: query head j of batch b at row b*Hq + j
  const void* keys = nullptr;    // (R, d) in `type`
  const void* values = nullptr;  // (R, d)
  const int64_t* start = nullptr;  // (B*Hkv) on the device
  const int64_t* len = nullptr;    // (B*Hkv) on the device
  void* out = nullptr;           // (B*Hq, d) in `type`
  int64_t batch = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  int64_t max_len = 0;           // the longest head (sizes the split grid)
  float scale = 1.f;             // 1/sqrt(d)
  CacheType type = CacheType::F32;
};

// Rows of one split (a block's slice of a head).
inline constexpr int64_t kDecodeSplitRows = 512;

size_t ragged_decode_workspace_bytes(const RaggedDecodeArgs& a);
// cudaErrorInvalidValue for bad shapes (d > 256, G > 8, Hq % Hkv != 0) or a too-small workspace.
cudaError_t ragged_decode_attention(const RaggedDecodeArgs& a, void* workspace, size_t workspace_bytes,
                                    cudaStream_t stream);

}  // namespace kvf::cuda
