#pragma once
// random (kvpress RandomPress): s[b,h,t] ~ U[0,1). No protection.
//
// seed >= 0 reproduces kvpress bit for bit on a float32 CPU cache: kvpress seeds a fresh torch.Generator with
// `seed` on every call and draws torch.rand(B, H, S); torch's CPU generator is MT19937 seeded with the low 32
// bits of the seed, and a float32 draw is (next32 & (2^24 - 1)) * 2^-24, filled serially in (b, h, t) order.
// Every call (every layer) therefore gets the same draw for the same shape, as in kvpress. Not reproduced:
// kvpress's bf16/fp16 caches draw in the cache dtype ((next32 & 0xff) * 2^-8: fewer distinct values, so other
// tie groups), and CUDA caches use the device's Philox generator.
// seed = -1 (kvpress's None): fresh nondeterministic draws on every call.
#include <cstdint>
#include <random>

#include "compose/concepts.hpp"
#include "compose/params.hpp"

namespace kvf::scorers {

struct Random {
  static constexpr std::string_view name = "random";
  static constexpr bool needs_attentions = false;
  static constexpr bool reads_values = false, reads_hidden_states = false;
  struct Params {
    int64_t seed = -1;  // -1 = None
    static constexpr auto fields = std::make_tuple(field("seed", &Params::seed, -1, 9007199254740992.0));
  };

  static void validate(const Params&, const LayerInputs&) {}
  static Protect protect(const Params&, const LayerInputs&) { return {}; }

  // torch's float32 uniform from one 32-bit MT19937 output.
  static float uniform(uint32_t r) { return static_cast<float>(r & ((1u << 24) - 1)) * (1.f / 16777216.f); }

  static void score_head(const Params& p, const LayerInputs& in, int64_t b, int64_t h, Scratch&, float* out) {
    if (p.seed >= 0) {
      std::mt19937 rng(static_cast<uint32_t>(static_cast<uint64_t>(p.seed) & 0xffffffffu));
      rng.discard(static_cast<unsigned long long>((b * in.kv_heads + h) * in.seq));  // this head's slice
      for (int64_t t = 0; t < in.seq; ++t) out[t] = uniform(static_cast<uint32_t>(rng()));
    } else {
      thread_local std::mt19937 rng{std::random_device{}()};
      for (int64_t t = 0; t < in.seq; ++t) out[t] = uniform(static_cast<uint32_t>(rng()));
    }
  }
};
static_assert(Scorer<Random>);

}  // namespace kvf::scorers
