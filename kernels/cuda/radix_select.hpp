#pragma once
// The digit arithmetic of the GPU's multi-pass radix select (kernels/cuda/select_topn.cu), shared with a host
// model of the same algorithm (radix_threshold_host) that the host-only tests check against std::nth_element.
// Keys are policies/score_key.hpp keys; digits are 8 bits, most significant first (shifts 24, 16, 8, 0).
#include <cstdint>
#include <vector>

#include "compose/host_device.hpp"

namespace kvf::cuda {

inline constexpr int kRadixBits = 8;
inline constexpr int kRadixBins = 1 << kRadixBits;

// The digit of `key` at `shift`.
KVF_HOST_DEVICE constexpr uint32_t radix_digit(uint32_t key, int shift) { return (key >> shift) & (kRadixBins - 1); }

// Whether `key` is still a candidate at this pass: it agrees with `prefix` on every bit above the digit.
KVF_HOST_DEVICE constexpr bool radix_candidate(uint32_t key, uint32_t prefix, int shift) {
  return shift + kRadixBits >= 32 || ((key ^ prefix) >> (shift + kRadixBits)) == 0u;
}

// Digit `d` holds the k-th largest candidate (k >= 1) when `greater` candidates have a larger digit and
// `count` have digit d: greater < k <= greater + count. The pass then fixes d and continues with k - greater.
KVF_HOST_DEVICE constexpr bool radix_holds_rank(uint32_t greater, uint32_t count, uint32_t k) {
  return greater < k && k - greater <= count;
}

struct RadixThreshold {
  uint32_t key = 0;   // T: the n-th largest key
  uint32_t ties = 0;  // how many keys == T are kept (the lowest positions); n - ties keys are > T
};

// Host model of the GPU select: four histogram passes narrow the candidates to the keys == T. 1 <= n <= S.
inline RadixThreshold radix_threshold_host(const uint32_t* keys, int64_t S, int64_t n) {
  uint32_t prefix = 0, k = static_cast<uint32_t>(n);
  std::vector<uint32_t> hist(kRadixBins);
  for (int shift = 32 - kRadixBits; shift >= 0; shift -= kRadixBits) {
    hist.assign(kRadixBins, 0);
    for (int64_t t = 0; t < S; ++t)
      if (radix_candidate(keys[t], prefix, shift)) ++hist[radix_digit(keys[t], shift)];
    uint32_t greater = 0;
    for (int d = kRadixBins - 1; d >= 0; --d) {
      if (radix_holds_rank(greater, hist[d], k)) {
        prefix |= static_cast<uint32_t>(d) << shift;
        k -= greater;
        break;
      }
      greater += hist[d];
    }
  }
  return {prefix, k};
}

}  // namespace kvf::cuda
