// kvpress's wrapper presses in the fused, torch-free path, on hand-checkable inputs: adakv (safeguard, budget),
// per_layer and pyramidkv budgets (incl. the fallback), chunk / chunkkv / block budgets and choices,
// key_rerotation (against rotating the pre-RoPE key directly) and think (which channels are zeroed).
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "kernels/cpu/executor.hpp"
#include "policies/granularity/block.hpp"
#include "policies/granularity/chunk.hpp"
#include "policies/granularity/chunkkv.hpp"
#include "policies/granularity/token.hpp"
#include "policies/postops/key_rerotation.hpp"
#include "policies/postops/think.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/selectors/adakv.hpp"
#include "policies/selectors/per_layer.hpp"
#include "policies/selectors/pyramidkv.hpp"
#include "policies/selectors/topk.hpp"

using namespace kvf;

namespace {

std::vector<int32_t> kept_of(const KeptSets& k, int64_t b, int64_t h) {
  return std::vector<int32_t>(k.begin(b, h), k.begin(b, h) + k.count(b, h));
}

// Keys whose L2 norm is norms[(b * H + h) * S + t] (knorm keeps the smallest), values random.
struct NormLayer {
  std::vector<float> keys, values;
  LayerInputs in;
  NormLayer(int64_t B, int64_t H, int64_t S, int64_t d, const std::vector<float>& norms) {
    keys.assign(static_cast<size_t>(B * H * S * d), 0.f);
    values.resize(keys.size());
    std::mt19937 rng(7);
    std::normal_distribution<float> n(0.f, 1.f);
    for (auto& v : values) v = n(rng);
    for (int64_t i = 0; i < B * H * S; ++i) keys[static_cast<size_t>(i * d)] = norms[static_cast<size_t>(i)];
    in.batch = B;
    in.q_heads = in.kv_heads = H;
    in.seq = in.seq_stride = in.tokens = in.token_stride = S;
    in.head_dim = d;
    in.keys = keys.data();
    in.values = values.data();
  }
};

SelectContext ctx_of(int64_t B, int64_t H, int64_t S, double cr) {
  SelectContext c;
  c.batch = B, c.heads = H, c.seq = S, c.compression_ratio = cr;
  return c;
}

}  // namespace

// ---- adakv --------------------------------------------------------------------------------------------------

TEST_CASE("adakv: the row budget is spent across heads, each head keeps at least n_safe", "[press][wrappers][adakv]") {
  // One row, two heads, S = 10, cr = 0.5: n = 5 per head, 10 in all. Head 0 scores 10..19, head 1 scores 0..9.
  std::vector<float> s(20);
  for (int t = 0; t < 10; ++t) s[t] = 10.f + t, s[10 + t] = static_cast<float>(t);
  const auto c = ctx_of(1, 2, 10, 0.5);
  KeptSets k;
  SECTION("alpha 0.2: n_safe = int(5 * 0.2) = 1, the rest goes to the better head") {
    auto sc = s;
    selectors::AdaKV::select({0.2}, c, sc.data(), k);
    CHECK(k.total() == 10);
    CHECK(kept_of(k, 0, 1) == std::vector<int32_t>{9});  // the safeguarded best of head 1
    CHECK(kept_of(k, 0, 0) == std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(sc[19] == FLT_MAX);  // safeguard written into the scores, as kvpress does
    CHECK(sc[9] == FLT_MAX);
    CHECK(!k.uniform());
  }
  SECTION("alpha 1: every head keeps exactly its own top n (ScorerPress)") {
    auto sc = s;
    selectors::AdaKV::select({1.0}, c, sc.data(), k);
    CHECK(kept_of(k, 0, 0) == std::vector<int32_t>{5, 6, 7, 8, 9});
    CHECK(kept_of(k, 0, 1) == std::vector<int32_t>{5, 6, 7, 8, 9});
  }
  SECTION("alpha 0: pure global selection may empty a head") {
    auto sc = s;
    selectors::AdaKV::select({0.0}, c, sc.data(), k);
    CHECK(k.count(0, 0) == 10);
    CHECK(k.count(0, 1) == 0);
  }
}

TEST_CASE("adakv: n_safe is at least 1 when alpha > 0 (kvpress 0.5.5), NaN is pruned first", "[press][wrappers][adakv]") {
  CHECK(selectors::AdaKV::n_safe(3, 0.2) == 1);  // int(0.6) = 0 -> 1
  CHECK(selectors::AdaKV::n_safe(0, 0.2) == 0);
  CHECK(selectors::AdaKV::n_safe(3, 0.0) == 0);
  CHECK(selectors::AdaKV::n_safe(10, 0.25) == 2);
  // S = 4, cr = 0.5: n = 2, n_safe = max(1, int(0.4)) = 1. Head 0: a NaN among large scores; head 1 small scores.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> s{5.f, nan, 7.f, 6.f, 1.f, 2.f, 0.f, 3.f};
  KeptSets k;
  selectors::AdaKV::select({0.2}, ctx_of(1, 2, 4, 0.5), s.data(), k);
  // Safeguard: head 0's NaN ranks first (torch.topk) and becomes FLT_MAX; head 1 keeps position 3.
  // Global: keep 4 of 8 -> FLT_MAX (h0 t1), FLT_MAX (h1 t3), 7, 6.
  CHECK(kept_of(k, 0, 0) == std::vector<int32_t>{1, 2, 3});
  CHECK(kept_of(k, 0, 1) == std::vector<int32_t>{3});
  // Without the safeguard the NaN goes first: kvpress prunes with topk(-s), where NaN ranks highest.
  std::vector<float> s2{5.f, nan, 7.f, 6.f, 1.f, 2.f, 0.f, 3.f};
  selectors::AdaKV::select({0.0}, ctx_of(1, 2, 4, 0.5), s2.data(), k);
  CHECK(kept_of(k, 0, 0) == std::vector<int32_t>{0, 2, 3});
  CHECK(kept_of(k, 0, 1) == std::vector<int32_t>{3});
}

TEST_CASE("adakv through the executor: total kept = H * int(S(1-cr)) per row, ragged per head", "[press][wrappers][adakv]") {
  using P = Press<scorers::Knorm, selectors::AdaKV, granularity::Token>;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.5f, 2.f);
  const int64_t B = 2, H = 3, S = 40;
  std::vector<float> norms(static_cast<size_t>(B * H * S));
  for (int64_t i = 0; i < B * H * S; ++i) norms[static_cast<size_t>(i)] = u(rng) * (1.f + static_cast<float>(i / S % H));
  NormLayer l(B, H, S, 4, norms);
  for (double cr : {0.25, 0.5, 0.8}) {
    P::Params p;
    p.compression_ratio = cr;
    PressOutput out;
    CpuExecutor<P>::run(p, l.in, out);
    const int64_t n = n_kept(S, cr), safe = selectors::AdaKV::n_safe(n, 0.2);
    for (int64_t b = 0; b < B; ++b) {
      int64_t row = 0;
      for (int64_t h = 0; h < H; ++h) {
        CHECK(out.kept.count(b, h) >= safe);
        row += out.kept.count(b, h);
      }
      CHECK(row == H * n);
    }
    CHECK(!out.kept.uniform());  // heads with larger norms (smaller knorm scores) give up budget
    CHECK(out.kept.count(0, 0) > out.kept.count(0, 2));
  }
}

// ---- per_layer / pyramidkv budgets ---------------------------------------------------------------------------

TEST_CASE("per_layer: layer l keeps int(S(1 - compression_ratios[l])); ratio 1 keeps nothing", "[press][wrappers][budget]") {
  selectors::PerLayer::Params p{{0.1, 1.0, 0.5}};
  CHECK(selectors::PerLayer::budget(p, 256, 0) == 230);  // kvpress's test: [0.1, 1] on 256 tokens -> 230 and 0
  CHECK(selectors::PerLayer::budget(p, 256, 1) == 0);
  CHECK(selectors::PerLayer::budget(p, 37, 2) == 18);
  CHECK_THROWS_WITH(selectors::PerLayer::budget(p, 10, 3), Catch::Contains("no ratio for layer 3"));
  CHECK_THROWS_WITH(selectors::PerLayer::budget({}, 10, 0), Catch::Contains("compression_ratios is required"));
  std::vector<float> s(2 * 8);
  std::iota(s.begin(), s.end(), 0.f);
  KeptSets k;
  auto c = ctx_of(1, 2, 8, 0.3);
  c.layer = 2;  // ratio 0.5 -> 4 per head, the global ratio is not used
  selectors::PerLayer::select(p, c, s.data(), k);
  CHECK(kept_of(k, 0, 0) == std::vector<int32_t>{4, 5, 6, 7});
  CHECK(kept_of(k, 0, 1) == std::vector<int32_t>{4, 5, 6, 7});
}

TEST_CASE("pyramidkv: linear budgets per layer, kvpress's fallback to uniform", "[press][wrappers][budget]") {
  using selectors::PyramidKV;
  // The worked example (S = 4096, cr = 0.5, window 64, beta 20, 32 layers): min 102.4, max 3993.6.
  CHECK(PyramidKV::layer_budget(4096, 0.5, 64, 20, 0, 32) == 3994);
  CHECK(PyramidKV::layer_budget(4096, 0.5, 64, 20, 31, 32) == 102);
  for (double cr : {0.1, 0.3, 0.5, 0.6}) {
    double sum = 0;
    for (int64_t l = 0; l < 32; ++l) sum += static_cast<double>(PyramidKV::layer_budget(4096, cr, 64, 20, l, 32));
    CHECK(sum / 32 == Approx(4096 * (1 - cr)).epsilon(1e-3));  // the mean is the uniform budget
  }
  // Fallback when S(1-cr)/beta < window, i.e. cr > 1 - beta * window / S = 0.6875: every layer keeps round(S(1-cr)).
  CHECK(PyramidKV::layer_budget(4096, 0.68, 64, 20, 0, 32) == 2556);
  CHECK(PyramidKV::layer_budget(4096, 0.68, 64, 20, 31, 32) == 66);
  CHECK(PyramidKV::layer_budget(4096, 0.69, 64, 20, 0, 32) == 1270);
  CHECK(PyramidKV::layer_budget(4096, 0.69, 64, 20, 31, 32) == 1270);
  CHECK(PyramidKV::layer_budget(4096, 0.75, 64, 20, 7, 32) == 1024);
  CHECK(PyramidKV::layer_budget(3, 0.9, 2, 20, 0, 4) == 1);  // kvpress 0.5.5: the fallback is at least 1
  // Round half to even: S = 97, cr = 0.25, window 8, 4 layers -> 89, 78.17, 67.33, 56.5 -> 56.
  CHECK(PyramidKV::layer_budget(97, 0.25, 8, 20, 0, 4) == 89);
  CHECK(PyramidKV::layer_budget(97, 0.25, 8, 20, 1, 4) == 78);
  CHECK(PyramidKV::layer_budget(97, 0.25, 8, 20, 3, 4) == 56);
  CHECK(PyramidKV::layer_budget(1000, 0.5, 0, 20, 0, 1) == 975);  // one layer: no division by zero
}

// ---- granularities -------------------------------------------------------------------------------------------

TEST_CASE("chunk: each chunk keeps max(1, int(len(1-cr))) of its own best", "[press][wrappers][chunk]") {
  using P = Press<scorers::Knorm, selectors::TopK, granularity::Chunk>;
  CHECK(granularity::Chunk::chunk_kept(4, 0.5) == 2);
  CHECK(granularity::Chunk::chunk_kept(4, 0.8) == 1);  // int(0.8) = 0 -> 1
  CHECK(granularity::Chunk::chunk_kept(2, 0.8) == 1);
  // S = 10, chunks [0,4) [4,8) [8,10). Norms decrease inside each chunk, so each keeps its last positions.
  std::vector<float> norms{4, 3, 2, 1, 40, 30, 20, 10, 9, 8};
  NormLayer l(1, 1, 10, 2, norms);
  P::Params p;
  p.granularity.chunk_length = 4;
  PressOutput out;
  p.compression_ratio = 0.5;  // 2 + 2 + 1 = 5 (here equal to int(10 * 0.5))
  CpuExecutor<P>::run(p, l.in, out);
  CHECK(kept_of(out.kept, 0, 0) == std::vector<int32_t>{2, 3, 6, 7, 9});
  p.compression_ratio = 0.8;  // 1 + 1 + 1 = 3, not int(10 * 0.2) = 1
  CpuExecutor<P>::run(p, l.in, out);
  CHECK(kept_of(out.kept, 0, 0) == std::vector<int32_t>{3, 7, 9});
  // A chunk is ranked only against itself: positions 4..7 (norms 10..40) are worse than all of [0, 4) globally.
  for (int64_t t = 0; t < 10; ++t) CHECK(out.scores[static_cast<size_t>(t)] == -norms[static_cast<size_t>(t)]);
}

TEST_CASE("chunkkv: whole chunks by mean head-summed score, each batch row its own", "[press][wrappers][chunkkv]") {
  using P = Press<scorers::Knorm, selectors::TopK, granularity::ChunkKV>;
  // S = 11, chunk_length 3: chunks [0,3) [3,6) [6,9) and the partial [9,11); cr = 0.5 -> max(1, int(4 * 0.5)) = 2.
  // Row 0 favours chunk 1 and the partial chunk, row 1 chunks 0 and 2 (knorm: small norms win).
  std::vector<float> norms(2 * 2 * 11, 5.f);
  for (int h = 0; h < 2; ++h) {
    for (int t : {3, 4, 5, 9, 10}) norms[static_cast<size_t>(h * 11 + t)] = 1.f;
    for (int t : {0, 1, 2, 6, 7, 8}) norms[static_cast<size_t>((2 + h) * 11 + t)] = 1.f;
  }
  NormLayer l(2, 2, 11, 2, norms);
  P::Params p;
  p.granularity.chunk_length = 3;
  p.compression_ratio = 0.5;
  PressOutput out;
  CpuExecutor<P>::run(p, l.in, out);
  for (int h = 0; h < 2; ++h) {
    CHECK(kept_of(out.kept, 0, h) == std::vector<int32_t>{3, 4, 5, 9, 10});  // 2 chunks, one partial: 5 tokens
    CHECK(kept_of(out.kept, 1, h) == std::vector<int32_t>{0, 1, 2, 6, 7, 8});
  }
  // Fewer tokens than one chunk: the wrapped press (topk, int(S(1-cr)) per head).
  p.granularity.chunk_length = 20;
  CpuExecutor<P>::run(p, l.in, out);
  CHECK(out.kept.count(0, 0) == 5);
  CHECK(kept_of(out.kept, 0, 0) == std::vector<int32_t>{3, 4, 5, 9, 10});
}

TEST_CASE("block: with a set-independent scorer, block-iterative equals one-shot top-k", "[press][wrappers][block]") {
  using PB = Press<scorers::Knorm, selectors::TopK, granularity::Block>;
  using PT = Press<scorers::Knorm, selectors::TopK, granularity::Token>;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0.1f, 3.f);
  const int64_t B = 2, H = 2, S = 41;
  std::vector<float> norms(static_cast<size_t>(B * H * S));
  for (auto& x : norms) x = u(rng);
  NormLayer l(B, H, S, 4, norms);
  std::vector<float> hidden(static_cast<size_t>(B * S * 4), 0.f);
  l.in.hidden = 4;
  l.in.hidden_states = hidden.data();
  for (double cr : {0.25, 0.5, 0.8})
    for (int64_t bs : {1, 2, 5, 8, 64}) {
      INFO("cr=" << cr << " block_size=" << bs);
      PB::Params pb;
      pb.compression_ratio = cr;
      pb.granularity.block_size = bs;
      PT::Params pt;
      pt.compression_ratio = cr;
      PressOutput ob, ot;
      CpuExecutor<PB>::run(pb, l.in, ob);
      CpuExecutor<PT>::run(pt, l.in, ot);
      CHECK(ob.kept.positions == ot.kept.positions);
      CHECK(ob.kept.offsets == ot.kept.offsets);
      CHECK(ob.scores == ot.scores);  // every position was scored, with its one-shot score
    }
}

TEST_CASE("block: the token-local fast path keeps exactly the iterative kept sets, ties and NaN included",
          "[press][wrappers][block]") {
  // Norms from a few small integers: exact in float, so both paths see bit-identical scores and the test checks
  // the selection order only (ties between kept entries and block entries, ties inside a block, NaN, +-0).
  using G = granularity::Block;
  std::mt19937 rng(23);
  for (int64_t S : {1, 2, 7, 41, 300}) {
    const int64_t B = 2, H = 3;
    std::vector<float> norms(static_cast<size_t>(B * H * S));
    std::uniform_int_distribution<int> pick(0, 6);
    for (auto& x : norms) {
      const int r = pick(rng);
      x = r == 0 ? std::numeric_limits<float>::quiet_NaN() : r == 1 ? -0.f : static_cast<float>(r % 3);
    }
    NormLayer l(B, H, S, 4, norms);
    for (double cr : {0.1, 0.25, 0.5, 0.8, 0.99})
      for (int64_t bs : {1, 2, 3, 8, 64, 1000}) {
        INFO("S=" << S << " cr=" << cr << " block_size=" << bs);
        G::Params gp;
        gp.block_size = bs;
        const SelectContext c = ctx_of(B, H, S, cr);
        std::vector<float> s_fast, s_iter;
        KeptSets k_fast, k_iter;
        G::run_token_local<scorers::Knorm>(gp, {}, l.in, c, s_fast, k_fast);
        G::run_iterative<scorers::Knorm, selectors::TopK>(gp, {}, {}, l.in, c, s_iter, k_iter);
        CHECK(k_fast.positions == k_iter.positions);
        CHECK(k_fast.offsets == k_iter.offsets);
        REQUIRE(s_fast.size() == s_iter.size());
        for (size_t i = 0; i < s_fast.size(); ++i)
          CHECK((s_fast[i] == s_iter[i] || (std::isnan(s_fast[i]) && std::isnan(s_iter[i]))));
      }
  }
}

// ---- post-ops ------------------------------------------------------------------------------------------------

namespace {

// RoPE (rotate_half layout) of a pre-RoPE vector x at position p, in double.
std::vector<float> rope_at(const std::vector<float>& x, const std::vector<float>& inv_freq, double p) {
  const size_t half = x.size() / 2;
  std::vector<float> y(x.size());
  for (size_t c = 0; c < half; ++c) {
    const double th = p * inv_freq[c], cs = std::cos(th), sn = std::sin(th);
    y[c] = static_cast<float>(x[c] * cs - x[c + half] * sn);
    y[c + half] = static_cast<float>(x[c + half] * cs + x[c] * sn);
  }
  return y;
}

}  // namespace

TEST_CASE("key_rerotation: kept keys sit at contiguous positions 0..n-1", "[press][wrappers][rerotation]") {
  using P = Press<scorers::Knorm, selectors::TopK, granularity::Token, postops::KeyRerotation>;
  const int64_t B = 1, H = 2, S = 24, d = 8;
  std::vector<float> inv_freq(d / 2);
  for (int64_t c = 0; c < d / 2; ++c) inv_freq[c] = static_cast<float>(std::pow(10000.0, -2.0 * c / d));
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<std::vector<float>> pre(static_cast<size_t>(B * H * S), std::vector<float>(d));
  std::vector<float> keys(static_cast<size_t>(B * H * S * d)), values(keys.size());
  for (int64_t i = 0; i < B * H * S; ++i) {
    for (auto& x : pre[static_cast<size_t>(i)]) x = n(rng);
    auto k = rope_at(pre[static_cast<size_t>(i)], inv_freq, static_cast<double>(i % S));  // stored post-RoPE
    std::copy(k.begin(), k.end(), keys.begin() + i * d);
  }
  for (auto& v : values) v = n(rng);
  LayerInputs in;
  in.batch = B, in.q_heads = in.kv_heads = H, in.seq = in.seq_stride = in.tokens = in.token_stride = S;
  in.head_dim = d, in.keys = keys.data(), in.values = values.data(), in.inv_freq = inv_freq.data();
  P::Params p;
  p.compression_ratio = 0.5;
  PressOutput out;
  CpuExecutor<P>::run(p, in, out);
  for (int64_t h = 0; h < H; ++h) {
    const auto pos = kept_of(out.kept, 0, h);
    REQUIRE(pos.size() == 12);
    CHECK(pos != std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});  // something was actually moved
    for (size_t j = 0; j < pos.size(); ++j) {
      const auto expect = rope_at(pre[static_cast<size_t>(h * S + pos[j])], inv_freq, static_cast<double>(j));
      const float* got = out.keys.data() + (out.kept.offsets[h] + static_cast<int64_t>(j)) * d;
      for (int64_t c = 0; c < d; ++c) CHECK(got[c] == Approx(expect[c]).margin(1e-5));
      const float* v = out.values.data() + (out.kept.offsets[h] + static_cast<int64_t>(j)) * d;
      CHECK(std::equal(v, v + d, values.data() + (h * S + pos[j]) * d));  // values untouched
    }
  }
}

TEST_CASE("key_rerotation: the host's shared cos/sin rows give the device function's bits", "[press][wrappers][rerotation]") {
  // KeyRerotation::apply takes cos/sin from a table (many kept keys per distinct delta) or from a row reused while
  // the delta stays the same (few); both must equal rerotate() (the per-pair function the CUDA kernel runs) bit
  // for bit, including the inf/NaN a non-finite key turns into.
  const int64_t d = 16;
  std::vector<float> inv_freq(d / 2);
  for (int64_t c = 0; c < d / 2; ++c) inv_freq[c] = static_cast<float>(std::pow(500000.0, -2.0 * c / d));
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.f, 3.f);
  for (const int64_t S : {int64_t{40}, int64_t{4000}}) {
    for (const int64_t keep_every : {int64_t{2}, int64_t{97}}) {  // S/2 keys over S/2 deltas (row path) or few
      KeptSets kept;
      kept.reset(1, 3);
      for (int64_t h = 0; h < 3; ++h) {
        for (int64_t t = h; t < S; t += keep_every + (t % 3 == 0 ? 1 : 0)) kept.positions.push_back(static_cast<int32_t>(t));
        kept.offsets[h + 1] = static_cast<int64_t>(kept.positions.size());
      }
      std::vector<float> keys(static_cast<size_t>(kept.total() * d));
      for (auto& x : keys) x = n(rng);
      keys[5] = std::numeric_limits<float>::infinity();
      keys[d + 3] = -0.f;
      std::vector<float> expect = keys;
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < kept.count(0, i); ++j)
          postops::KeyRerotation::rerotate(expect.data() + (kept.offsets[i] + j) * d, d,
                                           static_cast<float>(j) - static_cast<float>(kept.begin(0, i)[j]), inv_freq.data());
      LayerInputs in;
      in.head_dim = d, in.inv_freq = inv_freq.data();
      postops::KeyRerotation::apply({}, in, kept, keys.data(), nullptr);
      CAPTURE(S, keep_every);
      CHECK(std::memcmp(keys.data(), expect.data(), keys.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("think: zeroes the key channels with the smallest query x key energy", "[press][wrappers][think]") {
  using P = Press<scorers::Knorm, selectors::TopK, granularity::Token, postops::ThinK>;
  // One kv head, two query heads (G = 2), d = hidden = 4, S = 8, identity RoPE tables (cos 1, sin 0).
  const int64_t S = 8, d = 4, Hq = 2;
  std::vector<float> keys(static_cast<size_t>(S * d)), values(keys.size(), 1.f);
  for (int64_t t = 0; t < S; ++t)
    for (int64_t c = 0; c < d; ++c) keys[static_cast<size_t>(t * d + c)] = static_cast<float>(c + 1) * (1.f + 0.01f * t);
  // q head 0 = h, q head 1 = (0, 10 h[0] / 4, 0, 0): last two rows h = (4, 0.1, 1, 0.5); earlier rows would favour
  // channel 3 if they were (wrongly) part of the window.
  std::vector<float> hidden(static_cast<size_t>(S * d), 0.f);
  for (int64_t t = 0; t < S - 2; ++t) hidden[static_cast<size_t>(t * d + 3)] = 100.f;
  for (int64_t t = S - 2; t < S; ++t) {
    const float h[4] = {4.f, 0.1f, 1.f, 0.5f};
    std::copy(h, h + 4, hidden.begin() + t * d);
  }
  std::vector<float> q_proj(static_cast<size_t>(Hq * d * d), 0.f);
  for (int64_t c = 0; c < d; ++c) q_proj[static_cast<size_t>(c * d + c)] = 1.f;
  q_proj[static_cast<size_t>((d + 1) * d + 0)] = 2.5f;  // head 1, channel 1 = 2.5 * h[0] = 10
  std::vector<float> cos(static_cast<size_t>(S * d), 1.f), sin(static_cast<size_t>(S * d), 0.f);
  LayerInputs in;
  in.batch = 1, in.q_heads = Hq, in.kv_heads = 1, in.seq = in.seq_stride = in.tokens = in.token_stride = S;
  in.rope_rows = S, in.head_dim = d, in.hidden = d;
  in.keys = keys.data(), in.values = values.data(), in.hidden_states = hidden.data(), in.q_proj = q_proj.data();
  in.cos = cos.data(), in.sin = sin.data();
  P::Params p;
  p.compression_ratio = 0.25;  // knorm keeps positions 0..5 (smallest norms)
  std::get<0>(p.post).window_size = 2;
  // qn = mean over heads of q^2 = (8, 50.005, 0.5, 0.125); kn ~ (1, 4, 9, 16) -> scores ~ (8, 200, 4.5, 2).
  auto zeroed = [&](double r) {
    std::get<0>(p.post).key_channel_compression_ratio = r;
    PressOutput out;
    CpuExecutor<P>::run(p, in, out);
    REQUIRE(kept_of(out.kept, 0, 0) == std::vector<int32_t>{0, 1, 2, 3, 4, 5});
    std::vector<int> channels;
    for (int64_t c = 0; c < d; ++c) {
      bool all_zero = true, all_same = true;
      for (int64_t j = 0; j < 6; ++j) {
        const float k = out.keys[static_cast<size_t>(j * d + c)];
        all_zero &= k == 0.f;
        all_same &= k == keys[static_cast<size_t>(j * d + c)];
      }
      CHECK((all_zero || all_same));  // a channel is zeroed in every kept key, or untouched
      if (all_zero) channels.push_back(static_cast<int>(c));
    }
    CHECK(out.values == std::vector<float>(static_cast<size_t>(6 * d), 1.f));
    return channels;
  };
  CHECK(zeroed(0.5) == std::vector<int>{2, 3});  // m = int(4 * 0.5) = 2 smallest: channels 3 (2) and 2 (4.5)
  CHECK(zeroed(0.3) == std::vector<int>{3});     // m = int(1.2) = 1
  CHECK(zeroed(0.0).empty());
  CHECK(zeroed(1.0) == std::vector<int>{0, 1, 2, 3});
  // Without group averaging (head 0 alone) channel 1 would be among the smallest; with the earlier rows in the
  // window channel 3 would survive: neither happened above.
}

TEST_CASE("wrapper presses: compression_ratio 0 leaves the cache untouched, post-ops included", "[press][wrappers]") {
  using P = Press<scorers::Knorm, selectors::TopK, granularity::Token, postops::ThinK>;
  std::vector<float> norms(12, 1.f);
  std::iota(norms.begin(), norms.end(), 1.f);
  NormLayer l(1, 1, 12, 4, norms);
  P::Params p;
  std::get<0>(p.post).key_channel_compression_ratio = 0.5;
  PressOutput out;
  CpuExecutor<P>::run(p, l.in, out);  // no hidden states / q_proj needed: think is not run at cr == 0
  CHECK(out.kept.total() == 12);
  CHECK(out.keys == l.keys);
}
