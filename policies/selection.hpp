#pragma once
// Top-n selection over one head's scores, in kvpress's order: higher score first, NaN above every number
// (torch.topk's rule). Ties at the boundary go to the lower position (kvpress leaves them to the backend;
// parity tests compare tie-aware). Output positions are ascending.
//
// Implementation: scores become order-preserving integer keys (-0 == +0, every NaN one key), one nth_element on
// the keys finds the threshold key T, and one scan in position order keeps every key > T plus the first ties
// == T. O(S), no comparator branches, and the output comes out ascending without a sort.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "policies/score_key.hpp"  // score_key: shared with the CUDA selection

namespace kvf {

// a ranks before b: NaN first, then larger score, then lower position. (The ordering the keys implement.)
inline bool score_before(float sa, int32_t ia, float sb, int32_t ib) {
  const bool na = std::isnan(sa), nb = std::isnan(sb);
  if (na != nb) return na;
  if (!na && sa != sb) return sa > sb;
  return ia < ib;
}

// Marks (via emit(t)) the n largest keys of keys[0..S) in ascending t, ties to the lower t. `scratch` is reused.
template <class Emit>
inline void keep_top_keys(const uint32_t* keys, int64_t S, int64_t n, std::vector<uint32_t>& scratch, Emit&& emit) {
  n = std::clamp<int64_t>(n, 0, S);
  if (n == 0) return;
  if (n == S) {
    for (int64_t t = 0; t < S; ++t) emit(t);
    return;
  }
  scratch.assign(keys, keys + S);
  std::nth_element(scratch.begin(), scratch.begin() + (S - n), scratch.end());
  const uint32_t T = scratch[static_cast<size_t>(S - n)];  // the n-th largest key
  int64_t above = 0;
  for (int64_t t = 0; t < S; ++t) above += keys[t] > T;
  int64_t ties = n - above;  // how many keys == T are kept: the lowest positions
  for (int64_t t = 0; t < S; ++t) {
    const uint32_t k = keys[t];
    if (k > T || (k == T && ties-- > 0)) emit(t);
  }
}

struct TopNScratch {
  std::vector<uint32_t> keys, work;
};

// Writes the n best positions of scores[0..S) in ascending order to out; `scratch` is reused between calls.
inline void top_n_positions(const float* scores, int64_t S, int64_t n, TopNScratch& scratch, int32_t* out) {
  scratch.keys.resize(static_cast<size_t>(S));
  for (int64_t t = 0; t < S; ++t) scratch.keys[static_cast<size_t>(t)] = score_key(scores[t]);
  int64_t j = 0;
  keep_top_keys(scratch.keys.data(), S, n, scratch.work, [&](int64_t t) { out[j++] = static_cast<int32_t>(t); });
}

}  // namespace kvf
