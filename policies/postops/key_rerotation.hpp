#pragma once
// key_rerotation (kvpress KeyRerotationPress): after pruning, the j-th kept key of a head (positions ascending),
// stored as R(p_j) k, is re-rotated to R(j) k = R(j - p_j) R(p_j) k, so the kept keys sit at contiguous RoPE
// positions 0..n-1 (and the next token can continue at position n). With inv_freq w (d/2, frequency scaling
// included) and delta = j - p_j <= 0, all in float32 as kvpress (autocast off):
//   theta_c = delta * w_c;  k'[c] = k[c] cos(theta_c) - k[c + d/2] sin(theta_c),
//                           k'[c + d/2] = k[c + d/2] cos(theta_c) + k[c] sin(theta_c)      (rotate_half layout)
// No attention scaling (YaRN mscale): a relative rotation must not rescale. Values are untouched.
// It works on any kept sets (ragged too); kvpress only wraps ScorerPresses.
#include <cmath>

#include "compose/concepts.hpp"
#include "compose/host_device.hpp"
#include "compose/parallel.hpp"
#include "core/error.hpp"

namespace kvf::postops {

struct KeyRerotation {
  static constexpr std::string_view name = "key_rerotation";
  struct Params {};

  // Rotates channel pair (c, c + half) of one key in place by delta positions (one CUDA lane per pair).
  KVF_HOST_DEVICE static void rerotate_pair(float* k, int64_t half, int64_t c, float delta, const float* inv_freq) {
    const float theta = delta * inv_freq[c];
    const float cs = cosf(theta), sn = sinf(theta);
    const float x1 = k[c], x2 = k[c + half];
    k[c] = x1 * cs + -x2 * sn;
    k[c + half] = x2 * cs + x1 * sn;
  }
  // Rotates one key (d) in place by delta positions.
  KVF_HOST_DEVICE static void rerotate(float* k, int64_t d, float delta, const float* inv_freq) {
    for (int64_t c = 0; c < d / 2; ++c) rerotate_pair(k, d / 2, c, delta, inv_freq);
  }

  static void apply(const Params&, const LayerInputs& in, const KeptSets& kept, float* keys, float*) {
    if (!in.inv_freq) throw Error("key_rerotation: the layer has no RoPE frequencies (inv_freq)");
    const int64_t d = in.head_dim;
    parallel_for(kept.batch * kept.heads, default_workers(), [&](int64_t i, int) {
      const int32_t* pos = kept.positions.data() + kept.offsets[i];
      float* k = keys + kept.offsets[i] * d;
      for (int64_t j = 0; j < kept.offsets[i + 1] - kept.offsets[i]; ++j)
        rerotate(k + j * d, d, static_cast<float>(j) - static_cast<float>(pos[j]), in.inv_freq);
    });
  }
};
static_assert(PostOp<KeyRerotation>);

}  // namespace kvf::postops
