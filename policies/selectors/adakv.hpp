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
#include "compose/parallel.hpp"
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
    // Safeguard: the n_safe best of every head can no longer lose (NaN counts as best, like torch.topk).
    if (safe > 0) {
      std::vector<TopNScratch> scratch(static_cast<size_t>(default_workers()));
      parallel_for(B * H, default_workers(), [&](int64_t i, int w) {
        float* s = scores + i * S;
        auto& sc = scratch[static_cast<size_t>(w)];
        sc.keys.resize(static_cast<size_t>(S));
        for (int64_t t = 0; t < S; ++t) sc.keys[static_cast<size_t>(t)] = score_key(s[t]);
        keep_top_keys(sc.keys.data(), S, safe, sc.work, [&](int64_t t) { s[t] = FLT_MAX; });
      });
    }
    // Global selection per batch row: keep the H * n entries that survive the bottom-(H * (S - n)) prune. In key
    // order NaN is lowest (pruned first); among equal scores the lower flat index h * S + t is kept, which is
    // what a scan of the row in flat order gives.
    const int64_t keep = H * n;
    out.reset(B, H);
    out.positions.reserve(static_cast<size_t>(B * keep));
    std::vector<uint32_t> keys(static_cast<size_t>(H * S)), work;
    for (int64_t b = 0; b < B; ++b) {
      const float* s = scores + b * H * S;
      for (int64_t j = 0; j < H * S; ++j) keys[static_cast<size_t>(j)] = score_key(s[j], /*nan_high=*/false);
      int64_t h = 0;
      keep_top_keys(keys.data(), H * S, keep, work, [&](int64_t j) {
        for (; j >= (h + 1) * S; ++h) out.offsets[b * H + h + 1] = static_cast<int64_t>(out.positions.size());
        out.positions.push_back(static_cast<int32_t>(j - h * S));
      });
      for (; h < H; ++h) out.offsets[b * H + h + 1] = static_cast<int64_t>(out.positions.size());
    }
  }
};
static_assert(Selector<AdaKV>);

}  // namespace kvf::selectors
