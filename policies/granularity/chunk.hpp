#pragma once
// chunk (kvpress ChunkPress, FINCH-style): the cache is cut into chunks of chunk_length positions (the last one
// may be shorter); each chunk is scored on its own (keys, values and hidden states of the chunk only, protection
// max + 1 over the chunk's scores) and keeps max(1, int(len * (1 - cr))) positions per head. Every head keeps
// the same count, sum over chunks, which can differ from int(S * (1 - cr)).
// As in kvpress the RoPE tables are not re-sliced: a scorer that rebuilds window queries rotates them with the
// positions of the whole sequence's last rows. Output: ascending positions; scores = the chunks' scores side by side.
#include <algorithm>
#include <vector>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/params.hpp"
#include "compose/score_layer.hpp"
#include "policies/selection.hpp"

namespace kvf::granularity {

struct Chunk {
  static constexpr std::string_view name = "chunk";
  static constexpr bool needs_per_head_selector = true;
  struct Params {
    int64_t chunk_length = 1024;
    static constexpr auto fields = std::make_tuple(field("chunk_length", &Params::chunk_length, 1, 1 << 30));
  };

  static int64_t chunk_kept(int64_t len, double cr) { return std::clamp<int64_t>(n_kept(len, cr), 1, len); }

  template <class Sc, class Se>
  static void run(const Params& gp, const typename Sc::Params& sp, const typename Se::Params&, const LayerInputs& in,
                  const SelectContext& ctx, std::vector<float>& scores, KeptSets& kept) {
    const int64_t S = in.seq, BH = in.batch * in.kv_heads, C = gp.chunk_length;
    scores.resize(static_cast<size_t>(BH * S));
    int64_t total = 0;  // kept per head
    for (int64_t i = 0; i < S; i += C) total += chunk_kept(std::min(C, S - i), ctx.compression_ratio);
    kept.reset_uniform(in.batch, in.kv_heads, total);

    std::vector<float> cs;
    std::vector<int32_t> top;
    TopNScratch idx;
    int64_t done = 0;  // kept per head so far
    for (int64_t i = 0; i < S; i += C) {
      const int64_t len = std::min(C, S - i), n = chunk_kept(len, ctx.compression_ratio);
      const LayerInputs sub = in.slice(i, len);
      Sc::validate(sp, sub);
      cs.resize(static_cast<size_t>(BH * len));
      score_layer<Sc>(sp, sub, cs.data());
      top.resize(static_cast<size_t>(n));
      for (int64_t h = 0; h < BH; ++h) {
        std::copy_n(cs.data() + h * len, len, scores.data() + h * S + i);
        top_n_positions(cs.data() + h * len, len, n, idx, top.data());
        int32_t* out = kept.positions.data() + h * total + done;
        for (int64_t j = 0; j < n; ++j) out[j] = static_cast<int32_t>(i) + top[j];
      }
      done += n;
    }
  }
};
static_assert(Granularity<Chunk>);

}  // namespace kvf::granularity
