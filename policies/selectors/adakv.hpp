#pragma once
// adakv (kvpress AdaKVPress): one budget per batch row shared by its heads, spent where the scores are highest.
//   n = int(S * (1 - cr)) as ScorerPress; n_safe = int(n * alpha_safeguard), at least 1 when alpha > 0 and n > 0
//   (kvpress 0.5.5). Each (b, h) first protects its n_safe best positions (score set to FLT_MAX, in place, as
//   kvpress does), then the H * (S - n) lowest scores of the row, over all heads, are pruned and the rest kept.
// So every row keeps H * n entries, every head at least n_safe (alpha = 1: exactly topk; alpha = 0: pure global).
// Head-wise: counts differ per head (ragged KeptSets). kvpress keeps the full cache and hides the pruned entries
// with fake keys; kvforge drops them (same attention output, real memory saving).
// Order: pruning takes NaN first (kvpress prunes with topk(-s), and torch ranks NaN above every number), then the
// lowest score, then, among equal scores, the higher flat index h * S + t (kvpress leaves ties to the backend).
// Kept positions are ascending per head.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <vector>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/params.hpp"
#include "policies/selection.hpp"

namespace kvf::selectors {

struct AdaKV {
  static constexpr std::string_view name = "adakv";
  static constexpr bool head_wise = true;
  struct Params {
    double alpha_safeguard = 0.20;
    static constexpr auto fields = std::make_tuple(field("alpha_safeguard", &Params::alpha_safeguard, 0.0, 1.0));
  };

  // kvpress 0.5.5: n_safe = int(n_kept * alpha); if alpha > 0: max(1, n_safe) when n_kept > 0, else 0.
  static int64_t n_safe(int64_t n, double alpha) {
    int64_t s = static_cast<int64_t>(static_cast<double>(n) * alpha);
    if (alpha > 0) s = n > 0 ? std::max<int64_t>(1, s) : 0;
    return s;
  }

  static void select(const Params& p, const SelectContext& c, float* scores, KeptSets& out) {
    const int64_t B = c.batch, H = c.heads, S = c.seq;
    const int64_t n = std::clamp<int64_t>(n_kept(S, c.compression_ratio), 0, S);
    const int64_t safe = std::min(n_safe(n, p.alpha_safeguard), S);
    std::vector<int32_t> idx, top(static_cast<size_t>(safe));
    // Safeguard: the n_safe best of every head can no longer lose (NaN counts as best, like torch.topk).
    if (safe > 0)
      for (int64_t i = 0; i < B * H; ++i) {
        float* s = scores + i * S;
        top_n_positions(s, S, safe, idx, top.data());
        for (int32_t t : top) s[t] = FLT_MAX;
      }
    // Global selection per batch row: keep the H * n entries that survive the bottom-(H * (S - n)) prune.
    const int64_t keep = H * n;
    std::vector<uint8_t> kept_flag(static_cast<size_t>(B * H * S), 0);
    std::vector<int64_t> flat(static_cast<size_t>(H * S));
    for (int64_t b = 0; b < B; ++b) {
      const float* s = scores + b * H * S;
      std::iota(flat.begin(), flat.end(), int64_t{0});
      // a is kept before b: numbers before NaN, larger first, lower flat index on ties.
      auto kept_before = [s](int64_t a, int64_t b2) {
        const bool na = std::isnan(s[a]), nb = std::isnan(s[b2]);
        if (na != nb) return nb;
        if (!na && s[a] != s[b2]) return s[a] > s[b2];
        return a < b2;
      };
      if (keep < H * S) std::nth_element(flat.begin(), flat.begin() + keep, flat.end(), kept_before);
      for (int64_t j = 0; j < keep; ++j) kept_flag[static_cast<size_t>(b * H * S + flat[j])] = 1;
    }
    out.reset(B, H);
    out.positions.reserve(static_cast<size_t>(B * keep));
    for (int64_t i = 0; i < B * H; ++i) {
      for (int64_t t = 0; t < S; ++t)
        if (kept_flag[static_cast<size_t>(i * S + t)]) out.positions.push_back(static_cast<int32_t>(t));
      out.offsets[i + 1] = static_cast<int64_t>(out.positions.size());
    }
  }
};
static_assert(Selector<AdaKV>);

}  // namespace kvf::selectors
