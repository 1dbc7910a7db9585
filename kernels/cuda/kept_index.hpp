#pragma once
// Row -> head arithmetic of a packed KeptSets on the device: rows are head after head, head i owning rows
// [offsets[i], offsets[i + 1]). Shared by the ragged gather / post-op kernels (kept_rows.cu) and the host tests.
#include <cstdint>

#include "compose/host_device.hpp"

namespace kvf::cuda {

// The head owning packed row r (0 <= r < offsets[heads]): the largest i < heads with offsets[i] <= r. Empty heads
// (offsets[i] == offsets[i + 1]) are skipped because a later head has the same offset. Binary search: O(log heads).
KVF_HOST_DEVICE inline int64_t kept_head_of_row(const int64_t* offsets, int64_t heads, int64_t r) {
  int64_t lo = 0, hi = heads - 1;
  while (lo < hi) {
    const int64_t mid = (lo + hi + 1) / 2;
    if (offsets[mid] <= r)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

}  // namespace kvf::cuda
