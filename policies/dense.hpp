#pragma once
// Host-side dense kernels for the fused CPU policies: Eigen maps over raw row-major float pointers, vectorised
// and single-threaded (the executor already threads across heads). No torch. Device code keeps the scalar
// KVF_HOST_DEVICE helpers; only host score functions call these.
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

// out[i] = ||A[i, :]||_2 for A (m x k) contiguous (or negated: knorm's score).
inline void row_norms(const float* A, int64_t m, int64_t k, float* out, bool negate = false) {
  ConstMap a(A, m, k, Eigen::OuterStride<>(k));
  Eigen::Map<Eigen::VectorXf> o(out, m);
  o = a.rowwise().norm();
  // A plain loop, not Eigen's `-o`: Eigen's packet negation may compute 0 - x, which turns a zero key's -0 into +0
  // depending on its place in the packet (kvpress's -norm, and the device kernel, give -0 for every zero key).
  if (negate)
    for (int64_t i = 0; i < m; ++i) out[i] = -out[i];
}

// z[0..n) <- softmax(z / divisor) (max-subtracted; -inf entries give 0), vectorised exp.
inline void softmax_in_place(float* z, int64_t n, float divisor = 1.f) {
  Eigen::Map<Eigen::ArrayXf> a(z, n);
  if (divisor != 1.f) a /= divisor;
  const float mx = a.maxCoeff();
  a = (a - mx).exp();
  a *= 1.f / a.sum();
}

}  // namespace kvf::dense
