#pragma once
// lagkv (kvpress LagKVPress): each partition of lag_size tokens is judged against the min/max range of the NEXT
// partition, on keys and values.
//   n_part = (S - n_sink) // lag, end = n_sink + n_part * lag, tail = lag + S - end (always kept)
//   for X in (K, V), partition i < n_part - 1 with reference partition i + 1 (per channel c: mn_c, mx_c):
//     p_X[i, t] = softmax over the lag tokens t of std_c((X_t[c] - mn_c) / (mx_c - mn_c))   (unbiased std)
//   q = (p_K + p_V) / 2; unless cross_scoring: q = rank of q inside its partition (ascending, 0 .. lag-1) / lag
//   s = [1 x n_sink, q, 1 x tail]
// Short caches (S < n_sink + 2 lag, kvpress's "no compression" branch, which still prunes):
//   s = 1 on the sinks, s[n_sink + i] = i / (S - n_sink) after them (the most recent tokens win).
// Protection is implicit (ones). Rank ties (equal q, NaN from a constant reference channel, ranked highest as
// torch's argsort does) are ranked by position here; kvpress's argsort leaves them unspecified.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "compose/concepts.hpp"
#include "compose/host_device.hpp"
#include "compose/params.hpp"

namespace kvf::scorers {

struct LagKV {
  static constexpr std::string_view name = "lagkv";
  static constexpr bool needs_attentions = false;
  static constexpr bool reads_hidden_states = false;
  struct Params {
    int64_t n_sink = 4;
    int64_t lag_size = 128;
    bool cross_scoring = false;
    static constexpr auto fields = std::make_tuple(field("n_sink", &Params::n_sink, 0, 1 << 30),
                                                   field("lag_size", &Params::lag_size, 1, 1 << 30),
                                                   field("cross_scoring", &Params::cross_scoring));
  };

  static void validate(const Params&, const LayerInputs&) {}
  static Protect protect(const Params&, const LayerInputs&) { return {}; }

  // Unbiased std over d channels of (x - mn) / (mx - mn).
  KVF_HOST_DEVICE static float token_spread(const float* x, const float* mn, const float* mx, int64_t d) {
    float mean = 0.f;
    for (int64_t c = 0; c < d; ++c) mean += (x[c] - mn[c]) / (mx[c] - mn[c]);
    mean /= static_cast<float>(d);
    float ss = 0.f;
    for (int64_t c = 0; c < d; ++c) {
      const float z = (x[c] - mn[c]) / (mx[c] - mn[c]) - mean;
      ss += z * z;
    }
    return sqrtf(ss / static_cast<float>(d - 1));
  }

  // p[i * lag + t] += 0.5 * softmax_t(spread) for the partitions i < n_part - 1 of X (rows from n_sink, d wide).
  // work: 2 d + lag floats.
  static void add_states_score(const float* X, int64_t d, int64_t lag, int64_t n_part, float* work, float* p) {
    float* mn = work;
    float* mx = work + d;
    float* s = work + 2 * d;
    for (int64_t i = 0; i + 1 < n_part; ++i) {
      const float* ref = X + (i + 1) * lag * d;
      for (int64_t c = 0; c < d; ++c) mn[c] = mx[c] = ref[c];
      for (int64_t u = 1; u < lag; ++u)
        for (int64_t c = 0; c < d; ++c) {  // torch's min/max propagate NaN
          const float v = ref[u * d + c];
          mn[c] = (std::isnan(v) || v < mn[c]) ? v : mn[c];
          mx[c] = (std::isnan(v) || v > mx[c]) ? v : mx[c];
        }
      float* z = p + i * lag;
      float m = -INFINITY;
      for (int64_t t = 0; t < lag; ++t) m = std::max(m, s[t] = token_spread(X + (i * lag + t) * d, mn, mx, d));
      float sum = 0.f;
      for (int64_t t = 0; t < lag; ++t) sum += (s[t] = std::exp(s[t] - m));
      for (int64_t t = 0; t < lag; ++t) z[t] += 0.5f * (s[t] / sum);
    }
  }

  static void score_head(const Params& p, const LayerInputs& in, int64_t b, int64_t h, Scratch& ws, float* out) {
    const int64_t S = in.seq, d = in.head_dim, lag = p.lag_size, sink = p.n_sink;
    if (S < sink + 2 * lag) {
      for (int64_t t = 0; t < S; ++t)
        out[t] = t < sink ? 1.f : static_cast<float>(t - sink) / static_cast<float>(S - sink);
      return;
    }
    const int64_t n_part = (S - sink) / lag, end = sink + n_part * lag, scored = (n_part - 1) * lag;
    ws.a.assign(static_cast<size_t>(scored), 0.f);
    ws.b.resize(static_cast<size_t>(2 * d + lag));
    float* q = ws.a.data();
    add_states_score(in.key(b, h) + sink * d, d, lag, n_part, ws.b.data(), q);
    add_states_score(in.value(b, h) + sink * d, d, lag, n_part, ws.b.data(), q);
    for (int64_t t = 0; t < sink; ++t) out[t] = 1.f;
    for (int64_t t = end - lag; t < S; ++t) out[t] = 1.f;
    if (p.cross_scoring) {
      std::copy(q, q + scored, out + sink);
      return;
    }
    std::vector<int32_t> order(static_cast<size_t>(lag));
    for (int64_t i = 0; i + 1 < n_part; ++i) {
      const float* qi = q + i * lag;
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [qi](int32_t x, int32_t y) {  // ascending, NaN last
        const bool nx = std::isnan(qi[x]), ny = std::isnan(qi[y]);
        return nx != ny ? ny : (!nx && qi[x] < qi[y]);
      });
      for (int64_t r = 0; r < lag; ++r)
        out[sink + i * lag + order[r]] = static_cast<float>(r) / static_cast<float>(lag);
    }
  }
};
static_assert(Scorer<LagKV>);

}  // namespace kvf::scorers
