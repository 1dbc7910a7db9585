#pragma once
// KVF_HOST_DEVICE marks policy math that compiles for the CPU executor and, unchanged, for CUDA kernels.
#if defined(__CUDACC__)
#define KVF_HOST_DEVICE __host__ __device__
#else
#define KVF_HOST_DEVICE
#endif

#include <cstdint>
#include <cstring>

namespace kvf {

// Bit patterns of floats and back, the same on the host and in CUDA kernels (std::bit_cast is not device code).
KVF_HOST_DEVICE inline uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
#endif
}
KVF_HOST_DEVICE inline float float_from_bits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
#endif
}
KVF_HOST_DEVICE inline int64_t double_bits(double x) {
#if defined(__CUDA_ARCH__)
  return __double_as_longlong(x);
#else
  int64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
#endif
}

}  // namespace kvf
