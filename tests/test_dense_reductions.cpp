// policies/dense.hpp's reductions give the same bits wherever the buffer sits. Eigen's own sum() and exp() peel
// scalar iterations up to the first aligned address, so the same scores came out ~1e-8 apart from one call to
// the next (snapkv, tova, expected_attention), enough to flip a near-tie between runs.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "policies/dense.hpp"

namespace {

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

}  // namespace

TEST_CASE("dense reductions do not depend on the buffer's alignment", "[dense][determinism]") {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 3.f);
  for (int64_t n : {1, 5, 15, 16, 17, 37, 100, 1000, 8191}) {
    std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
    for (auto& v : x) v = nd(rng);
    for (auto& v : y) v = nd(rng);
    // Reference results at offset 0 of a fresh buffer, then the same data at every float offset up to 16.
    std::vector<float> buf(static_cast<size_t>(2 * n + 64));
    std::memcpy(buf.data(), x.data(), sizeof(float) * n);
    const float s0 = kvf::dense::sum(buf.data(), n);
    std::memcpy(buf.data() + n + 32, y.data(), sizeof(float) * n);
    const float d0 = kvf::dense::dot(buf.data(), buf.data() + n + 32, n);
    std::vector<float> sm0 = x;
    kvf::dense::softmax_in_place(sm0.data(), n, 11.3137f);
    float sm_sum = 0.f;
    for (float v : sm0) sm_sum += v;
    CHECK(std::abs(sm_sum - 1.f) < 1e-4f);  // it is a softmax
    double exact = 0.0;
    for (float v : x) exact += v;
    CHECK(std::abs(s0 - exact) <= 1e-4 * (1.0 + std::abs(exact)));  // and a sum
    for (int off = 1; off < 16; ++off) {
      INFO("n = " << n << ", offset " << off << " floats");
      float* a = buf.data() + off;
      std::memcpy(a, x.data(), sizeof(float) * n);
      CHECK(bits(kvf::dense::sum(a, n)) == bits(s0));
      float* b = a + n + 32 - (off % 3);
      std::memcpy(b, y.data(), sizeof(float) * n);
      CHECK(bits(kvf::dense::dot(a, b, n)) == bits(d0));
      kvf::dense::softmax_in_place(a, n, 11.3137f);
      CHECK(std::memcmp(a, sm0.data(), sizeof(float) * n) == 0);
    }
  }
}

TEST_CASE("row_norms: fixed order, and -0 for a zero key when negated", "[dense][determinism]") {
  const int64_t m = 9, k = 37;
  std::vector<float> A(static_cast<size_t>(m * k));
  for (int64_t i = 0; i < m * k; ++i) A[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i));
  for (int64_t j = 0; j < k; ++j) A[static_cast<size_t>(4 * k + j)] = 0.f;  // a zero key
  std::vector<float> n1(static_cast<size_t>(m)), n2(static_cast<size_t>(m));
  kvf::dense::row_norms(A.data(), m, k, n1.data(), /*negate=*/true);
  for (int64_t i = 0; i < m; ++i) {
    double e = 0.0;
    for (int64_t j = 0; j < k; ++j) e += double(A[static_cast<size_t>(i * k + j)]) * A[static_cast<size_t>(i * k + j)];
    CHECK(std::abs(n1[static_cast<size_t>(i)] + std::sqrt(e)) < 1e-5);
  }
  CHECK(std::signbit(n1[4]));
  CHECK(n1[4] == 0.f);
  std::vector<float> shifted(A.size() + 3);
  std::memcpy(shifted.data() + 3, A.data(), sizeof(float) * A.size());
  kvf::dense::row_norms(shifted.data() + 3, m, k, n2.data(), /*negate=*/true);
  CHECK(std::memcmp(n1.data(), n2.data(), sizeof(float) * m) == 0);
}
