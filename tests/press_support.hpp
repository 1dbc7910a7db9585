#pragma once
// Helpers for the registry-driven press suites: random layer inputs that look like a real layer's, and a
// tie-aware comparison of two CompressResults.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "core/config.hpp"
#include "core/hooks.hpp"
#include "core/kv_cache.hpp"
#include "core/weights.hpp"
#include "kernels/runtime_press.hpp"

namespace kvf::test {

struct LayerShape {
  int64_t batch = 1, q_heads = 4, kv_heads = 2, seq = 48, head_dim = 16, hidden = 32;
  int64_t layer = 1, num_layers = 4;
  bool qk_norm = false, attention_bias = false, attentions = false;
  uint64_t seed = 0;
  // Adversarial inputs: Ties rounds hidden states and keys to a coarse grid (many exactly equal scores);
  // SignedZeros makes some key and value rows all +0 or -0; Inf puts +-inf into a few keys.
  enum class Adversarial { None, Ties, SignedZeros, Inf } adversarial = Adversarial::None;
};

// A layer's inputs built the way the runtime builds them: random hidden states (after input_layernorm),
// random q/k/v/o projections, keys = RoPE(k_proj(h)), values = v_proj(h), causal softmax attention weights when
// asked. Owns everything the LayerView points to.
struct RandomLayer {
  ModelConfig config;
  LayerWeights weights;
  LayerView view;
  LayerCache cache;
  explicit RandomLayer(const LayerShape& s);
  RandomLayer(const RandomLayer&) = delete;
  RandomLayer& operator=(const RandomLayer&) = delete;
};

// Two results agree tie-aware when, for every (batch, head), the kept sets differ only by swapping positions
// of equal score (in `scores`, the reference's), and the kept keys/values agree where the positions agree.
// Returns "" on agreement, else what differs (for INFO/FAIL).
std::string compare_results(const CompressResult& fused, const CompressResult& ref, int64_t seq,
                            double score_rtol = 1e-4, double score_atol = 1e-5, double kv_atol = 1e-5);

}  // namespace kvf::test
