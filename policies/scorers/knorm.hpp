#pragma once
// knorm (kvpress KnormPress): s_t = -||K_t||_2 — keeps the keys with the smallest norm. No protection.
#include <cmath>

#include "compose/concepts.hpp"
#include "compose/host_device.hpp"
#include "policies/dense.hpp"

namespace kvf::scorers {

struct Knorm {
  static constexpr std::string_view name = "knorm";
  static constexpr bool needs_attentions = false;
  static constexpr bool token_local = true;  // -||K_t|| reads K_t only (compose/concepts.hpp)
  static constexpr bool reads_values = false, reads_hidden_states = false;
  struct Params {};

  static void validate(const Params&, const LayerInputs&) {}
  static Protect protect(const Params&, const LayerInputs&) { return {}; }

  KVF_HOST_DEVICE static float token_score(const float* k, int64_t d) {
    float ss = 0.f;
    for (int64_t c = 0; c < d; ++c) ss += k[c] * k[c];
    return -sqrtf(ss);
  }
  static void score_head(const Params&, const LayerInputs& in, int64_t b, int64_t h, Scratch&, float* out) {
    dense::row_norms(in.key(b, h), in.seq, in.head_dim, out, /*negate=*/true);  // token_score, vectorised
  }
};
static_assert(Scorer<Knorm>);

}  // namespace kvf::scorers
