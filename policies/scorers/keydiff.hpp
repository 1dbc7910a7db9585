#pragma once
// keydiff (kvpress KeyDiffPress): keeps the keys least aligned with the head's mean key direction.
//   a   = mean_t K_t / max(|K_t|, 1e-12)                   (F.normalize, then mean; a is not re-normalised)
//   s_t = -(K_t / max(|K_t|, 1e-8)) . (a / max(|a|, 1e-8))  (F.cosine_similarity, eps 1e-8)
// Post-RoPE cached keys. No protection.
#include <cmath>
#include <vector>

#include "compose/concepts.hpp"
#include "compose/host_device.hpp"
#include "policies/dense.hpp"

namespace kvf::scorers {

struct KeyDiff {
  static constexpr std::string_view name = "keydiff";
  static constexpr bool needs_attentions = false;
  static constexpr bool reads_values = false, reads_hidden_states = false;
  struct Params {};

  static void validate(const Params&, const LayerInputs&) {}
  static Protect protect(const Params&, const LayerInputs&) { return {}; }

  KVF_HOST_DEVICE static float norm(const float* x, int64_t d) {
    float ss = 0.f;
    for (int64_t c = 0; c < d; ++c) ss += x[c] * x[c];
    return sqrtf(ss);
  }
  // -cos(k, anchor) with anchor already divided by its clamped norm.
  KVF_HOST_DEVICE static float token_score(const float* k, const float* unit_anchor, int64_t d) {
    const float nk = fmaxf(norm(k, d), 1e-8f);
    float acc = 0.f;
    for (int64_t c = 0; c < d; ++c) acc += (k[c] / nk) * unit_anchor[c];
    return -acc;
  }
  // Vectorised host version of token_score over a head: key norms once (Eigen), the anchor accumulated in double,
  // then all dot products in one GEMV. Same math as token_score; the float summation order differs (tests compare
  // tie-aware, like every fused-vs-reference check).
  static void score_head(const Params&, const LayerInputs& in, int64_t b, int64_t h, Scratch& ws, float* out) {
    const int64_t S = in.seq, d = in.head_dim;
    const float* K = in.key(b, h);
    ws.b.resize(static_cast<size_t>(S));
    float* nk = ws.b.data();
    dense::row_norms(K, S, d, nk);
    // The mean of S unit vectors nearly cancels for long sequences (|a| ~ 1/sqrt(S)): accumulate in double so
    // the anchor's direction is not dominated by float rounding (torch's pairwise sums are about as accurate).
    std::vector<double> acc(static_cast<size_t>(d), 0.0);
    for (int64_t t = 0; t < S; ++t) {
      const float* k = K + t * d;
      const float n = fmaxf(nk[t], 1e-12f);
      for (int64_t c = 0; c < d; ++c) acc[static_cast<size_t>(c)] += k[c] / n;
    }
    ws.a.assign(static_cast<size_t>(d), 0.f);
    float* a = ws.a.data();
    for (int64_t c = 0; c < d; ++c) a[c] = static_cast<float>(acc[static_cast<size_t>(c)] / static_cast<double>(S));
    const float na = fmaxf(norm(a, d), 1e-8f);
    for (int64_t c = 0; c < d; ++c) a[c] /= na;
    dense::gemv_rows(K, S, d, a, out);  // out[t] = K_t . a
    for (int64_t t = 0; t < S; ++t) out[t] = -(out[t] / fmaxf(nk[t], 1e-8f));
  }
};
static_assert(Scorer<KeyDiff>);

}  // namespace kvf::scorers
