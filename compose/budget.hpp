#pragma once
// Budget arithmetic exactly as kvpress computes it (Python doubles), shared by selectors and granularities.
#include <cmath>
#include <cstdint>

#include "compose/host_device.hpp"

namespace kvf {

// kvpress's compute_n_kept (ScorerPress, AdaKV, BlockPress, KeyRerotation, ...): int(L * (1 - cr)) with cr held as
// a double — (1 - cr) first, then x L, then truncate (1 - 0.8 = 0.19999999999999996, so L = 10 keeps 1, not 2) —
// clamped to at least 1 so a short context is never emptied; cr >= 1 keeps nothing.
KVF_HOST_DEVICE inline int64_t n_kept(int64_t seq, double compression_ratio) {
  if (compression_ratio >= 1.0) return 0;
  const auto n = static_cast<int64_t>(static_cast<double>(seq) * (1.0 - compression_ratio));
  return n < 1 ? 1 : n;
}

// Python's round(): half to even (std::nearbyint under the default rounding mode).
KVF_HOST_DEVICE inline int64_t round_half_even(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

}  // namespace kvf
