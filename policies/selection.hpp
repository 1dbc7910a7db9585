#pragma once
// Top-n selection over one head's scores, in kvpress's order: higher score first, NaN above every number
// (torch.topk's rule). Ties at the boundary go to the lower position (kvpress leaves them to the backend;
// parity tests compare tie-aware). Output positions are ascending.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

namespace kvf {

// a ranks before b: NaN first, then larger score, then lower position.
inline bool score_before(float sa, int32_t ia, float sb, int32_t ib) {
  const bool na = std::isnan(sa), nb = std::isnan(sb);
  if (na != nb) return na;
  if (!na && sa != sb) return sa > sb;
  return ia < ib;
}

// Writes the n best positions of scores[0..S) in ascending order to out; `idx` is scratch.
inline void top_n_positions(const float* scores, int64_t S, int64_t n, std::vector<int32_t>& idx, int32_t* out) {
  n = std::clamp<int64_t>(n, 0, S);
  idx.resize(static_cast<size_t>(S));
  std::iota(idx.begin(), idx.end(), 0);
  auto before = [scores](int32_t a, int32_t b) { return score_before(scores[a], a, scores[b], b); };
  if (n < S) std::nth_element(idx.begin(), idx.begin() + n, idx.end(), before);
  std::sort(idx.begin(), idx.begin() + n);
  std::copy(idx.begin(), idx.begin() + n, out);
}

}  // namespace kvf
