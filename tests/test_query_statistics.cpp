// kernels/query_statistics.hpp: expected_attention's query mean/covariance, by projecting every row (Direct,
// kvpress's order) or through the hidden rows' covariance (Gram, linear projections only). Both against a float64
// evaluation of kvpress's formula; the block-symmetric Gram against X^T X; q_norm forces Direct; the cost model's
// choice for the Llama-3.1-8B shape.
#include <catch2/catch.hpp>

#include <ATen/ATen.h>

#include "kernels/query_statistics.hpp"

using namespace kvf;

namespace {

// max |a - b| / max |b| (b the float64 truth).
double rel_err(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b).abs().max().item<double>() / b.abs().max().item<double>();
}

struct Layer {
  at::Tensor hidden, q_proj, q_bias, q_norm;
  Layer(int64_t B, int64_t T, int64_t D, int64_t Hq, int64_t d, uint64_t seed) {
    at::manual_seed(seed);
    // A mean offset per channel (like real hidden states) so centring matters.
    hidden = at::randn({B, T, D}) + 3.0 * at::randn({1, 1, D});
    q_proj = at::randn({Hq * d, D}) / std::sqrt(static_cast<double>(D));
    q_bias = at::randn({Hq * d});
    q_norm = at::rand({d}) + 0.5;
  }
};

// kvpress's get_query_statistics in float64.
std::pair<at::Tensor, at::Tensor> truth(const Layer& L, const at::Tensor& bias, const at::Tensor& norm, int64_t Hq,
                                        int64_t t0, int64_t rows) {
  const at::Tensor h = L.hidden.to(at::kDouble).narrow(1, t0, rows);
  at::Tensor q = at::matmul(h, L.q_proj.to(at::kDouble).t());
  if (bias.defined()) q = q + bias.to(at::kDouble);
  const int64_t B = h.size(0), d = L.q_proj.size(0) / Hq;
  q = q.view({B, rows, Hq, d});
  if (norm.defined()) q = norm.to(at::kDouble) * (q * at::rsqrt(q.pow(2).mean(-1, true) + 1e-6));
  q = q.permute({0, 2, 1, 3});
  const at::Tensor mu = q.mean(2);
  const at::Tensor c = q - mu.unsqueeze(2);
  return {mu, at::matmul(c.transpose(2, 3), c) / static_cast<double>(rows)};
}

}  // namespace

TEST_CASE("query statistics: Direct and Gram both match kvpress's formula in float64", "[query-stats]") {
  const int64_t Hq = 6, d = 16, D = 1100, T = 700, t0 = 4;  // D > 512: several Gram blocks, one partial
  const Layer L(2, T, D, Hq, d, 7);
  for (const bool with_bias : {false, true}) {
    const at::Tensor bias = with_bias ? L.q_bias : at::Tensor();
    const auto [mu, cov] = truth(L, bias, at::Tensor(), Hq, t0, T - t0);
    for (const auto path : {QueryStatsPath::Direct, QueryStatsPath::Gram}) {
      INFO("bias " << with_bias << " path " << (path == QueryStatsPath::Gram ? "gram" : "direct"));
      const QueryStatistics s = query_statistics(L.hidden, L.q_proj, bias, at::Tensor(), 1e-6, Hq, t0, T - t0, true, path);
      REQUIRE(s.mean.sizes() == mu.sizes());
      REQUIRE(s.covariance.sizes() == cov.sizes());
      CHECK(rel_err(s.mean, mu) < 1e-5);
      CHECK(rel_err(s.covariance, cov) < 1e-4);
      const QueryStatistics m = query_statistics(L.hidden, L.q_proj, bias, at::Tensor(), 1e-6, Hq, t0, T - t0, false, path);
      CHECK(rel_err(m.mean, mu) < 1e-5);
      CHECK(!m.covariance.defined());
    }
  }
}

TEST_CASE("query statistics: q_norm is not linear, so every path projects the rows", "[query-stats]") {
  const int64_t Hq = 4, d = 8, D = 64, T = 300;
  const Layer L(1, T, D, Hq, d, 9);
  const auto [mu, cov] = truth(L, L.q_bias, L.q_norm, Hq, 0, T);
  for (const auto path : {QueryStatsPath::Auto, QueryStatsPath::Gram, QueryStatsPath::Direct}) {
    const QueryStatistics s = query_statistics(L.hidden, L.q_proj, L.q_bias, L.q_norm, 1e-6, Hq, 0, T, true, path);
    CHECK(rel_err(s.mean, mu) < 1e-5);
    CHECK(rel_err(s.covariance, cov) < 1e-4);
  }
}

TEST_CASE("query statistics: the block-symmetric Gram is X^T X, mirrored exactly", "[query-stats]") {
  at::manual_seed(3);
  const at::Tensor X = at::randn({257, 100});
  for (const int64_t block : {int64_t{1}, int64_t{33}, int64_t{100}, int64_t{512}}) {
    const at::Tensor C = symmetric_gram(X, block);
    CHECK(rel_err(C, at::matmul(X.to(at::kDouble).t(), X.to(at::kDouble))) < 1e-5);
    CHECK(at::equal(C, C.t()));
  }
}

TEST_CASE("query statistics: Auto's cost model on the Llama-3.1-8B shape", "[query-stats]") {
  // hidden 4096, 32 query heads of 128, 512-column blocks: Gram does 0.67x Direct's multiply-adds at 32k rows and
  // 0.58x at 128k; at 8k it would do more (1.05x), so Direct stays.
  auto ratio = [](int64_t N) {
    const auto [direct, gram] = query_stats_costs(N, 4096, 32, 128, 512);
    return gram / direct;
  };
  CHECK(ratio(32768) == Approx(0.670).epsilon(0.01));
  CHECK(ratio(131072) == Approx(0.577).epsilon(0.01));
  CHECK(ratio(8192) > 1.0);
}
