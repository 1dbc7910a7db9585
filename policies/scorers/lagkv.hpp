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
#include <cstdint>
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

  // The pieces below are the whole per-partition computation, each KVF_HOST_DEVICE and free of library math, so
  // the CUDA executor (kernels/cuda/press_kernels.cu) evaluates the same floating-point operations in the same
  // order and gets the same floats (the rank inside a partition turns one ulp into a 1/lag jump).

  // Channel c's min/max over the lag rows of a reference partition (rows d apart), torch's NaN-propagating
  // min/max, rows in order (the result's sign of zero depends on it).
  KVF_HOST_DEVICE static void channel_range(const float* ref, int64_t d, int64_t lag, int64_t c, float& mn, float& mx) {
    float lo = ref[c], hi = ref[c];
    for (int64_t u = 1; u < lag; ++u) {
      const float v = ref[u * d + c];
      const bool nan = v != v;
      lo = (nan || v < lo) ? v : lo;
      hi = (nan || v > hi) ? v : hi;
    }
    mn = lo;
    mx = hi;
  }

  // exp for the partition softmax: Cody-Waite reduction to r in [-ln2/2, ln2/2], degree-7 Taylor polynomial
  // (Horner), scaling by 2^k through the exponent bits (two factors, so subnormal results are reached). Only
  // IEEE +, -, * (no FMA: -ffp-contract=off / --fmad=false), so host and device give the same float; within
  // 2 ulp of std::exp (tests/test_select_host.cpp).
  KVF_HOST_DEVICE static float softmax_exp(float x) {
    if (x != x) return x;
    if (x > 88.72283935546875f) return INFINITY;
    if (x < -103.972084045410156f) return 0.f;
    const float kf = (x * 1.44269502162933349609f + 12582912.f) - 12582912.f;  // round(x / ln2), |k| <= 150
    float r = x - kf * 0.693145751953125f;  // ln2_hi (16 significant bits): kf * ln2_hi is exact
    r = r - kf * 1.42860676533018704e-06f;  // ln2_lo
    float p = 1.f / 5040.f;
    p = p * r + 1.f / 720.f;
    p = p * r + 1.f / 120.f;
    p = p * r + 1.f / 24.f;
    p = p * r + 1.f / 6.f;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    const int k = static_cast<int>(kf), k1 = k / 2, k2 = k - k1;  // each in [-75, 75]: normal powers of two
    return p * pow2(k1) * pow2(k2);
  }
  KVF_HOST_DEVICE static float pow2(int k) {  // 2^k for -126 <= k <= 127
    const uint32_t bits = static_cast<uint32_t>(k + 127) << 23;
    return float_from_bits(bits);
  }

  // s[0..lag) <- exp(s - max s) in place (std::max's NaN rule: a NaN never becomes the max), returns their sum,
  // accumulated in order.
  KVF_HOST_DEVICE static float partition_softmax(float* s, int64_t lag) {
    float m = -INFINITY;
    for (int64_t t = 0; t < lag; ++t) m = (m < s[t]) ? s[t] : m;  // std::max(m, s[t])
    float sum = 0.f;
    for (int64_t t = 0; t < lag; ++t) sum += (s[t] = softmax_exp(s[t] - m));
    return sum;
  }

  // The rank order inside a partition: ascending, NaN last (all NaN equivalent, -0 == +0); the rank of token t is
  // its index in a stable sort by this order (ties by position).
  KVF_HOST_DEVICE static bool rank_less(float x, float y) {
    const bool nx = x != x, ny = y != y;
    return nx != ny ? ny : (!nx && x < y);
  }
  KVF_HOST_DEVICE static int64_t rank_in_partition(const float* q, int64_t lag, int64_t t) {
    int64_t r = 0;
    for (int64_t u = 0; u < lag; ++u) r += rank_less(q[u], q[t]) || (u < t && !rank_less(q[t], q[u]));
    return r;
  }

  // The short-cache score of position t (S < n_sink + 2 lag).
  KVF_HOST_DEVICE static float short_score(int64_t t, int64_t sink, int64_t S) {
    return t < sink ? 1.f : static_cast<float>(t - sink) / static_cast<float>(S - sink);
  }

  // p[i * lag + t] += 0.5 * softmax_t(spread) for the partitions i < n_part - 1 of X (rows from n_sink, d wide).
  // work: 2 d + lag floats.
  static void add_states_score(const float* X, int64_t d, int64_t lag, int64_t n_part, float* work, float* p) {
    float* mn = work;
    float* mx = work + d;
    float* s = work + 2 * d;
    for (int64_t i = 0; i + 1 < n_part; ++i) {
      const float* ref = X + (i + 1) * lag * d;
      for (int64_t c = 0; c < d; ++c) channel_range(ref, d, lag, c, mn[c], mx[c]);
      float* z = p + i * lag;
      for (int64_t t = 0; t < lag; ++t) s[t] = token_spread(X + (i * lag + t) * d, mn, mx, d);
      const float sum = partition_softmax(s, lag);
      for (int64_t t = 0; t < lag; ++t) z[t] += 0.5f * (s[t] / sum);
    }
  }

  static void score_head(const Params& p, const LayerInputs& in, int64_t b, int64_t h, Scratch& ws, float* out) {
    const int64_t S = in.seq, d = in.head_dim, lag = p.lag_size, sink = p.n_sink;
    if (S < sink + 2 * lag) {
      for (int64_t t = 0; t < S; ++t) out[t] = short_score(t, sink, S);
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
