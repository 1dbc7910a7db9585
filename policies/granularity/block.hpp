#pragma once
// block (kvpress BlockPress, KeyDiff's block-iterative selection; not a real chunked prefill): every head starts
// with positions [0, n), n = int(S * (1 - cr)); then for each block [i, i + b) from i = n (b = min(block_size, S)),
// the scorer sees the current set (kept + block) and the set shrinks back to its n best. Equals one-shot topk
// for scorers whose token score does not depend on the other tokens present (knorm); differs for set-dependent
// ones (keydiff), which is the point.
// As kvpress: the scorer's hidden states are re-assembled per head, row r = concat over heads h of the h-th
// (hidden / H) slice of token cur[b, h, r] (rows mix tokens when heads keep different sets; needs hidden % H == 0);
// the kept set is carried in descending-score order (it decides that mixing; ties keep the earlier entry of the
// current set); the RoPE tables are not re-sliced. Output: ascending positions; scores[b, h, t] = the score t got
// the last time it was scored (the one-shot score for set-independent scorers).
#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/parallel.hpp"
#include "compose/params.hpp"
#include "compose/score_layer.hpp"
#include "core/error.hpp"
#include "policies/selection.hpp"

namespace kvf::granularity {

struct Block {
  static constexpr std::string_view name = "block";
  static constexpr bool needs_per_head_selector = true;
  struct Params {
    int64_t block_size = 128;
    static constexpr auto fields = std::make_tuple(field("block_size", &Params::block_size, 1, 1 << 30));
  };

  template <class Sc, class Se>
  static void run(const Params& gp, const typename Sc::Params& sp, const typename Se::Params& ep, const LayerInputs& in,
                  const SelectContext& ctx, std::vector<float>& scores, KeptSets& kept) {
    if constexpr (TokenLocalScorer<Sc>) {
      if (Sc::protect(sp, in).kind == Protect::Kind::None) return run_token_local<Sc>(gp, sp, in, ctx, scores, kept);
    }
    run_iterative<Sc, Se>(gp, sp, ep, in, ctx, scores, kept);
  }

  // A token-local scorer gives every position the same score in every round, so the layer is scored once and each
  // round only merges: the kept list (descending, ties in set order) with the block sorted stably, keeping the
  // first n. A stable merge that takes the kept side on ties is exactly the iterative partial sort's order (kept
  // entries precede the block in the set), so the kept sets are the iterative ones, ties included, in
  // O(S log bs + (S / bs) n) per head instead of re-gathering and re-scoring (S / bs) sets.
  template <class Sc>
  static void run_token_local(const Params& gp, const typename Sc::Params& sp, const LayerInputs& in,
                              const SelectContext& ctx, std::vector<float>& scores, KeptSets& kept) {
    const int64_t B = in.batch, H = in.kv_heads, S = in.seq, BH = B * H;
    const int64_t n = std::clamp<int64_t>(n_kept(S, ctx.compression_ratio), 0, S);
    const int64_t bs = gp.block_size < S ? gp.block_size : S;
    Sc::validate(sp, in);
    scores.assign(static_cast<size_t>(BH * S), std::numeric_limits<float>::quiet_NaN());
    if (n < S) score_layer<Sc>(sp, in, scores.data());  // no round runs when n == S: nothing is scored
    kept.reset(B, H);
    kept.positions.resize(static_cast<size_t>(BH * n));
    for (int64_t bh = 0; bh < BH; ++bh) kept.offsets[bh + 1] = (bh + 1) * n;
    parallel_for(BH, default_workers(), [&](int64_t bh, int) {
      const float* s = scores.data() + bh * S;
      // a before b: the larger key (NaN highest, -0 == +0); equal keys are equivalent (the stable order decides).
      auto before = [s](int32_t a, int32_t b) { return score_key(s[a]) > score_key(s[b]); };
      std::vector<int32_t> cur(static_cast<size_t>(n)), block, merged;
      std::iota(cur.begin(), cur.end(), 0);
      if (n < S) std::stable_sort(cur.begin(), cur.end(), before);
      for (int64_t i = n; i < S; i += bs) {
        const int64_t end = std::min(i + bs, S);
        block.resize(static_cast<size_t>(end - i));
        std::iota(block.begin(), block.end(), static_cast<int32_t>(i));
        std::stable_sort(block.begin(), block.end(), before);
        merged.resize(cur.size() + block.size());
        std::merge(cur.begin(), cur.end(), block.begin(), block.end(), merged.begin(), before);
        std::copy_n(merged.begin(), n, cur.begin());
      }
      std::sort(cur.begin(), cur.end());
      std::copy(cur.begin(), cur.end(), kept.positions.begin() + bh * n);
    });
  }

  // kvpress views the hidden states as (B, S, H, hidden / H) whether or not the scorer reads them (the CUDA
  // executor checks the same).
  static void check_hidden_rows(const LayerInputs& in) {
    if (in.hidden_states && (in.hidden % in.kv_heads != 0 || in.tokens != in.seq))
      throw Error("block: the hidden states must have one row per cached position and a hidden size divisible by "
                  "the kv heads (kvpress views them as (B, S, H, hidden / H)); got " + std::to_string(in.tokens) +
                  " rows for " + std::to_string(in.seq) + " positions, hidden " + std::to_string(in.hidden) + ", " +
                  std::to_string(in.kv_heads) + " kv heads");
  }

  // The general case (kvpress's loop): gather each round's set, re-assemble its hidden states, score it, keep n.
  template <class Sc, class Se>
  static void run_iterative(const Params& gp, const typename Sc::Params& sp, const typename Se::Params&,
                            const LayerInputs& in, const SelectContext& ctx, std::vector<float>& scores,
                            KeptSets& kept) {
    const int64_t B = in.batch, H = in.kv_heads, S = in.seq, d = in.head_dim, D = in.hidden, BH = B * H;
    check_hidden_rows(in);
    const int64_t n = std::clamp<int64_t>(n_kept(S, ctx.compression_ratio), 0, S);
    const int64_t bs = gp.block_size < S ? gp.block_size : S;
    const int64_t Dh = H > 0 ? D / H : 0;
    scores.assign(static_cast<size_t>(BH * S), std::numeric_limits<float>::quiet_NaN());

    std::vector<int32_t> cur_kept(static_cast<size_t>(BH * n));  // per head, descending-score order
    for (int64_t i = 0; i < BH; ++i)
      for (int64_t j = 0; j < n; ++j) cur_kept[static_cast<size_t>(i * n + j)] = static_cast<int32_t>(j);

    std::vector<int32_t> cur, order;
    std::vector<float> k_sub, v_sub, h_sub, s_sub;
    for (int64_t i = n; i < S; i += bs) {
      const int64_t end = std::min(i + bs, S), m = n + (end - i);
      cur.resize(static_cast<size_t>(BH * m));
      for (int64_t h = 0; h < BH; ++h) {
        std::copy_n(cur_kept.data() + h * n, n, cur.data() + h * m);
        for (int64_t t = i; t < end; ++t) cur[static_cast<size_t>(h * m + n + t - i)] = static_cast<int32_t>(t);
      }
      // Gathered keys/values (B, H, m, d) and re-assembled hidden states (B, m, D), each only if the scorer reads
      // it (the hidden states are the big one: m x hidden floats per round).
      constexpr bool values_read = scorer_reads_values<Sc>(), hidden_read = scorer_reads_hidden_states<Sc>();
      k_sub.resize(static_cast<size_t>(BH * m * d));
      if (values_read) v_sub.resize(k_sub.size());
      parallel_for(BH, default_workers(), [&](int64_t bh, int) {
        const float* K = in.key(bh / H, bh % H);
        const float* V = in.value(bh / H, bh % H);
        for (int64_t r = 0; r < m; ++r) {
          const int64_t t = cur[static_cast<size_t>(bh * m + r)];
          std::memcpy(k_sub.data() + (bh * m + r) * d, K + t * d, sizeof(float) * d);
          if (values_read) std::memcpy(v_sub.data() + (bh * m + r) * d, V + t * d, sizeof(float) * d);
        }
      });
      LayerInputs sub = in;
      sub.seq = sub.seq_stride = m;
      sub.seq_offset = 0;
      sub.keys = k_sub.data();
      sub.values = values_read ? v_sub.data() : nullptr;
      sub.attentions = nullptr;
      if (in.hidden_states) {
        sub.hidden_states = nullptr;
        if (hidden_read) {
          h_sub.resize(static_cast<size_t>(B * m * D));
          parallel_for(B * m, default_workers(), [&](int64_t br, int) {
            const int64_t b = br / m, r = br % m;
            for (int64_t h = 0; h < H; ++h) {
              const int64_t t = cur[static_cast<size_t>((b * H + h) * m + r)];
              std::memcpy(h_sub.data() + (b * m + r) * D + h * Dh, in.hidden_row(b, t) + h * Dh, sizeof(float) * Dh);
            }
          });
          sub.hidden_states = h_sub.data();
        }
        sub.queries = nullptr;  // rows of a re-assembled array: precomputed queries and statistics do not apply
        sub.query_mean = sub.query_cov = nullptr;
        sub.tokens = sub.token_stride = m;
        sub.token_offset = 0;
      }
      Sc::validate(sp, sub);
      s_sub.resize(static_cast<size_t>(BH * m));
      score_layer<Sc>(sp, sub, s_sub.data());
      // Keep the n best of the current set, in descending-score order (ties: earlier entry of the set).
      order.resize(static_cast<size_t>(m));
      for (int64_t bh = 0; bh < BH; ++bh) {
        const float* s = s_sub.data() + bh * m;
        const int32_t* c = cur.data() + bh * m;
        for (int64_t r = 0; r < m; ++r) scores[static_cast<size_t>(bh * S + c[r])] = s[r];
        std::iota(order.begin(), order.end(), 0);
        auto before = [s](int32_t a, int32_t b2) { return score_before(s[a], a, s[b2], b2); };
        std::partial_sort(order.begin(), order.begin() + n, order.end(), before);
        for (int64_t j = 0; j < n; ++j) cur_kept[static_cast<size_t>(bh * n + j)] = c[order[static_cast<size_t>(j)]];
      }
    }
    kept.reset(B, H);
    kept.positions = std::move(cur_kept);
    for (int64_t bh = 0; bh < BH; ++bh) {
      kept.offsets[bh + 1] = (bh + 1) * n;
      std::sort(kept.positions.begin() + bh * n, kept.positions.begin() + (bh + 1) * n);
    }
  }
};
static_assert(Granularity<Block>);

}  // namespace kvf::granularity
