#pragma once
// The fused CPU executor of a composed press, for one layer:
//   per (batch, kv head): prepare -> score -> (protect) -> select -> gather kept K/V in position order -> post-ops,
// threaded across heads, writing the compacted cache once. Torch-free: raw pointers in, packed buffers out.
#include <algorithm>
#include <cstring>
#include <functional>
#include <utility>
#include <tuple>
#include <vector>

#include "compose/budget.hpp"
#include "compose/kept_sets.hpp"
#include "compose/layer_inputs.hpp"
#include "compose/parallel.hpp"
#include "compose/press.hpp"
#include "policies/selection.hpp"

namespace kvf {

struct PressOutput {
  std::vector<float> scores;  // (B, H, S) the scores selection ran on (protected slots filled); empty at cr == 0
  KeptSets kept;              // per (b, h), ascending positions
  // The compacted keys/values, (kept.total(), d) each, head after head in KeptSets order. By default they live
  // in `keys`/`values`; a caller that owns the destination (the torch bridge: the cache tensors themselves) sets
  // `allocate`, which gets the row count once the selection is known and returns where to write, so the cache is
  // written exactly once.
  std::vector<float> keys, values;
  std::function<std::pair<float*, float*>(int64_t rows)> allocate;
  float* key_data = nullptr;
  float* value_data = nullptr;
  // false: selection only (scores and kept sets), for a press without post-ops whose rows a masked cache keeps
  // where they are (RuntimePress's Rows::SkipUnchanged). Ignored when a post-op rewrites rows.
  bool write_rows = true;
};

template <class P>
struct CpuExecutor;

template <class Sc, class Se, class Gr, class... Po>
struct CpuExecutor<Press<Sc, Se, Gr, Po...>> {
  using PressT = Press<Sc, Se, Gr, Po...>;

  static void run(const typename PressT::Params& p, const LayerInputs& layer, PressOutput& out) {
    LayerInputs in = layer;
    in.compression_ratio = p.compression_ratio;
    Sc::validate(p.scorer, in);
    SelectContext ctx{in.batch, in.kv_heads, in.seq, in.layer, in.num_layers, p.compression_ratio,
                      Sc::protect(p.scorer, in).last};
    out.scores.clear();
    if (p.compression_ratio == 0.0) {
      // kvpress: cr == 0 returns the cache untouched, without scoring; post-ops included (think: see
      // docs/kvpress-differences.md)
      keep_all(in, out.kept);
      if (out.write_rows || sizeof...(Po) > 0) gather(in, out);
      return;
    }
    if constexpr (kHeadByHead) {
      if (Sc::protect(p.scorer, in).kind == Protect::Kind::None && (out.write_rows || sizeof...(Po) > 0)) {
        run_head_by_head(p, in, ctx, out);
        apply_postops(p, in, out, std::index_sequence_for<Po...>{});
        return;
      }
    }
    Gr::template run<Sc, Se>(p.granularity, p.scorer, p.selector, in, ctx, out.scores, out.kept);
    if (!out.write_rows && sizeof...(Po) == 0) return;
    gather(in, out);
    apply_postops(p, in, out, std::index_sequence_for<Po...>{});
  }

  // Score, select and gather one head at a time when nothing couples the heads: a whole-sequence granularity, a
  // selector that keeps the same count of each head's own top scores, a scorer without finish_layer (tova) and,
  // checked at run time, without protected positions (their value is the max over the whole layer). Same scores,
  // same kept sets, same rows as the layer-wide passes, but a head's keys are gathered while they are still in cache
  // (the design's one pass per head; on the 2-core dev machine the gain was within its timing noise).
  static constexpr bool kHeadByHead = WholeSequenceGranularity<Gr> && PerHeadCountSelector<Se> &&
                                      !requires(const typename Sc::Params& sp, const LayerInputs& l, float* f) {
                                        Sc::finish_layer(sp, l, f);
                                      };

  static void run_head_by_head(const typename PressT::Params& p, const LayerInputs& in, const SelectContext& ctx,
                               PressOutput& out) {
    const int64_t S = in.seq, BH = in.batch * in.kv_heads;
    const int64_t n = std::clamp<int64_t>(Se::per_head_count(p.selector, ctx), 0, S);
    out.scores.resize(static_cast<size_t>(BH * S));
    out.kept.reset_uniform(in.batch, in.kv_heads, n);
    allocate_rows(in, out);
    const int workers = default_workers();
    std::vector<Scratch> ws(static_cast<size_t>(workers));
    std::vector<TopNScratch> top(static_cast<size_t>(workers));
    parallel_for(BH, workers, [&](int64_t i, int w) {
      float* scores = out.scores.data() + i * S;
      Sc::score_head(p.scorer, in, i / in.kv_heads, i % in.kv_heads, ws[static_cast<size_t>(w)], scores);
      top_n_positions(scores, S, n, top[static_cast<size_t>(w)], out.kept.positions.data() + i * n);
      gather_head(in, out, i);
    });
  }

  static void keep_all(const LayerInputs& in, KeptSets& kept) {
    kept.reset_uniform(in.batch, in.kv_heads, in.seq);
    for (int64_t i = 0; i < in.batch * in.kv_heads; ++i)
      for (int64_t t = 0; t < in.seq; ++t) kept.positions[i * in.seq + t] = static_cast<int32_t>(t);
  }

  static void allocate_rows(const LayerInputs& in, PressOutput& out) {
    const int64_t d = in.head_dim;
    if (out.allocate) {
      std::tie(out.key_data, out.value_data) = out.allocate(out.kept.total());
    } else {
      out.keys.resize(static_cast<size_t>(out.kept.total() * d));
      out.values.resize(out.keys.size());
      out.key_data = out.keys.data();
      out.value_data = out.values.data();
    }
  }

  static void gather(const LayerInputs& in, PressOutput& out) {
    allocate_rows(in, out);
    parallel_for(in.batch * in.kv_heads, default_workers(), [&](int64_t i, int) { gather_head(in, out, i); });
  }

  // Kept rows of (batch, kv head) i into their place in the output.
  static void gather_head(const LayerInputs& in, PressOutput& out, int64_t i) {
    const int64_t d = in.head_dim, b = i / in.kv_heads, h = i % in.kv_heads;
    const float* K = in.key(b, h);
    const float* V = in.value(b, h);
    const int32_t* pos = out.kept.begin(b, h);
    float* ko = out.key_data + out.kept.offsets[i] * d;
    float* vo = out.value_data + out.kept.offsets[i] * d;
    // Copy runs of consecutive positions with one memcpy each (windows, chunks, sinks are runs).
    const int64_t cnt = out.kept.count(b, h);
    for (int64_t j = 0; j < cnt;) {
      int64_t e = j + 1;
      while (e < cnt && pos[e] == pos[e - 1] + 1) ++e;
      std::memcpy(ko + j * d, K + pos[j] * d, sizeof(float) * d * (e - j));
      std::memcpy(vo + j * d, V + pos[j] * d, sizeof(float) * d * (e - j));
      j = e;
    }
  }

  template <size_t... I>
  static void apply_postops(const typename PressT::Params& p, const LayerInputs& in, PressOutput& out,
                            std::index_sequence<I...>) {
    (Po::apply(std::get<I>(p.post), in, out.kept, out.key_data, out.value_data), ...);
  }
};

}  // namespace kvf
