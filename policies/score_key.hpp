#pragma once
// The order-preserving integer key of a score, shared by the CPU selection (policies/selection.hpp) and the CUDA
// selection (kernels/cuda/select_topn.cu): one definition, so both keep exactly the same positions.
// Pure bit arithmetic (no <cmath>), so it compiles unchanged for device code.
#include <cstdint>

#include "compose/host_device.hpp"

namespace kvf {

// Monotone key of a score: a < b (as floats) <=> key(a) < key(b); -0 and +0 share a key; every NaN maps to the
// top key (nan_high: torch.topk's rule) or the bottom key (NaN pruned first, kvpress's AdaKV prune). Finite and
// infinite scores map into [0x007FFFFF, 0xFF800000], so 0 and 0xFFFFFFFF are free for NaN (and, on the GPU, 0 pads
// a partial tile below every real key).
KVF_HOST_DEVICE inline uint32_t score_key(float s, bool nan_high = true) {
  uint32_t u = float_bits(s);
  // Branch-free selects, so the CPU loop over a head's scores vectorises.
  const uint32_t mag = u & 0x7FFFFFFFu;
  u = mag == 0u ? 0u : u;  // -0 -> +0
  const uint32_t key = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  return mag > 0x7F800000u ? (nan_high ? 0xFFFFFFFFu : 0u) : key;  // NaN: exponent all ones, mantissa non-zero
}

}  // namespace kvf
