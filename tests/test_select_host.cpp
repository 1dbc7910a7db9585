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
