// Torch-free checks of the kvpress scorers on small, hand-checkable cases: worked examples from the kvpress
// semantics notes, protection windows, the attention-weights path of snapkv/tova against the recomputed one,
// and the seeded random draw against values printed by torch 2.11 (torch.rand with a seeded CPU generator).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/cpu/executor.hpp"
#include "policies/granularity/token.hpp"
#include "policies/scorers/expected_attention.hpp"
#include "policies/scorers/keydiff.hpp"
#include "policies/scorers/lagkv.hpp"
#include "policies/scorers/observed_attention.hpp"
#include "policies/scorers/random.hpp"
#include "policies/scorers/snapkv.hpp"
#include "policies/scorers/streaming_llm.hpp"
#include "policies/scorers/tova.hpp"
#include "policies/selectors/topk.hpp"

using namespace kvf;

namespace {

// A layer with everything the query-recomputing scorers read: hidden states, q_proj, keys/values, RoPE tables
// for positions 0 .. T-1 (default RoPE, theta 10000).
struct Layer {
  std::vector<float> hidden, q_proj, keys, values, cos, sin, inv_freq, attentions;
  LayerInputs in;
  Layer(int64_t B, int64_t Hq, int64_t H, int64_t S, int64_t d, int64_t D, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.f, 1.f);
    auto fill = [&](std::vector<float>& v, size_t size, float scale) {
      v.resize(size);
      for (auto& x : v) x = n(rng) * scale;
    };
    fill(hidden, static_cast<size_t>(B * S * D), 1.f);
    fill(q_proj, static_cast<size_t>(Hq * d * D), 1.f / std::sqrt(static_cast<float>(D)));
    fill(keys, static_cast<size_t>(B * H * S * d), 1.f);
    fill(values, keys.size(), 1.f);
    inv_freq.resize(static_cast<size_t>(d / 2));
    for (int64_t c = 0; c < d / 2; ++c)
      inv_freq[c] = 1.f / std::pow(10000.f, static_cast<float>(2 * c) / static_cast<float>(d));
    cos.resize(static_cast<size_t>(B * S * d));
    sin.resize(cos.size());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < S; ++t)
        for (int64_t c = 0; c < d; ++c) {
          const float f = static_cast<float>(t) * inv_freq[c % (d / 2)];
          cos[(b * S + t) * d + c] = std::cos(f);
          sin[(b * S + t) * d + c] = std::sin(f);
        }
    in.batch = B;
    in.q_heads = Hq;
    in.kv_heads = H;
    in.seq = in.seq_stride = in.tokens = in.token_stride = in.rope_rows = S;
    in.head_dim = d;
    in.hidden = D;
    in.num_layers = 4;
    in.hidden_states = hidden.data();
    in.q_proj = q_proj.data();
    in.keys = keys.data();
    in.values = values.data();
    in.cos = cos.data();
    in.sin = sin.data();
    in.inv_freq = inv_freq.data();
  }
  // Causal softmax attention weights (B, Hq, T, S) of the recomputed post-RoPE queries.
  void make_attentions() {
    const int64_t B = in.batch, Hq = in.q_heads, S = in.seq, d = in.head_dim, G = in.group();
    attentions.assign(static_cast<size_t>(B * Hq * S * S), 0.f);
    std::vector<float> q(static_cast<size_t>(d)), z(static_cast<size_t>(S));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = 0; j < Hq; ++j)
        for (int64_t i = 0; i < S; ++i) {
          scorers::detail::prerope_query(in, in.hidden_row(b, i), j, q.data());
          scorers::detail::rope_in_place(q.data(), in.cos_row(b, i), in.sin_row(b, i), d);
          for (int64_t t = 0; t <= i; ++t)
            z[t] = scorers::detail::dot(q.data(), in.key(b, j / G) + t * d, d) / std::sqrt(static_cast<float>(d));
          scorers::detail::softmax_in_place(z.data(), i + 1);
          std::copy(z.begin(), z.begin() + i + 1, attentions.begin() + ((b * Hq + j) * S + i) * S);
        }
    in.attentions = attentions.data();
  }
};

template <class Sc>
std::vector<float> layer_scores(const typename Sc::Params& p, const LayerInputs& in, double cr = 0.5) {
  LayerInputs x = in;
  x.compression_ratio = cr;
  Sc::validate(p, x);
  std::vector<float> s(static_cast<size_t>(in.batch * in.kv_heads * in.seq));
  score_layer<Sc>(p, x, s.data());
  return s;
}

template <class Sc>
PressOutput compress(const typename Sc::Params& sp, const LayerInputs& in, double cr) {
  using P = Press<Sc, selectors::TopK, granularity::Token>;
  typename P::Params p;
  p.compression_ratio = cr;
  p.scorer = sp;
  PressOutput out;
  CpuExecutor<P>::run(p, in, out);
  return out;
}

std::vector<int32_t> kept(const PressOutput& out, int64_t b, int64_t h) {
  return {out.kept.begin(b, h), out.kept.begin(b, h) + out.kept.count(b, h)};
}

}  // namespace

TEST_CASE("streaming_llm keeps the sinks and the most recent window (kvpress worked example)", "[press][scorers]") {
  Layer l(1, 2, 2, 10, 4, 8, 1);
  auto out = compress<scorers::StreamingLLM>({.n_sink = 4}, l.in, 0.5);  // n_kept 5, zeros at 4 .. 8
  for (int64_t h = 0; h < 2; ++h) CHECK(kept(out, 0, h) == std::vector<int32_t>{0, 1, 2, 3, 9});
  CHECK(out.scores == std::vector<float>{1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1});
  // cr = 0.8: n_kept = int(10 * 0.19999999999999996) = 1, zeros clipped at S: only the sinks score 1.
  auto s = layer_scores<scorers::StreamingLLM>({.n_sink = 4}, l.in, 0.8);
  CHECK(std::vector<float>(s.begin(), s.begin() + 10) == std::vector<float>{1, 1, 1, 1, 0, 0, 0, 0, 0, 0});
  Layer shorter(1, 2, 2, 4, 4, 8, 1);
  CHECK_THROWS_AS(compress<scorers::StreamingLLM>({.n_sink = 4}, shorter.in, 0.5), Error);
}

TEST_CASE("random with a seed reproduces torch's CPU draw, the same on every call", "[press][scorers]") {
  // torch.Generator().manual_seed(42); torch.rand(2, 3, 5, generator=g): flat values 0..5
  Layer l(2, 3, 3, 5, 4, 8, 1);
  auto s = layer_scores<scorers::Random>({.seed = 42}, l.in);
  const std::vector<float> torch_values{0.8822692632675171f, 0.9150039553642273f, 0.38286375999450684f,
                                        0.9593056440353394f, 0.3904482126235962f, 0.600895345211029f};
  CHECK(std::vector<float>(s.begin(), s.begin() + 6) == torch_values);
  l.in.layer = 3;
  CHECK(layer_scores<scorers::Random>({.seed = 42}, l.in) == s);  // every layer gets the same draw
  CHECK(layer_scores<scorers::Random>({.seed = 43}, l.in) != s);
  // seed 2^40 + 7 uses its low 32 bits, as torch's mt19937 does; value 2997 of torch.rand(3000)
  Layer big(1, 1, 1, 3000, 4, 8, 1);
  CHECK(layer_scores<scorers::Random>({.seed = (int64_t{1} << 40) + 7}, big.in)[2997] == 0.2315831184387207f);
  auto u1 = layer_scores<scorers::Random>({}, big.in), u2 = layer_scores<scorers::Random>({}, big.in);
  CHECK(u1 != u2);  // seed None: a fresh draw per call
  CHECK(*std::min_element(u1.begin(), u1.end()) >= 0.f);
  CHECK(*std::max_element(u1.begin(), u1.end()) < 1.f);
}

TEST_CASE("avg_pool1d as kvpress's SnapKV smoothing: zero padding, divided by k at the edges", "[press][scorers]") {
  std::vector<float> ones(6, 1.f), out(6);
  scorers::SnapKV::avg_pool(ones.data(), 6, 5, out.data());
  const std::vector<float> expect{0.6f, 0.8f, 1.f, 1.f, 0.8f, 0.6f};
  for (size_t i = 0; i < 6; ++i) CHECK(out[i] == Approx(expect[i]));
}

TEST_CASE("snapkv protects its window and matches the eager-attention path", "[press][scorers]") {
  Layer l(2, 4, 2, 30, 8, 16, 7);
  const scorers::SnapKV::Params p{.window_size = 6, .kernel_size = 3};
  auto recomputed = layer_scores<scorers::SnapKV>(p, l.in);
  float mx = -1e30f;
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t t = 0; t < 24; ++t) mx = std::max(mx, recomputed[i * 30 + t]);
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t t = 24; t < 30; ++t) CHECK(recomputed[i * 30 + t] == mx + 1.f);
  auto out = compress<scorers::SnapKV>(p, l.in, 0.5);  // keeps 15 >= 6: the window is always kept
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 2; ++h) {
      auto k = kept(out, b, h);
      for (int32_t t = 24; t < 30; ++t) CHECK(std::find(k.begin(), k.end(), t) != k.end());
    }
  l.make_attentions();
  auto eager = layer_scores<scorers::SnapKV>(p, l.in);
  for (size_t i = 0; i < eager.size(); ++i) CHECK(eager[i] == Approx(recomputed[i]).epsilon(1e-4));
  // Scores are attention shares: mean of w rows, pooled, averaged -> each in [0, 1].
  for (int64_t t = 0; t < 24; ++t) CHECK((recomputed[t] >= 0.f && recomputed[t] <= 1.f));
  Layer tiny(1, 2, 2, 6, 8, 16, 1);
  CHECK_THROWS_AS(compress<scorers::SnapKV>(p, tiny.in, 0.5), Error);  // needs more tokens than the window
  CHECK_THROWS_AS(compress<scorers::SnapKV>({.window_size = 6, .kernel_size = 4}, l.in, 0.5), Error);
}

TEST_CASE("tova: the same scores for every kv head, last token protected, eager path agrees", "[press][scorers]") {
  Layer l(1, 6, 3, 20, 8, 16, 3);
  auto s = layer_scores<scorers::TOVA>({}, l.in);
  for (int64_t h = 1; h < 3; ++h)
    for (int64_t t = 0; t < 20; ++t) CHECK(s[h * 20 + t] == s[t]);
  CHECK(s[19] == *std::max_element(s.begin(), s.begin() + 19) + 1.f);
  // the last query's attention over keys 0 .. 18, averaged over all 6 heads: sums to 1 minus the last column
  const float total = std::accumulate(s.begin(), s.begin() + 19, 0.f);
  CHECK(total < 1.f);
  CHECK(total > 0.f);
  l.make_attentions();
  auto eager = layer_scores<scorers::TOVA>({}, l.in);
  for (size_t i = 0; i < eager.size(); ++i) CHECK(eager[i] == Approx(s[i]).epsilon(1e-4));
}

TEST_CASE("observed_attention: column sums over the queries that see each key, GQA mean", "[press][scorers]") {
  Layer l(1, 2, 1, 3, 4, 8, 1);
  // head 0: uniform causal attention; head 1: every query attends only to key 0
  l.attentions = {1, 0, 0, 0.5f, 0.5f, 0, 1.f / 3, 1.f / 3, 1.f / 3,  //
                  1, 0, 0, 1, 0, 0, 1, 0, 0};
  l.in.attentions = l.attentions.data();
  auto s = layer_scores<scorers::ObservedAttention>({}, l.in);
  const float h0[3] = {(1 + 0.5f + 1.f / 3) / 3, (0.5f + 1.f / 3) / 2, 1.f / 3};
  const float h1[3] = {3.f / 3, 0, 0};
  for (int t = 0; t < 3; ++t) CHECK(s[t] == Approx((h0[t] + h1[t]) / 2));
  l.in.attentions = nullptr;
  CHECK_THROWS_AS(compress<scorers::ObservedAttention>({}, l.in, 0.5), Error);
}

TEST_CASE("keydiff: minus the cosine with the mean unit key", "[press][scorers]") {
  Layer l(1, 1, 1, 3, 2, 8, 1);
  l.keys = {2, 0, 1, 0, 0, 3};  // unit keys (1,0), (1,0), (0,1): anchor (2/3, 1/3)
  l.in.keys = l.keys.data();
  auto s = layer_scores<scorers::KeyDiff>({}, l.in);
  CHECK(s[0] == Approx(-2 / std::sqrt(5.f)));
  CHECK(s[1] == Approx(-2 / std::sqrt(5.f)));
  CHECK(s[2] == Approx(-1 / std::sqrt(5.f)));
  auto out = compress<scorers::KeyDiff>({}, l.in, 0.5);  // keeps int(1.5) = 1: the odd one out
  CHECK(kept(out, 0, 0) == std::vector<int32_t>{2});
}

TEST_CASE("lagkv: short caches fall back to a recency ramp; long ones rank inside partitions", "[press][scorers]") {
  {
    Layer l(1, 1, 1, 19, 4, 8, 1);  // 19 < n_sink + 2 * lag = 20
    auto s = layer_scores<scorers::LagKV>({.n_sink = 4, .lag_size = 8}, l.in);
    for (int t = 0; t < 4; ++t) CHECK(s[t] == 1.f);
    for (int i = 0; i < 15; ++i) CHECK(s[4 + i] == static_cast<float>(i) / 15.f);
  }
  // n_sink 4, lag 8, S 37: 4 partitions [4,12) [12,20) [20,28) [28,36) -> 3 scored; tail [28, 37) protected
  Layer l(2, 2, 2, 37, 8, 8, 5);
  for (bool cross : {false, true}) {
    auto s = layer_scores<scorers::LagKV>({.n_sink = 4, .lag_size = 8, .cross_scoring = cross}, l.in);
    for (int64_t i = 0; i < 4; ++i) {
      const float* x = s.data() + i * 37;
      for (int t = 0; t < 4; ++t) CHECK(x[t] == 1.f);
      for (int t = 28; t < 37; ++t) CHECK(x[t] == 1.f);
      for (int part = 0; part < 3; ++part) {
        std::vector<float> v(x + 4 + part * 8, x + 12 + part * 8);
        if (cross) {  // (softmax_K + softmax_V) / 2 sums to 1 per partition
          CHECK(std::accumulate(v.begin(), v.end(), 0.f) == Approx(1.f));
        } else {  // one token per rank level r / 8
          std::sort(v.begin(), v.end());
          for (int r = 0; r < 8; ++r) CHECK(v[r] == static_cast<float>(r) / 8.f);
        }
      }
    }
  }
}

TEST_CASE("expected_attention: one future position and one query reduce to RoPE'd dot-product attention",
          "[press][scorers]") {
  // T = n_sink + 1: the statistics are a single query (mu = q, Sigma = 0); n_future = 1 rotates it to position T.
  const int64_t S = 9, d = 8, sink = 8;
  Layer l(1, 2, 1, S, d, 16, 11);
  const scorers::ExpectedAttention::Params p{.n_future_positions = 1, .n_sink = sink, .use_covariance = false};
  auto s = layer_scores<scorers::ExpectedAttention>(p, l.in);
  // only key 8 is scored: its softmax over one key is 1, times |v_8|
  float vn = 0.f;
  for (int64_t c = 0; c < d; ++c) vn += l.values[8 * d + c] * l.values[8 * d + c];
  CHECK(s[8] == Approx(std::sqrt(vn)));
  for (int t = 0; t < sink; ++t) CHECK(s[t] == s[8] + 1.f);
  // with more keys: 2 sinks, keys 2 .. 8 scored, queries only from token 2 .. 8 (7 of them), no vnorm
  const scorers::ExpectedAttention::Params p2{.n_future_positions = 1, .n_sink = 2, .use_covariance = false,
                                              .use_vnorm = false};
  auto s2 = layer_scores<scorers::ExpectedAttention>(p2, l.in);
  // independent: mean pre-RoPE query per head, rotated to position S with explicit cos/sin, softmax over keys
  std::vector<float> expect(S, 0.f), q(d), mu(d);
  for (int64_t j = 0; j < 2; ++j) {
    std::fill(mu.begin(), mu.end(), 0.f);
    for (int64_t t = 2; t < S; ++t) {
      scorers::detail::prerope_query(l.in, l.in.hidden_row(0, t), j, q.data());
      for (int64_t c = 0; c < d; ++c) mu[c] += q[c] / 7.f;
    }
    std::vector<float> rot(d), z(S - 2);
    for (int64_t c = 0; c < d / 2; ++c) {
      const float f = static_cast<float>(S) * l.inv_freq[c];
      rot[c] = mu[c] * std::cos(f) - mu[c + d / 2] * std::sin(f);
      rot[c + d / 2] = mu[c + d / 2] * std::cos(f) + mu[c] * std::sin(f);
    }
    for (int64_t t = 2; t < S; ++t) z[t - 2] = scorers::detail::dot(rot.data(), l.keys.data() + t * d, d) / std::sqrt(8.f);
    scorers::detail::softmax_in_place(z.data(), S - 2);
    for (int64_t t = 2; t < S; ++t) expect[t] += z[t - 2] / 2.f;
  }
  for (int64_t t = 2; t < S; ++t) CHECK(s2[t] == Approx(expect[t]).epsilon(1e-4));
  CHECK(std::accumulate(s2.begin() + 2, s2.end(), 0.f) == Approx(1.f));  // a GQA mean of softmaxes
  auto with_cov = layer_scores<scorers::ExpectedAttention>({.n_future_positions = 16, .n_sink = 2}, l.in);
  for (float x : with_cov) CHECK(std::isfinite(x));
  Layer shorter(1, 2, 1, 4, d, 16, 1);
  CHECK_THROWS_AS(compress<scorers::ExpectedAttention>({}, shorter.in, 0.5), Error);  // S <= n_sink
}
