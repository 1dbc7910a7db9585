#pragma once
// Host-side dense kernels for the fused CPU policies: Eigen maps over raw row-major float pointers, vectorised
// and single-threaded (the executor already threads across heads). No torch. Device code keeps the scalar
// KVF_HOST_DEVICE helpers; only host score functions call these.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

namespace kvf::dense {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const RowMat, 0, Eigen::OuterStride<>>;
using MutMap = Eigen::Map<RowMat, 0, Eigen::OuterStride<>>;

// C (m x n, row stride ldc) = A (m x k, row stride lda) * B^T, B being (n x k, row stride ldb).
inline void gemm_nt(const float* A, int64_t m, int64_t k, int64_t lda, const float* B, int64_t n, int64_t ldb,
                    float* C, int64_t ldc) {
  ConstMap a(A, m, k, Eigen::OuterStride<>(lda));
  ConstMap b(B, n, k, Eigen::OuterStride<>(ldb));
  MutMap c(C, m, n, Eigen::OuterStride<>(ldc));
  c.noalias() = a * b.transpose();
}

// C (k x k) = A^T A / scale, A (m x k) contiguous.
inline void gram(const float* A, int64_t m, int64_t k, float scale, float* C) {
  ConstMap a(A, m, k, Eigen::OuterStride<>(k));
  MutMap c(C, k, k, Eigen::OuterStride<>(k));
  c.noalias() = a.transpose() * a;
  c /= scale;
}

// Reductions in a fixed order: 16 lanes (element i goes to lane i % 16), then a fixed tree, then the tail.
// Not Eigen's sum(): Eigen peels scalars up to the first aligned address, so the rounding of its sums depends on
// where a buffer happens to sit, and the same press on the same input scored differently from one call to the
// next (snapkv, tova, expected_attention: ~1e-8, enough to flip a near-tie). The compiler vectorises the lanes.
namespace detail {
inline float fold16(float* acc) {
  for (int w = 8; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}
}  // namespace detail

inline float sum(const float* x, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += x[i + j];
  float tail = 0.f;
  for (; i < n; ++i) tail += x[i];
  return detail::fold16(acc) + tail;
}

inline float dot(const float* x, const float* y, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += x[i + j] * y[i + j];
  float tail = 0.f;
  for (; i < n; ++i) tail += x[i] * y[i];
  return detail::fold16(acc) + tail;
}

// out[i] = A[i, :] . x for A (m x k) contiguous (a GEMV with a fixed order, see sum()).
inline void gemv_rows(const float* A, int64_t m, int64_t k, const float* x, float* out) {
  for (int64_t i = 0; i < m; ++i) out[i] = dot(A + i * k, x, k);
}

// out[i] = ||A[i, :]||_2 for A (m x k) contiguous (or negated: knorm's score; -0 for a zero key, as kvpress's
// -norm and the device kernel give).
inline void row_norms(const float* A, int64_t m, int64_t k, float* out, bool negate = false) {
  for (int64_t i = 0; i < m; ++i) {
    const float r = std::sqrt(dot(A + i * k, A + i * k, k));
    out[i] = negate ? -r : r;
  }
}

// z[0..n) <- softmax(z / divisor) (max-subtracted; -inf entries give 0), fixed-order sum (see sum()).
// Every entry goes through Eigen's packet exp, the tail through a padded packet: Eigen's own `a.exp()` takes the
// scalar std::exp for the entries before the first aligned address, which rounds differently.
inline void softmax_in_place(float* z, int64_t n, float divisor = 1.f) {
  namespace ei = Eigen::internal;
  using Packet = ei::packet_traits<float>::type;
  constexpr int64_t P = ei::unpacket_traits<Packet>::size;
  if (divisor != 1.f)
    for (int64_t i = 0; i < n; ++i) z[i] /= divisor;
  float lanes[16];
  std::fill(lanes, lanes + 16, -INFINITY);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int j = 0; j < 16; ++j) lanes[j] = std::max(lanes[j], z[k + j]);  // a max is exact: any order
  float mx = *std::max_element(lanes, lanes + 16);
  for (; k < n; ++k) mx = std::max(mx, z[k]);
  const Packet m = ei::pset1<Packet>(mx);
  int64_t i = 0;
  for (; i + P <= n; i += P) ei::pstoreu(z + i, ei::pexp(ei::psub(ei::ploadu<Packet>(z + i), m)));
  if (i < n) {
    float pad[P];
    for (int64_t j = 0; j < P; ++j) pad[j] = i + j < n ? z[i + j] : mx;
    ei::pstoreu(pad, ei::pexp(ei::psub(ei::ploadu<Packet>(pad), m)));
    for (int64_t j = 0; i + j < n; ++j) z[i + j] = pad[j];
  }
  const float inv = 1.f / sum(z, n);
  for (int64_t j = 0; j < n; ++j) z[j] *= inv;
}

}  // namespace kvf::dense
