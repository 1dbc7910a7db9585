#pragma once
// key_rerotation (kvpress KeyRerotationPress): after pruning, the j-th kept key of a head (positions ascending),
// stored as R(p_j) k, is re-rotated to R(j) k = R(j - p_j) R(p_j) k, so the kept keys sit at contiguous RoPE
// positions 0..n-1 (and the next token can continue at position n). With inv_freq w (d/2, frequency scaling
// included) and delta = j - p_j <= 0, all in float32 as kvpress (autocast off):
//   theta_c = delta * w_c;  k'[c] = k[c] cos(theta_c) - k[c + d/2] sin(theta_c),
//                           k'[c + d/2] = k[c + d/2] cos(theta_c) + k[c] sin(theta_c)      (rotate_half layout)
// No attention scaling (YaRN mscale): a relative rotation must not rescale. Values are untouched.
// It works on any kept sets (ragged too); kvpress only wraps ScorerPresses.
#include <algorithm>
#include <cmath>
#include <vector>

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
    rotate_pair(k, half, c, cosf(theta), sinf(theta));
  }
  // Channel pair (c, c + half) rotated by an angle given as its cos/sin: the one rotation formula of both paths.
  KVF_HOST_DEVICE static void rotate_pair(float* k, int64_t half, int64_t c, float cs, float sn) {
    const float x1 = k[c], x2 = k[c + half];
    k[c] = x1 * cs + -x2 * sn;
    k[c + half] = x2 * cs + x1 * sn;
  }
  // Rotates one key (d) in place by delta positions.
  KVF_HOST_DEVICE static void rerotate(float* k, int64_t d, float delta, const float* inv_freq) {
    for (int64_t c = 0; c < d / 2; ++c) rerotate_pair(k, d / 2, c, delta, inv_freq);
  }

  // Host: every key of a head whose delta equals the previous key's reuses its cos/sin row (runs of kept
  // positions share a delta), and when the layer holds at least twice as many kept keys as distinct deltas the
  // rows come from one table over [min delta, 0] shared by all heads. Either way each entry is the same
  // cosf/sinf of the same float theta as rerotate_pair's, so the keys are bitwise the same (no FMA contraction:
  // -ffp-contract=off); sincos was a third of key_rerotation(knorm)'s time at S = 8192.
  static void apply(const Params&, const LayerInputs& in, const KeptSets& kept, float* keys, float*) {
    if (!in.inv_freq) throw Error("key_rerotation: the layer has no RoPE frequencies (inv_freq)");
    const int64_t d = in.head_dim, half = d / 2, heads = kept.batch * kept.heads;
    // delta = j - p_j never increases along a head (positions ascend by >= 1), so its last key has the minimum.
    int64_t min_delta = 0;
    for (int64_t i = 0; i < heads; ++i) {
      const int64_t n = kept.offsets[i + 1] - kept.offsets[i];
      if (n > 0) min_delta = std::min<int64_t>(min_delta, (n - 1) - kept.positions[kept.offsets[i] + n - 1]);
    }
    const int64_t range = 1 - min_delta;
    std::vector<float> table;  // row r: cos then sin of delta = -r, half entries each
    if (kept.total() >= 2 * range) {
      table.resize(static_cast<size_t>(range * d));
      parallel_for(range, default_workers(), [&](int64_t r, int) {
        fill_cos_sin(static_cast<float>(-r), half, in.inv_freq, table.data() + r * d);
      });
    }
    parallel_for(heads, default_workers(), [&](int64_t i, int) {
      const int32_t* pos = kept.positions.data() + kept.offsets[i];
      float* k = keys + kept.offsets[i] * d;
      std::vector<float> row(table.empty() ? static_cast<size_t>(d) : 0);
      int64_t row_delta = 1;  // no row yet
      for (int64_t j = 0; j < kept.offsets[i + 1] - kept.offsets[i]; ++j) {
        const int64_t delta = j - pos[j];
        const float* cs = nullptr;
        if (!table.empty()) {
          cs = table.data() + (-delta) * d;
        } else {
          if (delta != row_delta) fill_cos_sin(static_cast<float>(delta), half, in.inv_freq, row.data());
          row_delta = delta;
          cs = row.data();
        }
        for (int64_t c = 0; c < half; ++c) rotate_pair(k + j * d, half, c, cs[c], cs[half + c]);
      }
    });
  }

  static void fill_cos_sin(float delta, int64_t half, const float* inv_freq, float* out) {
    for (int64_t c = 0; c < half; ++c) {
      const float theta = delta * inv_freq[c];
      out[c] = cosf(theta);
      out[half + c] = sinf(theta);
    }
  }
};
static_assert(PostOp<KeyRerotation>);

}  // namespace kvf::postops
