#pragma once
// streaming_llm (kvpress StreamingLLMPress): 1 everywhere, 0 on the n_pruned = S - int(S * (1 - cr)) slots right
// after the n_sink sinks (end clipped at S). Kept set = the sinks + the most recent n_kept - n_sink slots, the
// same for every head. Protection is implicit (the ones). The score reads the applying press's own ratio
// (LayerInputs::compression_ratio), as kvpress reads self.compression_ratio; if n_kept < n_sink the sinks tie.
// Asserts S > n_sink (kvpress's assertion).
#include <algorithm>
#include <string>

#include "compose/concepts.hpp"
#include "compose/params.hpp"
#include "core/error.hpp"

namespace kvf::scorers {

struct StreamingLLM {
  static constexpr std::string_view name = "streaming_llm";
  static constexpr bool needs_attentions = false;
  struct Params {
    int64_t n_sink = 4;
    static constexpr auto fields = std::make_tuple(field("n_sink", &Params::n_sink, 0, 1 << 30));
  };

  static void validate(const Params& p, const LayerInputs& in) {
    if (in.seq <= p.n_sink)
      throw Error("streaming_llm: the cache (" + std::to_string(in.seq) + " tokens) must be longer than n_sink=" +
                  std::to_string(p.n_sink));
  }
  static Protect protect(const Params&, const LayerInputs&) { return {}; }

  // kvpress: n_pruned = k_len - int(k_len * (1 - compression_ratio)) (Python doubles).
  KVF_HOST_DEVICE static int64_t n_pruned(int64_t seq, double cr) {
    return seq - static_cast<int64_t>(static_cast<double>(seq) * (1.0 - cr));
  }
  static void score_head(const Params& p, const LayerInputs& in, int64_t, int64_t, Scratch&, float* out) {
    const int64_t S = in.seq, lo = std::min(p.n_sink, S), hi = std::min(p.n_sink + n_pruned(S, in.compression_ratio), S);
    for (int64_t t = 0; t < S; ++t) out[t] = (t >= lo && t < hi) ? 0.f : 1.f;
  }
};
static_assert(Scorer<StreamingLLM>);

}  // namespace kvf::scorers
