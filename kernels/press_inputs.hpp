#pragma once
// The torch bridge: core's LayerView + LayerCache -> float32 contiguous tensors (PressInputs), which the
// reference path reads as tensors and the fused executors read as raw pointers (LayerInputs).
#include <ATen/Tensor.h>

#include "compose/kept_sets.hpp"
#include "compose/layer_inputs.hpp"
#include "core/hooks.hpp"

namespace kvf {

struct PressInputs {
  at::Tensor hidden_states;  // (B, T, hidden) f32
  at::Tensor keys, values;   // (B, H, S, d) f32
  at::Tensor cos, sin;       // (B, T, d) f32
  at::Tensor inv_freq;       // (d/2) f32
  at::Tensor q_proj, q_bias, q_norm, o_proj;  // f32 (q_bias/q_norm undefined when absent)
  at::Tensor attentions;     // (B, Hq, T, S) f32 or undefined
  const ModelConfig* config = nullptr;
  int64_t layer = 0;
  at::ScalarType cache_dtype = at::kFloat;
  double compression_ratio = 0.0;  // the applying press's ratio (set by Reference::run), see LayerInputs

  LayerInputs raw() const;  // pointers into the tensors above (valid while this object lives)
};

PressInputs make_press_inputs(const LayerView& view, const LayerCache& cache);

// The same inputs as host (CPU) tensors: the fallback of a press without an executor on the cache's device.
PressInputs inputs_to_host(const PressInputs& in);
struct CompressResult;
// Moves a result's tensors to `device` (kept stays on the host).
CompressResult result_to(CompressResult r, const at::Device& device);

// An uninitialised float32 tensor for a compressed cache. From 8 MiB up it comes from the cache buffer pool
// (kernels/cache_buffer_pool.hpp): 2 MiB-aligned transparent huge pages, populated once, and reused after the
// tensor is freed, since faulting and zeroing a fresh buffer is most of a token-local press's compression time.
// Below 8 MiB, at::empty.
at::Tensor empty_cache_buffer(int64_t rows, int64_t cols);

// Packs kept positions into a (B*H) int32 offsets/positions pair of tensors, and back.
at::Tensor kept_mask(const KeptSets& kept, int64_t seq);  // (B, H, S) bool

}  // namespace kvf
