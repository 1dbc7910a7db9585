#pragma once
// streaming_llm (kvpress StreamingLLMPress): 1 everywhere, 0 on the n_pruned = S - int(S * (1 - cr)) slots right
// after the n_sink sinks (end clipped at S). Kept set = the sinks + the most recent n_kept - n_sink slots, the
// same for every head. Protection is implicit (the ones). The score reads the applying press's own ratio
// (LayerInputs::compression_ratio), as kvpress reads self.compression_ratio; if n_kept < n_sink the sinks tie.
// Asserts S > n_sink (kvpress's assertion).
#include <algorithm>
#include <string>

#include "compose/concepts.hpp"
#include "compose/host_device.hpp"
#include "compose/params.hpp"
#include "core/error.hpp"

namespace kvf::scorers {

struct StreamingLLM {
  static constexpr std::string_view name = "streaming_llm";
  static constexpr bool needs_attentions = false;
  static constexpr bool reads_values = false, reads_hidden_states = false;
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
  // The pruned slots [lo, hi) and the score of slot t: shared by score_head and the CUDA executor
  // (kernels/cuda/token_local.cu).
  KVF_HOST_DEVICE static void pruned_range(int64_t seq, int64_t n_sink, double cr, int64_t& lo, int64_t& hi) {
    const int64_t end = n_sink + n_pruned(seq, cr);
    lo = n_sink < seq ? n_sink : seq;
    hi = end < seq ? end : seq;
  }
  KVF_HOST_DEVICE static float slot_score(int64_t t, int64_t lo, int64_t hi) { return (t >= lo && t < hi) ? 0.f : 1.f; }
  static void score_head(const Params& p, const LayerInputs& in, int64_t, int64_t, Scratch&, float* out) {
    int64_t lo = 0, hi = 0;
    pruned_range(in.seq, p.n_sink, in.compression_ratio, lo, hi);
    for (int64_t t = 0; t < in.seq; ++t) out[t] = slot_score(t, lo, hi);
  }
};
static_assert(Scorer<StreamingLLM>);

}  // namespace kvf::scorers
