// The press DSL's torch-free pieces: budget arithmetic, selection order, protection, the fused CPU executor.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <limits>
#include <random>

#include "kernels/cpu/executor.hpp"
#include "policies/granularity/token.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/selectors/adakv.hpp"
#include "policies/selectors/topk.hpp"

using namespace kvf;

namespace {

struct RandomLayer {
  std::vector<float> keys, values;
  LayerInputs in;
  RandomLayer(int64_t B, int64_t H, int64_t S, int64_t d, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.f, 1.f);
    keys.resize(static_cast<size_t>(B * H * S * d));
    values.resize(keys.size());
    for (auto& x : keys) x = n(rng);
    for (auto& x : values) x = n(rng);
    in.batch = B;
    in.q_heads = H;
    in.kv_heads = H;
    in.seq = in.seq_stride = in.tokens = in.token_stride = S;
    in.head_dim = d;
    in.keys = keys.data();
    in.values = values.data();
  }
};

}  // namespace

TEST_CASE("n_kept follows kvpress's double arithmetic", "[press][budget]") {
  // Worked values from the kvpress semantics notes (section 9): int(L * (1 - cr)) in doubles.
  CHECK(n_kept(10, 0.8) == 1);
  CHECK(n_kept(5, 0.8) == 1);  // int(0.9999...) = 0, clamped to 1 as compute_n_kept does
  CHECK(n_kept(5, 1.0) == 0);
  CHECK(n_kept(128, 0.8) == 25);
  CHECK(n_kept(256, 0.8) == 51);
  CHECK(n_kept(1000, 0.9) == 99);
  CHECK(n_kept(23, 0.4) == 13);
  CHECK(n_kept(4096, 0.875) == 512);
  CHECK(n_kept(4097, 0.5) == 2048);
  for (int64_t L : {1, 7, 100, 4096})
    for (double cr : {0.0, 0.25, 0.5, 0.9})
      CHECK(n_kept(L, cr) == std::max<int64_t>(1, static_cast<int64_t>(L * (1.0 - cr))));
  CHECK(round_half_even(2.5) == 2);
  CHECK(round_half_even(3.5) == 4);
}

TEST_CASE("top-n selection: NaN first, higher scores, lower position on ties, output ascending", "[press][select]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> s{0.5f, nan, 2.f, 2.f, -inf, inf, -0.f, 0.f};
  TopNScratch idx;
  std::vector<int32_t> out(4);
  top_n_positions(s.data(), static_cast<int64_t>(s.size()), 4, idx, out.data());
  CHECK(out == std::vector<int32_t>{1, 2, 3, 5});
  top_n_positions(s.data(), static_cast<int64_t>(s.size()), 3, idx, out.data());
  CHECK(std::vector<int32_t>(out.begin(), out.begin() + 3) == std::vector<int32_t>{1, 2, 5});
  std::vector<int32_t> all(s.size());
  top_n_positions(s.data(), static_cast<int64_t>(s.size()), 99, idx, all.data());  // n clamps to S
  CHECK(all == std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7});
}

namespace {
// Scores drawn from a small set (many exact ties), with NaN, +-0 and +-inf mixed in.
std::vector<float> tie_heavy_scores(size_t n, std::mt19937& rng) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const float pool[] = {nan, -inf, inf, 0.f, -0.f, 1.f, -1.f, 0.5f, 2.f, -3.f, 1e-30f, -1e-30f, 7.f};
  std::uniform_int_distribution<int> pick(0, 12);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> s(n);
  for (auto& x : s) x = (rng() % 3 == 0) ? normal(rng) : pool[pick(rng)];
  return s;
}
}  // namespace

TEST_CASE("top-n selection equals a full sort by score_before on tie-heavy random scores", "[press][select]") {
  std::mt19937 rng(7);
  TopNScratch scratch;
  for (int trial = 0; trial < 300; ++trial) {
    const size_t S = 1 + rng() % 300;
    const auto s = tie_heavy_scores(S, rng);
    const int64_t n = static_cast<int64_t>(rng() % (S + 1));
    std::vector<int32_t> order(S);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return score_before(s[a], a, s[b], b); });
    std::vector<int32_t> want(order.begin(), order.begin() + n);
    std::sort(want.begin(), want.end());
    std::vector<int32_t> got(static_cast<size_t>(n));
    top_n_positions(s.data(), static_cast<int64_t>(S), n, scratch, got.data());
    INFO("trial " << trial << ", S " << S << ", n " << n);
    REQUIRE(got == want);
  }
}

TEST_CASE("adakv global selection equals the sort-based definition on tie-heavy random scores", "[press][select]") {
  // Definition (kvpress 0.5.5 + kvforge's tie rule): each head's n_safe best (NaN best, ties to the lower
  // position) become FLT_MAX; then per batch row the H * n best of all heads are kept, NaN worst, ties to the
  // lower flat index h * S + t.
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t B = 1 + rng() % 2, H = 1 + rng() % 4, S = 1 + rng() % 120;
    const double cr = std::uniform_real_distribution<double>(0.0, 0.95)(rng);
    const double alpha = (rng() % 4) * 0.25;
    auto s = tie_heavy_scores(static_cast<size_t>(B * H * S), rng);
    auto expect_scores = s;
    const int64_t n = std::clamp<int64_t>(n_kept(S, cr), 0, S);
    const int64_t safe = std::min(selectors::AdaKV::n_safe(n, alpha), S);
    for (int64_t i = 0; i < B * H; ++i) {
      float* row = expect_scores.data() + i * S;
      std::vector<int32_t> order(static_cast<size_t>(S));
      std::iota(order.begin(), order.end(), 0);
      std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return score_before(row[a], a, row[b], b); });
      for (int64_t j = 0; j < safe; ++j) row[order[static_cast<size_t>(j)]] = FLT_MAX;
    }
    KeptSets want;
    want.reset(B, H);
    for (int64_t b = 0; b < B; ++b) {
      const float* r = expect_scores.data() + b * H * S;
      std::vector<int64_t> flat(static_cast<size_t>(H * S));
      std::iota(flat.begin(), flat.end(), int64_t{0});
      std::sort(flat.begin(), flat.end(), [&](int64_t a, int64_t c) {
        const bool na = std::isnan(r[a]), nc = std::isnan(r[c]);
        if (na != nc) return nc;
        if (!na && r[a] != r[c]) return r[a] > r[c];
        return a < c;
      });
      flat.resize(static_cast<size_t>(H * n));
      std::sort(flat.begin(), flat.end());
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t j : flat)
          if (j / S == h) want.positions.push_back(static_cast<int32_t>(j % S));
        want.offsets[b * H + h + 1] = static_cast<int64_t>(want.positions.size());
      }
    }
    KeptSets got;
    SelectContext c{B, H, S, 0, 1, cr, 0};
    selectors::AdaKV::select({alpha}, c, s.data(), got);
    INFO("trial " << trial << ", B " << B << ", H " << H << ", S " << S << ", cr " << cr << ", alpha " << alpha);
    REQUIRE(got.offsets == want.offsets);
    REQUIRE(got.positions == want.positions);
  }
}

TEST_CASE("protected positions get the layer-wide max + 1", "[press][protect]") {
  RandomLayer l(2, 2, 6, 4, 1);
  std::vector<float> s(2 * 2 * 6);
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<float>(i % 7) * 0.5f;
  Protect p{Protect::Kind::MaxPlusOne, 1, 2};
  float mx = -1e9f;
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t t = 1; t < 4; ++t) mx = std::max(mx, s[i * 6 + t]);
  apply_protect(p, l.in, s.data());
  for (int64_t i = 0; i < 4; ++i) {
    CHECK(s[i * 6 + 0] == mx + 1);
    CHECK(s[i * 6 + 4] == mx + 1);
    CHECK(s[i * 6 + 5] == mx + 1);
  }
}

TEST_CASE("fused knorm + topk keeps the smallest-norm keys, gathered in position order", "[press][fused]") {
  using P = Press<scorers::Knorm, selectors::TopK, granularity::Token>;
  for (int64_t S : {1, 2, 17, 256}) {
    for (double cr : {0.0, 0.25, 0.5, 0.9}) {
      INFO("S=" << S << " cr=" << cr);
      RandomLayer l(2, 3, S, 8, static_cast<uint32_t>(S));
      P::Params p;
      p.compression_ratio = cr;
      PressOutput out;
      CpuExecutor<P>::run(p, l.in, out);
      const int64_t n = cr == 0.0 ? S : n_kept(S, cr);
      REQUIRE(out.kept.uniform());
      for (int64_t b = 0; b < 2; ++b)
        for (int64_t h = 0; h < 3; ++h) {
          REQUIRE(out.kept.count(b, h) == n);
          // independent check: the n-th smallest norm bounds every kept norm
          std::vector<std::pair<float, int>> norms;
          for (int64_t t = 0; t < S; ++t) {
            float ss = 0;
            for (int64_t c = 0; c < 8; ++c) ss += std::pow(l.in.key(b, h)[t * 8 + c], 2.f);
            norms.emplace_back(std::sqrt(ss), static_cast<int>(t));
          }
          std::sort(norms.begin(), norms.end());
          const int32_t* pos = out.kept.begin(b, h);
          for (int64_t j = 0; j < n; ++j) {
            if (j > 0) CHECK(pos[j] > pos[j - 1]);
            CHECK(std::find_if(norms.begin(), norms.begin() + n, [&](auto& x) { return x.second == pos[j]; }) !=
                  norms.begin() + n);
            const float* k = out.keys.data() + (out.kept.offsets[b * 3 + h] + j) * 8;
            const float* v = out.values.data() + (out.kept.offsets[b * 3 + h] + j) * 8;
            CHECK(std::equal(k, k + 8, l.in.key(b, h) + pos[j] * 8));
            CHECK(std::equal(v, v + 8, l.in.value(b, h) + pos[j] * 8));
          }
        }
    }
  }
}
