// Host-only checks of what the CUDA selection shares with the CPU one (no GPU needed): the KVF_HOST_DEVICE
// score_key against the CPU's previous definition, the host model of the GPU's radix select against
// std::nth_element, and top_n_positions against a brute-force sort in kvpress's order.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cuda/kept_index.hpp"
#include "kernels/cuda/radix_select.hpp"
#include "policies/selection.hpp"

using namespace kvf;

namespace {

// policies/selection.hpp's score_key before it moved to policies/score_key.hpp (verbatim, renamed).
uint32_t legacy_score_key(float s, bool nan_high = true) {
  if (std::isnan(s)) return nan_high ? 0xFFFFFFFFu : 0u;
  if (s == 0.f) s = 0.f;
  uint32_t u;
  std::memcpy(&u, &s, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Adversarial score sets: all equal, +-0, +-inf, NaN (several payloads), few distinct values, denormals.
std::vector<float> adversarial(int kind, int64_t S, std::mt19937& rng) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float pool[] = {0.f, -0.f, 1.f, -1.f, inf, -inf, nan, -nan, from_bits(0x7FC00123u), 1e-40f, -1e-40f,
                        std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest()};
  std::vector<float> s(static_cast<size_t>(S));
  std::uniform_int_distribution<int> pick(0, static_cast<int>(std::size(pool)) - 1), two(0, 1);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (auto& x : s) {
    switch (kind) {
      case 0: x = 0.5f; break;                             // all equal
      case 1: x = two(rng) ? 0.f : -0.f; break;            // +-0 only: one key
      case 2: x = pool[pick(rng)]; break;                  // specials
      case 3: x = static_cast<float>(pick(rng) % 3); break;  // few distinct values
      default: x = normal(rng); break;                     // distinct
    }
  }
  return s;
}

}  // namespace

TEST_CASE("select: score_key matches the CPU's previous definition on every class of float", "[select]") {
  // Every 251st bit pattern (all classes: ±0, denormals, normals, ±inf, NaN payloads) plus the edges.
  std::vector<uint32_t> bits = {0u, 0x80000000u, 1u, 0x80000001u, 0x007FFFFFu, 0x7F7FFFFFu, 0x7F800000u,
                                0xFF800000u, 0x7F800001u, 0xFFFFFFFFu, 0x7FC00000u, 0xFFC00000u};
  for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 251) bits.push_back(static_cast<uint32_t>(u));
  int64_t mismatches = 0;
  for (const uint32_t u : bits)
    for (const bool nan_high : {true, false})
      mismatches += score_key(from_bits(u), nan_high) != legacy_score_key(from_bits(u), nan_high);
  CHECK(mismatches == 0);
  CHECK(score_key(-0.f) == score_key(0.f));
  CHECK(score_key(std::numeric_limits<float>::quiet_NaN()) == 0xFFFFFFFFu);
  CHECK(score_key(-std::numeric_limits<float>::quiet_NaN(), false) == 0u);
  CHECK(score_key(std::numeric_limits<float>::infinity()) > score_key(std::numeric_limits<float>::max()));
  CHECK(score_key(-std::numeric_limits<float>::infinity()) < score_key(std::numeric_limits<float>::lowest()));
  CHECK(score_key(-1e-40f) < score_key(0.f));
  CHECK(score_key(1e-40f) > score_key(0.f));
  // Real keys never use 0 (the GPU pads partial tiles with it).
  CHECK(score_key(-std::numeric_limits<float>::infinity()) == 0x007FFFFFu);
}

TEST_CASE("select: the GPU's radix select (host model) finds nth_element's threshold", "[select]") {
  std::mt19937 rng(7);
  for (const int64_t S : {1, 2, 7, 64, 1000, 4097, 40000})
    for (int kind = 0; kind < 5; ++kind) {
      const auto s = adversarial(kind, S, rng);
      std::vector<uint32_t> keys(s.size());
      for (size_t i = 0; i < s.size(); ++i) keys[i] = score_key(s[i]);
      for (const int64_t n : {int64_t{1}, S / 4 + 1, S / 2 + 1, S - S / 10, S}) {
        if (n < 1 || n > S) continue;
        auto sorted = keys;
        std::nth_element(sorted.begin(), sorted.begin() + (S - n), sorted.end());
        const uint32_t T = sorted[static_cast<size_t>(S - n)];
        const auto above = std::count_if(keys.begin(), keys.end(), [&](uint32_t k) { return k > T; });
        const auto r = cuda::radix_threshold_host(keys.data(), S, n);
        INFO("S=" << S << " kind=" << kind << " n=" << n);
        CHECK(r.key == T);
        CHECK(r.ties == static_cast<uint32_t>(n - above));
      }
    }
}

TEST_CASE("select: top_n_positions keeps kvpress's top-n, ties to the lowest positions, ascending", "[select]") {
  std::mt19937 rng(11);
  TopNScratch scratch;
  for (const int64_t S : {1, 7, 64, 1000})
    for (int kind = 0; kind < 5; ++kind) {
      const auto s = adversarial(kind, S, rng);
      for (const int64_t n : {int64_t{0}, int64_t{1}, S / 2, S - 1, S}) {
        if (n < 0 || n > S) continue;
        std::vector<int32_t> order(static_cast<size_t>(S));
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return score_before(s[a], a, s[b], b); });
        std::vector<int32_t> expect(order.begin(), order.begin() + n);
        std::sort(expect.begin(), expect.end());
        std::vector<int32_t> got(static_cast<size_t>(n));
        top_n_positions(s.data(), S, n, scratch, got.data());
        INFO("S=" << S << " kind=" << kind << " n=" << n);
        CHECK(got == expect);
      }
    }
}

TEST_CASE("select: NaN-low keys (AdaKV's global prune) keep the best by score, NaN last, ties to the lower index",
          "[select]") {
  // The GPU's adakv runs select_topn on (B, H*S) rows with nan_high = false; this is the order it must implement:
  // the radix model finds nth_element's threshold on those keys, and keep_top_keys (what AdaKV::select runs) keeps
  // exactly a brute-force sort's n best.
  std::mt19937 rng(13);
  std::vector<uint32_t> work;
  for (const int64_t S : {1, 7, 64, 1000, 4097})
    for (int kind = 0; kind < 5; ++kind) {
      const auto s = adversarial(kind, S, rng);
      std::vector<uint32_t> keys(s.size());
      for (size_t i = 0; i < s.size(); ++i) keys[i] = score_key(s[i], /*nan_high=*/false);
      for (const int64_t n : {int64_t{1}, S / 3 + 1, S / 2 + 1, S - S / 10, S}) {
        if (n < 1 || n > S) continue;
        INFO("S=" << S << " kind=" << kind << " n=" << n);
        auto sorted = keys;
        std::nth_element(sorted.begin(), sorted.begin() + (S - n), sorted.end());
        const uint32_t T = sorted[static_cast<size_t>(S - n)];
        const auto r = cuda::radix_threshold_host(keys.data(), S, n);
        CHECK(r.key == T);
        CHECK(r.ties == static_cast<uint32_t>(n - std::count_if(keys.begin(), keys.end(), [&](uint32_t k) { return k > T; })));
        std::vector<int32_t> order(static_cast<size_t>(S));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
          const bool na = std::isnan(s[a]), nb = std::isnan(s[b]);
          if (na != nb) return nb;  // NaN last
          return !na && s[a] > s[b];
        });
        std::vector<int32_t> expect(order.begin(), order.begin() + n), got;
        std::sort(expect.begin(), expect.end());
        keep_top_keys(keys.data(), S, n, work, [&](int64_t t) { got.push_back(static_cast<int32_t>(t)); });
        CHECK(got == expect);
      }
    }
}

TEST_CASE("select: a packed kept row's head (kept_head_of_row) on ragged offsets with empty heads", "[select]") {
  std::mt19937 rng(17);
  for (const int64_t heads : {1, 2, 5, 64, 257})
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<int64_t> offsets(static_cast<size_t>(heads + 1), 0);
      std::uniform_int_distribution<int> count(0, 4);
      for (int64_t i = 0; i < heads; ++i)  // trial 0: every head empty but the last
        offsets[i + 1] = offsets[i] + (trial == 0 ? (i == heads - 1 ? 3 : 0) : count(rng));
      int64_t h = 0;
      for (int64_t r = 0; r < offsets.back(); ++r) {
        while (offsets[h + 1] <= r) ++h;  // linear scan: the head whose range holds r
        INFO("heads=" << heads << " trial=" << trial << " r=" << r);
        CHECK(cuda::kept_head_of_row(offsets.data(), heads, r) == h);
      }
    }
}

// ---- host parts of the wrapper executors (kernels/cuda/cuda_granularity_executors.hpp) and of lagkv ----------

#include "kernels/cuda/chunk_layout.hpp"
#include "policies/granularity/chunk.hpp"
#include "policies/granularity/chunkkv.hpp"
#include "policies/scorers/lagkv.hpp"

namespace {

// lagkv.hpp's add_states_score / score_head before the KVF_HOST_DEVICE split (verbatim but for the exp, which is
// a parameter: the split replaced std::exp by LagKV::softmax_exp, the one exp host and device share).
void legacy_add_states_score(const float* X, int64_t d, int64_t lag, int64_t n_part, float* work, float* p,
                             float (*expf_)(float)) {
  float* mn = work;
  float* mx = work + d;
  float* s = work + 2 * d;
  for (int64_t i = 0; i + 1 < n_part; ++i) {
    const float* ref = X + (i + 1) * lag * d;
    for (int64_t c = 0; c < d; ++c) mn[c] = mx[c] = ref[c];
    for (int64_t u = 1; u < lag; ++u)
      for (int64_t c = 0; c < d; ++c) {
        const float v = ref[u * d + c];
        mn[c] = (std::isnan(v) || v < mn[c]) ? v : mn[c];
        mx[c] = (std::isnan(v) || v > mx[c]) ? v : mx[c];
      }
    float* z = p + i * lag;
    float m = -INFINITY;
    for (int64_t t = 0; t < lag; ++t)
      m = std::max(m, s[t] = scorers::LagKV::token_spread(X + (i * lag + t) * d, mn, mx, d));
    float sum = 0.f;
    for (int64_t t = 0; t < lag; ++t) sum += (s[t] = expf_(s[t] - m));
    for (int64_t t = 0; t < lag; ++t) z[t] += 0.5f * (s[t] / sum);
  }
}
void legacy_lagkv_head(const scorers::LagKV::Params& p, const float* K, const float* V, int64_t S, int64_t d,
                       float (*expf_)(float), float* out) {
  const int64_t lag = p.lag_size, sink = p.n_sink;
  if (S < sink + 2 * lag) {
    for (int64_t t = 0; t < S; ++t)
      out[t] = t < sink ? 1.f : static_cast<float>(t - sink) / static_cast<float>(S - sink);
    return;
  }
  const int64_t n_part = (S - sink) / lag, end = sink + n_part * lag, scored = (n_part - 1) * lag;
  std::vector<float> q(static_cast<size_t>(scored), 0.f), work(static_cast<size_t>(2 * d + lag));
  legacy_add_states_score(K + sink * d, d, lag, n_part, work.data(), q.data(), expf_);
  legacy_add_states_score(V + sink * d, d, lag, n_part, work.data(), q.data(), expf_);
  for (int64_t t = 0; t < sink; ++t) out[t] = 1.f;
  for (int64_t t = end - lag; t < S; ++t) out[t] = 1.f;
  if (p.cross_scoring) {
    std::copy(q.begin(), q.end(), out + sink);
    return;
  }
  std::vector<int32_t> order(static_cast<size_t>(lag));
  for (int64_t i = 0; i + 1 < n_part; ++i) {
    const float* qi = q.data() + i * lag;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [qi](int32_t x, int32_t y) {
      const bool nx = std::isnan(qi[x]), ny = std::isnan(qi[y]);
      return nx != ny ? ny : (!nx && qi[x] < qi[y]);
    });
    for (int64_t r = 0; r < lag; ++r) out[sink + i * lag + order[r]] = static_cast<float>(r) / static_cast<float>(lag);
  }
}
float portable_exp(float x) { return scorers::LagKV::softmax_exp(x); }

int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = static_cast<int32_t>(0x80000000u - static_cast<uint32_t>(ia));
  if (ib < 0) ib = static_cast<int32_t>(0x80000000u - static_cast<uint32_t>(ib));
  return std::abs(static_cast<int64_t>(ia) - static_cast<int64_t>(ib));
}

}  // namespace

TEST_CASE("wrappers: chunk / chunkkv budget layouts equal the CPU granularities' arithmetic", "[select]") {
  for (const int64_t S : {1, 2, 7, 19, 20, 21, 64, 1000, 1023, 1024, 1025, 4097, 40000, 131072})
    for (const int64_t C : {1, 3, 5, 16, 20, 1024, 4096, 1 << 30})
      for (const double cr : {0.0, 0.1, 0.25, 0.5, 0.8, 0.9, 0.99}) {
        INFO("S=" << S << " C=" << C << " cr=" << cr);
        // granularity::Chunk::run's per-head total, chunk by chunk.
        int64_t total = 0, chunks = 0;
        for (int64_t i = 0; i < S; i += C, ++chunks) total += granularity::Chunk::chunk_kept(std::min(C, S - i), cr);
        const cuda::ChunkLayout l = cuda::chunk_layout(S, C, cr);
        CHECK(l.total == total);
        CHECK(l.n_full + (l.rem > 0) == chunks);
        if (l.n_full > 0) CHECK(l.per_full == granularity::Chunk::chunk_kept(C, cr));
        if (l.rem > 0) CHECK(l.per_rem == granularity::Chunk::chunk_kept(l.rem, cr));
        // granularity::ChunkKV::run's chunk count and kept chunks.
        const cuda::ChunkKVLayout k = cuda::chunkkv_layout(S, C, cr);
        const int64_t n_full = S / C, n_chunks = n_full + (S % C > 0 ? 1 : 0);
        CHECK(k.n_full == n_full);
        CHECK(k.n_chunks == n_chunks);
        CHECK(k.n == std::min(granularity::ChunkKV::chunks_kept(n_chunks, cr), n_chunks));
      }
}

TEST_CASE("wrappers: chunk_order_key sorts chunk means in ChunkKV's order (NaN first, larger, earlier)", "[select]") {
  std::mt19937 rng(5);
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const double pool[] = {0.0, -0.0, 1.0, -1.0, inf, -inf, nan, -nan, 1e-310, -1e-310, 0.5, 0.5000000000000001,
                         std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest()};
  std::uniform_int_distribution<int> pick(0, static_cast<int>(std::size(pool)) - 1);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (int kind = 0; kind < 4; ++kind)
    for (const int n : {1, 2, 17, 300}) {
      std::vector<double> cs(static_cast<size_t>(n));
      for (auto& x : cs) x = kind == 0 ? pool[pick(rng)] : kind == 1 ? std::round(normal(rng)) : kind == 2 ? 0.25 : normal(rng);
      // ChunkKV::run's comparator (total: ties by chunk index).
      std::vector<int32_t> want(static_cast<size_t>(n));
      std::iota(want.begin(), want.end(), 0);
      std::sort(want.begin(), want.end(), [&](int32_t a, int32_t b) {
        const bool na = std::isnan(cs[a]), nb = std::isnan(cs[b]);
        if (na != nb) return na;
        if (!na && cs[a] != cs[b]) return cs[a] > cs[b];
        return a < b;
      });
      std::vector<int32_t> got(want.size());
      std::iota(got.begin(), got.end(), 0);
      std::stable_sort(got.begin(), got.end(), [&](int32_t a, int32_t b) {
        return cuda::chunk_order_key(cs[a]) < cuda::chunk_order_key(cs[b]);
      });
      INFO("kind=" << kind << " n=" << n);
      CHECK(got == want);
    }
}

TEST_CASE("lagkv: the KVF_HOST_DEVICE split computes the previous score_head (with the shared exp)", "[select]") {
  // Same floats as the verbatim previous algorithm once its std::exp is the shared softmax_exp: the refactor
  // changed nothing else. Random, +-0, constant-channel (NaN spreads) and NaN/inf inputs, both cross_scoring modes.
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int kind = 0; kind < 4; ++kind)
    for (const int64_t S : {19, 20, 37, 300})
      for (const bool cross : {false, true}) {
        const int64_t d = 8;
        const scorers::LagKV::Params p{.n_sink = 4, .lag_size = 8, .cross_scoring = cross};
        std::vector<float> K(static_cast<size_t>(S * d)), V(K.size());
        for (size_t i = 0; i < K.size(); ++i) {
          K[i] = normal(rng), V[i] = normal(rng);
          if (kind == 1 && i / d % 3 == 0) K[i] = (i % 2) ? 0.f : -0.f, V[i] = (i % 2) ? -0.f : 0.f;
          if (kind == 2 && i % d == 3) K[i] = 1.f;  // a constant channel: 0 / 0
          if (kind == 3 && i % 29 == 0) K[i] = (i % 2) ? INFINITY : std::numeric_limits<float>::quiet_NaN();
        }
        LayerInputs in;
        in.batch = 1, in.q_heads = 1, in.kv_heads = 1, in.seq = in.seq_stride = S, in.head_dim = d;
        in.keys = K.data(), in.values = V.data();
        Scratch ws;
        std::vector<float> got(static_cast<size_t>(S)), want(got.size());
        scorers::LagKV::score_head(p, in, 0, 0, ws, got.data());
        legacy_lagkv_head(p, K.data(), V.data(), S, d, portable_exp, want.data());
        INFO("kind=" << kind << " S=" << S << " cross=" << cross);
        CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
      }
}

TEST_CASE("lagkv: softmax_exp is within 2 ulp of std::exp and exact on the special values", "[select]") {
  int64_t worst = 0;
  for (float x = -110.f; x <= 89.f; x += 0.000917f) {
    const float a = scorers::LagKV::softmax_exp(x), b = std::exp(x);
    if (b < std::numeric_limits<float>::min()) {  // subnormal results: an absolute bound
      CHECK(std::abs(a - b) <= 4e-45f);
      continue;
    }
    worst = std::max(worst, ulp_distance(a, b));
  }
  WARN("softmax_exp vs std::exp: worst " << worst << " ulp on [-110, 89]");
  CHECK(worst <= 2);
  CHECK(scorers::LagKV::softmax_exp(0.f) == 1.f);
  CHECK(scorers::LagKV::softmax_exp(-0.f) == 1.f);
  CHECK(scorers::LagKV::softmax_exp(-INFINITY) == 0.f);
  CHECK(scorers::LagKV::softmax_exp(INFINITY) == INFINITY);
  CHECK(std::isnan(scorers::LagKV::softmax_exp(std::numeric_limits<float>::quiet_NaN())));
  CHECK(scorers::LagKV::softmax_exp(-200.f) == 0.f);
}

TEST_CASE("lagkv: rank_in_partition is the stable sort's rank (NaN last, -0 == +0, ties by position)", "[select]") {
  std::mt19937 rng(13);
  for (int kind = 0; kind < 5; ++kind)
    for (const int64_t lag : {1, 2, 8, 128}) {
      const std::vector<float> q = adversarial(kind, lag, rng);
      std::vector<int32_t> order(static_cast<size_t>(lag));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int32_t x, int32_t y) {  // LagKV::score_head's comparator
        const bool nx = std::isnan(q[x]), ny = std::isnan(q[y]);
        return nx != ny ? ny : (!nx && q[x] < q[y]);
      });
      for (int64_t r = 0; r < lag; ++r) {
        INFO("kind=" << kind << " lag=" << lag << " r=" << r);
        CHECK(scorers::LagKV::rank_in_partition(q.data(), lag, order[r]) == r);
      }
    }
}
