#pragma once
// score_layer: run a Scorer over every (batch, kv head) of a layer view, threaded across heads, then write the
// protected positions (kvpress: max over the WHOLE score tensor of the layer + 1, computed in double, stored as
// float). Used by the granularities.
#include <cmath>
#include <limits>
#include <vector>

#include "compose/concepts.hpp"
#include "compose/parallel.hpp"

namespace kvf {

inline void apply_protect(const Protect& pr, const LayerInputs& in, float* scores) {
  if (pr.kind == Protect::Kind::None) return;
  const int64_t S = in.seq, first = std::min(pr.first, S), last = std::min(pr.last, S - first);
  float mx = -std::numeric_limits<float>::infinity();
  bool any = false, nan = false;
  for (int64_t i = 0; i < in.batch * in.kv_heads; ++i)
    for (int64_t t = first; t < S - last; ++t) {
      const float v = scores[i * S + t];
      nan |= std::isnan(v);
      mx = any ? std::max(mx, v) : v;
      any = true;
    }
  // torch.max propagates NaN; an all-protected head has nothing to beat, so any value works (0).
  const float value = nan ? std::numeric_limits<float>::quiet_NaN()
                          : any ? static_cast<float>(static_cast<double>(mx) + 1.0) : 0.f;
  for (int64_t i = 0; i < in.batch * in.kv_heads; ++i) {
    for (int64_t t = 0; t < first; ++t) scores[i * S + t] = value;
    for (int64_t t = S - last; t < S; ++t) scores[i * S + t] = value;
  }
}

template <class Sc>
void score_layer(const typename Sc::Params& p, const LayerInputs& in, float* scores) {
  std::vector<Scratch> ws(static_cast<size_t>(default_workers()));
  parallel_for(in.batch * in.kv_heads, default_workers(), [&](int64_t i, int w) {
    Sc::score_head(p, in, i / in.kv_heads, i % in.kv_heads, ws[static_cast<size_t>(w)], scores + i * in.seq);
  });
  if constexpr (requires { Sc::finish_layer(p, in, scores); }) Sc::finish_layer(p, in, scores);
  apply_protect(Sc::protect(p, in), in, scores);
}

}  // namespace kvf
