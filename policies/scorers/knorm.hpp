#pragma once
// knorm (kvpress KnormPress): s_t = -||K_t||_2 — keeps the keys with the smallest norm. No protection.
#include <cmath>

#include "compose/concepts.hpp"
#include "compose/host_device.hpp"

namespace kvf::scorers {

struct Knorm {
  static constexpr std::string_view name = "knorm";
  static constexpr bool needs_attentions = false;
  struct Params {};

  static void validate(const Params&, const LayerInputs&) {}
  static Protect protect(const Params&, const LayerInputs&) { return {}; }

  KVF_HOST_DEVICE static float token_score(const float* k, int64_t d) {
    float ss = 0.f;
    for (int64_t c = 0; c < d; ++c) ss += k[c] * k[c];
    return -sqrtf(ss);
  }
  static void score_head(const Params&, const LayerInputs& in, int64_t b, int64_t h, Scratch&, float* out) {
    const float* K = in.key(b, h);
    for (int64_t t = 0; t < in.seq; ++t) out[t] = token_score(K + t * in.head_dim, in.head_dim);
  }
};
static_assert(Scorer<Knorm>);

}  // namespace kvf::scorers
