// The CudaExecutor framework (kernels/cuda/cuda_executors.hpp) against the CPU executor on identical inputs:
//  - selectors: CudaSelector<Se> vs Se::select on the SAME scores (adversarial: all equal, +-0, +-inf, NaN, few
//    distinct values), exact kept sets and bitwise-equal modified scores (AdaKV's safeguard);
//  - whole presses: CudaExecutor<P>::run vs CpuExecutor<P>::run, MHA B=1 and GQA B=2, S up to 40000 (131072 for the
//    token-local scorers), ratios 0 .. 0.9, random and adversarial layers; scores within float tolerance (bitwise
//    for streaming_llm and random), kept sets tie-aware (cudatest::compare), kept K/V rows bitwise.
// Every GPU case skips, saying why, without a usable GPU; the host cases (the adakv split) run everywhere.
#include "tests/test_cuda_support.hpp"

#include <functional>
#include <limits>
#include <random>

#include "compose/score_layer.hpp"
#include "core/error.hpp"
#include "kernels/cuda/cuda_executors.hpp"
#include "policies/granularity/block.hpp"
#include "policies/granularity/chunk.hpp"
#include "policies/granularity/chunkkv.hpp"
#include "policies/granularity/token.hpp"
#include "policies/postops/think.hpp"
#include "policies/scorers/lagkv.hpp"
#include "policies/scorers/query_states.hpp"
#include "policies/selection.hpp"

using namespace kvf;
using namespace kvf::cudatest;

namespace {

using selectors::AdaKV;
using selectors::PerLayer;
using selectors::PyramidKV;
using selectors::TopK;
using granularity::Block;
using granularity::Chunk;
using granularity::ChunkKV;
using granularity::Token;

// Adversarial (B, H, S) scores: 0 all equal, 1 +-0, 2 specials (+-inf, NaN, +-0, 1, FLT_MAX), 3 few distinct
// values, 4 normal.
std::vector<float> adversarial_scores(int kind, int64_t n, std::mt19937& rng) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float pool[] = {0.f, -0.f, inf, -inf, nan, 1.f, FLT_MAX, -nan};
  std::uniform_int_distribution<int> pick(0, 7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> s(static_cast<size_t>(n));
  for (auto& x : s) switch (kind) {
      case 0: x = 0.25f; break;
      case 1: x = pick(rng) % 2 ? 0.f : -0.f; break;
      case 2: x = pool[pick(rng)]; break;
      case 3: x = static_cast<float>(pick(rng) % 3); break;
      default: x = normal(rng); break;
    }
  return s;
}

template <class Se>
void check_selector(const typename Se::Params& p, const SelectContext& c, const std::vector<float>& scores,
                    const std::string& what) {
  INFO(what << " B=" << c.batch << " H=" << c.heads << " S=" << c.seq << " cr=" << c.compression_ratio);
  std::vector<float> cpu_scores = scores;
  KeptSets want;
  Se::select(p, c, cpu_scores.data(), want);
  const at::Tensor g = at::from_blob(const_cast<float*>(scores.data()), {c.batch, c.heads, c.seq}, at::kFloat)
                           .to(at::kCUDA)
                           .contiguous();
  const KeptSets got = cuda::to_host(cuda::CudaSelector<Se>::select(p, c, g));
  CHECK(got.offsets == want.offsets);
  CHECK(got.positions == want.positions);
  const auto gs = floats(g);
  CHECK(std::memcmp(gs.data(), cpu_scores.data(), gs.size() * sizeof(float)) == 0);
}

// A press case: its type, how to set its parameters, what inputs it needs.
struct Case {
  std::string name;
  bool token_local = false;  // also S = 131072
  bool needs_attentions = false;
  bool odd_head_dim_ok = true;  // RoPE / expected_attention need an even head_dim
  int64_t min_seq = 1;          // the scorer's validate() rejects shorter caches (checked separately)
  Tolerance tol;
  std::function<std::string(const TestLayer&, double)> run;  // "" or what differs
};

template <class P>
std::function<std::string(const TestLayer&, double)> runner(std::function<void(typename P::Params&)> set,
                                                           Tolerance tol) {
  return [set, tol](const TestLayer& L, double cr) {
    typename P::Params p;
    set(p);
    p.compression_ratio = cr;
    PressOutput out;
    PressInputs in = L.gpu;
    in.compression_ratio = cr;
    try {
      CpuExecutor<P>::run(p, L.host.raw(), out);
    } catch (const Error& e) {  // e.g. a chunk too short for the scorer: the GPU must refuse it the same way
      try {
        cuda::CudaExecutor<P>::run(p, in);
      } catch (const Error& g) {
        return std::string(g.what()) == e.what() ? std::string() : "gpu error '" + std::string(g.what()) +
                                                                     "' vs cpu error '" + e.what() + "'";
      }
      return "the cpu refused (" + std::string(e.what()) + ") but the gpu ran";
    }
    const HostResult want = host_result(std::move(out));
    const HostResult got = host_result(cuda::CudaExecutor<P>::run(p, in));
    return compare(got, want, L.host.keys.size(2), L.host.keys.size(3), tol);
  };
}

template <class P>
Case make_case(std::string name, std::function<void(typename P::Params&)> set, Case c = {}) {
  static_assert(cuda::CudaExecutor<P>::available, "the case list names a press without a CUDA executor");
  c.name = std::move(name);
  c.run = runner<P>(std::move(set), c.tol);
  return c;
}


std::vector<Case> cases() {
  Tolerance exact;
  exact.exact_scores = true;
  Tolerance adakv;
  adakv.head_wise = true;
  Tolerance rerot;
  rerot.keys_exact = false;
  Tolerance rerot_exact = exact;
  rerot_exact.keys_exact = false;
  using namespace scorers;
  using postops::KeyRerotation;
  std::vector<Case> v;
  v.push_back(make_case<Press<Knorm, TopK, Token>>("knorm", [](auto&) {}, {.token_local = true}));
  v.push_back(make_case<Press<StreamingLLM, TopK, Token>>("streaming_llm(n_sink=4)", [](auto&) {},
                                                         {.token_local = true, .min_seq = 5, .tol = exact}));
  v.push_back(make_case<Press<Random, TopK, Token>>("random(seed=42)", [](auto& p) { p.scorer.seed = 42; },
                                                   {.token_local = true, .tol = exact}));
  v.push_back(make_case<Press<KeyDiff, TopK, Token>>("keydiff", [](auto&) {}));
  v.push_back(make_case<Press<SnapKV, TopK, Token>>("snapkv(window_size=8, kernel_size=5)",
                                                   [](auto& p) { p.scorer.window_size = 8; },
                                                   {.odd_head_dim_ok = false, .min_seq = 9}));
  v.push_back(make_case<Press<TOVA, TopK, Token>>("tova", [](auto&) {}, {.odd_head_dim_ok = false, .min_seq = 2}));
  v.push_back(make_case<Press<ObservedAttention, TopK, Token>>("observed_attention", [](auto&) {},
                                                              {.needs_attentions = true}));
  v.push_back(make_case<Press<ExpectedAttention, TopK, Token>>(
      "expected_attention(n_future_positions=64, n_sink=4)", [](auto& p) { p.scorer.n_future_positions = 64; },
      {.odd_head_dim_ok = false, .min_seq = 5}));
  v.push_back(make_case<Press<Knorm, AdaKV, Token>>("adakv(knorm, alpha_safeguard=0.2)", [](auto&) {},
                                                   {.token_local = true, .tol = adakv}));
  v.push_back(make_case<Press<SnapKV, AdaKV, Token>>("adakv(snapkv(window_size=8))",
                                                    [](auto& p) { p.scorer.window_size = 8; },
                                                    {.odd_head_dim_ok = false, .min_seq = 9, .tol = adakv}));
  v.push_back(make_case<Press<ExpectedAttention, AdaKV, Token>>(
      "adakv(expected_attention(epsilon=0.01, n_future_positions=64), alpha_safeguard=0.2)",
      [](auto& p) {
        p.scorer.epsilon = 0.01;
        p.scorer.n_future_positions = 64;
      },
      {.odd_head_dim_ok = false, .min_seq = 5, .tol = adakv}));
  v.push_back(make_case<Press<Knorm, PerLayer, Token>>(
      "per_layer(knorm, compression_ratios=[0.1,0.5,0.25,0.8])",
      [](auto& p) { p.selector.compression_ratios = {0.1, 0.5, 0.25, 0.8}; }, {.token_local = true}));
  v.push_back(make_case<Press<SnapKV, PyramidKV, Token>>("pyramidkv(window_size=8, kernel_size=5, beta=20)",
                                                        [](auto& p) { p.scorer.window_size = 8; },
                                                        {.odd_head_dim_ok = false, .min_seq = 9}));
  v.push_back(make_case<Press<Knorm, TopK, Token, KeyRerotation>>("key_rerotation(knorm)", [](auto&) {},
                                                                 {.token_local = true, .tol = rerot}));
  v.push_back(make_case<Press<StreamingLLM, TopK, Token, KeyRerotation>>(
      "key_rerotation(streaming_llm(n_sink=4))", [](auto&) {}, {.token_local = true, .min_seq = 5, .tol = rerot_exact}));
  // Granularities (chunk's per-chunk path: streaming_llm, snapkv; token-local: knorm), think, lagkv.
  using postops::ThinK;
  auto chunked = [](int64_t C) {
    Tolerance t;
    t.chunk_length = C;
    return t;
  };
  v.push_back(make_case<Press<Knorm, TopK, Chunk>>("chunk(knorm, chunk_length=16)",
                                                  [](auto& p) { p.granularity.chunk_length = 16; },
                                                  {.token_local = true}));
  v.push_back(make_case<Press<Knorm, TopK, Chunk>>("chunk(knorm, chunk_length=1000)",
                                                  [](auto& p) { p.granularity.chunk_length = 1000; },
                                                  {.token_local = true}));
  v.push_back(make_case<Press<StreamingLLM, TopK, Chunk>>(
      "chunk(streaming_llm(n_sink=4), chunk_length=64)", [](auto& p) { p.granularity.chunk_length = 64; },
      {.min_seq = 5, .tol = exact}));
  v.push_back(make_case<Press<SnapKV, TopK, Chunk>>("chunk(snapkv(window_size=8), chunk_length=256)",
                                                   [](auto& p) {
                                                     p.scorer.window_size = 8;
                                                     p.granularity.chunk_length = 256;
                                                   },
                                                   {.odd_head_dim_ok = false, .min_seq = 9}));
  v.push_back(make_case<Press<Knorm, TopK, ChunkKV>>("chunkkv(knorm, chunk_length=5)",
                                                    [](auto& p) { p.granularity.chunk_length = 5; },
                                                    {.token_local = true, .tol = chunked(5)}));
  v.push_back(make_case<Press<Knorm, TopK, ChunkKV>>("chunkkv(knorm, chunk_length=1024)",
                                                    [](auto& p) { p.granularity.chunk_length = 1024; },
                                                    {.token_local = true, .tol = chunked(1024)}));
  v.push_back(make_case<Press<SnapKV, TopK, ChunkKV>>("chunkkv(snapkv(window_size=8), chunk_length=20)",
                                                     [](auto& p) {
                                                       p.scorer.window_size = 8;
                                                       p.granularity.chunk_length = 20;
                                                     },
                                                     {.odd_head_dim_ok = false, .min_seq = 9, .tol = chunked(20)}));
  v.push_back(make_case<Press<Knorm, TopK, Block>>("block(knorm, block_size=8)",
                                                  [](auto& p) { p.granularity.block_size = 8; },
                                                  {.token_local = true}));
  v.push_back(make_case<Press<Knorm, TopK, Block>>("block(knorm)", [](auto&) {}, {.token_local = true}));
  // Set-dependent: every round re-scores the set on the device (block_iterative); 128-token blocks keep the CPU
  // side of S = 40000 to ~160 rounds.
  v.push_back(make_case<Press<KeyDiff, TopK, Block>>("block(keydiff)", [](auto&) {}, {}));
  v.push_back(make_case<Press<Knorm, TopK, Token, ThinK>>("think(knorm, key_channel_compression_ratio=0.5, window_size=8)",
                                                         [](auto& p) {
                                                           std::get<0>(p.post).key_channel_compression_ratio = 0.5;
                                                           std::get<0>(p.post).window_size = 8;
                                                         },
                                                         {.token_local = true}));
  v.push_back(make_case<Press<SnapKV, TopK, Token, ThinK>>(
      "think(snapkv(window_size=8), key_channel_compression_ratio=0.25)",
      [](auto& p) {
        p.scorer.window_size = 8;
        std::get<0>(p.post).key_channel_compression_ratio = 0.25;
      },
      {.odd_head_dim_ok = false, .min_seq = 9}));
  v.push_back(make_case<Press<LagKV, TopK, Token>>("lagkv(n_sink=4, lag_size=8)",
                                                  [](auto& p) { p.scorer.lag_size = 8; },
                                                  {.token_local = true, .tol = exact}));
  v.push_back(make_case<Press<LagKV, TopK, Token>>("lagkv", [](auto&) {}, {.token_local = true, .tol = exact}));
  v.push_back(make_case<Press<LagKV, TopK, Token>>("lagkv(lag_size=16, cross_scoring=true)",
                                                  [](auto& p) {
                                                    p.scorer.lag_size = 16;
                                                    p.scorer.cross_scoring = true;
                                                  },
                                                  {.token_local = true, .tol = exact}));
  return v;
}

struct Shape {
  const char* name;
  int64_t B, Hq, H;
};
const Shape kShapes[] = {{"MHA B=1", 1, 4, 4}, {"GQA B=2", 2, 8, 2}};
const double kRatios[] = {0.0, 0.25, 0.5, 0.9};

}  // namespace

TEST_CASE("cuda executors: the adakv split of flat selections into per-head kept sets (host tensors)", "[gpu][cuda]") {
  // kept_from_flat is torch ops only, so its arithmetic is checked here on CPU tensors: the flat indices AdaKV::select
  // keeps, split back, must give AdaKV's own offsets and positions (empty heads included).
  std::mt19937 rng(11);
  for (const int64_t S : {1, 3, 64, 1000})
    for (const int64_t H : {1, 3, 8})
      for (const double cr : {0.25, 0.5, 0.9})
        for (const double alpha : {0.0, 0.2}) {
          const int64_t B = 2;
          std::vector<float> s(static_cast<size_t>(B * H * S));
          std::normal_distribution<float> normal(0.f, 1.f);
          for (int64_t i = 0; i < B * H * S; ++i) s[i] = normal(rng) + (i / S % H == 1 ? 5.f : 0.f);  // head 1 wins
          KeptSets want;
          AdaKV::select({alpha}, {B, H, S, 1, 4, cr, 0}, s.data(), want);
          std::vector<int32_t> flat;
          int64_t keep = 0;
          for (int64_t b = 0; b < B; ++b) {
            for (int64_t h = 0; h < H; ++h)
              for (const int32_t* p = want.begin(b, h); p != want.begin(b, h) + want.count(b, h); ++p)
                flat.push_back(static_cast<int32_t>(h * S + *p));
            if (b == 0) keep = static_cast<int64_t>(flat.size());
          }
          REQUIRE(static_cast<int64_t>(flat.size()) == B * keep);
          const at::Tensor f = at::from_blob(flat.data(), {B, keep}, at::kInt).clone();
          const KeptSets got = [&] {
            const cuda::DeviceKept k = cuda::kept_from_flat(f, H, S);
            KeptSets out;
            out.reset(B, H);
            const at::Tensor off = k.offsets.contiguous(), pos = k.positions.contiguous();
            std::copy_n(off.data_ptr<int64_t>(), off.numel(), out.offsets.begin());
            out.positions.assign(pos.data_ptr<int32_t>(), pos.data_ptr<int32_t>() + pos.numel());
            return out;
          }();
          INFO("S=" << S << " H=" << H << " cr=" << cr << " alpha=" << alpha);
          CHECK(got.offsets == want.offsets);
          CHECK(got.positions == want.positions);
        }
}

TEST_CASE("cuda executors: selectors keep exactly the CPU selectors' positions on the same scores", "[gpu][cuda]") {
  KVF_SKIP_WITHOUT_GPU();
  std::mt19937 rng(3);
  for (const int64_t S : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{1000}, int64_t{4096}, int64_t{4097},
                          int64_t{40000}, int64_t{131072}})
    for (const auto& sh : kShapes)
      for (int kind = 0; kind < 5; ++kind) {
        if (S == 131072 && kind < 3) continue;  // the large case: few distinct values and normal scores
        const std::vector<float> s = adversarial_scores(kind, sh.B * sh.H * S, rng);
        for (const double cr : {0.25, 0.5, 0.9}) {
          const std::string k = " kind=" + std::to_string(kind);
          const SelectContext c{sh.B, sh.H, S, 2, 4, cr, std::min<int64_t>(8, S - 1)};
          check_selector<TopK>({}, c, s, "topk" + k);
          check_selector<PerLayer>({{0.1, 0.5, 0.95, 0.8}}, c, s, "per_layer" + k);
          check_selector<PyramidKV>({20}, c, s, "pyramidkv" + k);
          for (const double alpha : {0.0, 0.2, 1.0}) check_selector<AdaKV>({alpha}, c, s, "adakv" + k);
        }
      }
}

TEST_CASE("cuda executors: every CUDA press matches the CPU executor (random and adversarial layers)", "[gpu][cuda]") {
  KVF_SKIP_WITHOUT_GPU();
  const std::vector<Case> all = cases();
  for (const auto& sh : kShapes)
    for (const int64_t S : {int64_t{1}, int64_t{7}, int64_t{64}, int64_t{1000}, int64_t{4096}, int64_t{40000},
                            int64_t{131072}})
      for (const bool odd : {false, true}) {  // odd: d = 7 (unaligned rows) for the scorers that allow it
        if (odd && S != 1000) continue;
        const int64_t d = odd ? 7 : (S >= 40000 ? 64 : 32);
        // One layer for every case of this shape (attentions only where they are affordable and needed).
        const uint64_t seed = static_cast<uint64_t>(S * 31 + sh.B + odd);
        const TestLayer L(sh.B, sh.Hq, sh.H, S, d, seed, false);
        std::unique_ptr<TestLayer> LA;
        if (S <= 1000) LA = std::make_unique<TestLayer>(sh.B, sh.Hq, sh.H, S, d, seed, true);
        for (const auto& c : all) {
          if (S == 131072 && !c.token_local) continue;
          if (c.needs_attentions && !LA) continue;  // (B, Hq, S, S) weights
          if (S < c.min_seq) continue;              // validate() rejects it (the registry suite checks that)
          if (odd && !c.odd_head_dim_ok) continue;
          for (const double cr : kRatios) {
            INFO(c.name << " " << sh.name << " S=" << S << " d=" << d << " cr=" << cr);
            CHECK(c.run(c.needs_attentions ? *LA : L, cr) == "");
          }
        }
      }
}

TEST_CASE("cuda executors: adversarial layers (ties, +-0 rows, +-inf keys)", "[gpu][cuda]") {
  KVF_SKIP_WITHOUT_GPU();
  const std::vector<Case> all = cases();
  for (const Inputs kind : {Inputs::Ties, Inputs::SignedZeros, Inputs::Inf})
    for (const int64_t S : {int64_t{64}, int64_t{1000}, int64_t{4097}}) {
      const uint64_t seed = static_cast<uint64_t>(S + 17);
      const TestLayer L(2, 8, 2, S, 16, seed, false, kind);
      std::unique_ptr<TestLayer> LA;
      if (S <= 1000) LA = std::make_unique<TestLayer>(2, 8, 2, S, 16, seed, true, kind);
      for (const auto& c : all) {
        if (c.needs_attentions && !LA) continue;
        for (const double cr : {0.25, 0.5, 0.9}) {
          INFO(c.name << " inputs=" << static_cast<int>(kind) << " S=" << S << " cr=" << cr);
          CHECK(c.run(c.needs_attentions ? *LA : L, cr) == "");
        }
      }
    }
}

// ---- host checks of what the new device paths rely on (no GPU needed) ------------------------------------------

TEST_CASE("cuda executors: ThinK::channel_pruned picks smallest_channels' channels (NaN, +-0, ties)", "[gpu][cuda]") {
  std::mt19937 rng(21);
  for (int kind = 0; kind < 5; ++kind)
    for (const int64_t d : {1, 7, 16, 128})
      for (int64_t m = 0; m <= d; m += std::max<int64_t>(1, d / 5)) {
        const std::vector<float> s = adversarial_scores(kind, d, rng);
        std::vector<int32_t> want;
        postops::ThinK::smallest_channels(s.data(), d, m, want);
        std::vector<int32_t> got;
        for (int64_t c = 0; c < d; ++c)
          if (postops::ThinK::channel_pruned(s.data(), d, m, c)) got.push_back(static_cast<int32_t>(c));
        INFO("kind=" << kind << " d=" << d << " m=" << m);
        CHECK(got == want);
      }
}

TEST_CASE("cuda executors: rope_channel is rope_in_place channel by channel, bitwise", "[gpu][cuda]") {
  std::mt19937 rng(22);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const int64_t d : {1, 2, 7, 8, 64, 129}) {
    std::vector<float> x(static_cast<size_t>(d)), cs(x.size()), sn(x.size());
    for (int64_t c = 0; c < d; ++c) x[c] = normal(rng), cs[c] = normal(rng), sn[c] = normal(rng);
    std::vector<float> y = x;
    scorers::detail::rope_in_place(y.data(), cs.data(), sn.data(), d);
    for (int64_t c = 0; c < d; ++c) {
      const float v = scorers::detail::rope_channel(x.data(), cs.data(), sn.data(), d, c);
      CHECK(std::memcmp(&v, &y[c], sizeof v) == 0);
    }
  }
}

TEST_CASE("cuda executors: block's token-local rounds keep top_n_positions' set (the CUDA block executor's premise)",
          "[gpu][cuda]") {
  // Block::run_token_local (stable merges, round by round) against one top-n over the layer's scores, on keys whose
  // norms tie often (few distinct rows), have +-0 rows, or are random.
  std::mt19937 rng(23);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_int_distribution<int> few(0, 2);
  for (int kind = 0; kind < 3; ++kind)
    for (const int64_t S : {1, 7, 64, 1000})
      for (const int64_t bs : {1, 3, 8, 128, 5000})
        for (const double cr : {0.1, 0.25, 0.5, 0.9}) {
          const int64_t B = 2, H = 2, d = 4;
          std::vector<float> K(static_cast<size_t>(B * H * S * d));
          for (size_t i = 0; i < K.size(); ++i)
            K[i] = kind == 0 ? static_cast<float>(few(rng)) : kind == 1 ? ((i / d) % 2 ? 0.f : -0.f) : normal(rng);
          LayerInputs in;
          in.batch = B, in.q_heads = H, in.kv_heads = H, in.seq = in.seq_stride = S, in.head_dim = d;
          in.keys = K.data(), in.values = K.data();
          in.compression_ratio = cr;
          const SelectContext ctx{B, H, S, 0, 1, cr, 0};
          std::vector<float> scores;
          KeptSets kept;
          Block::run<scorers::Knorm, TopK>({bs}, {}, {}, in, ctx, scores, kept);
          const int64_t n = std::clamp<int64_t>(n_kept(S, cr), 0, S);
          std::vector<float> ls(static_cast<size_t>(B * H * S));
          score_layer<scorers::Knorm>({}, in, ls.data());
          TopNScratch idx;
          std::vector<int32_t> top(static_cast<size_t>(n));
          for (int64_t i = 0; i < B * H; ++i) {
            top_n_positions(ls.data() + i * S, S, n, idx, top.data());
            INFO("kind=" << kind << " S=" << S << " bs=" << bs << " cr=" << cr << " head=" << i);
            CHECK(std::vector<int32_t>(kept.positions.begin() + kept.offsets[i],
                                       kept.positions.begin() + kept.offsets[i + 1]) == top);
          }
        }
}
