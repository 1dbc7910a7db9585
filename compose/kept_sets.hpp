#pragma once
// KeptSets: which cache positions each (batch, kv head) keeps, in POSITION order (kvpress stores score order;
// attention results are the same). Ragged by construction: head-wise selectors keep different counts per head.
#include <cstdint>
#include <vector>

namespace kvf {

struct KeptSets {
  int64_t batch = 0, heads = 0;
  std::vector<int64_t> offsets;    // (B*H + 1): head (b, h) keeps positions[offsets[i] : offsets[i+1]], i = b*H + h
  std::vector<int32_t> positions;  // ascending within each head

  void reset(int64_t b, int64_t h) {
    batch = b;
    heads = h;
    offsets.assign(static_cast<size_t>(b * h + 1), 0);
    positions.clear();
  }
  // Every head keeps n positions (positions sized, left for the caller to fill).
  void reset_uniform(int64_t b, int64_t h, int64_t n) {
    reset(b, h);
    for (int64_t i = 0; i < b * h; ++i) offsets[static_cast<size_t>(i + 1)] = (i + 1) * n;
    positions.resize(static_cast<size_t>(b * h * n));
  }
  int64_t count(int64_t b, int64_t h) const { return offsets[b * heads + h + 1] - offsets[b * heads + h]; }
  const int32_t* begin(int64_t b, int64_t h) const { return positions.data() + offsets[b * heads + h]; }
  bool uniform() const {  // every head keeps the same number (a dense cache can hold it)
    for (int64_t i = 1; i < batch * heads; ++i)
      if (offsets[i + 1] - offsets[i] != offsets[1] - offsets[0]) return false;
    return true;
  }
  int64_t total() const { return offsets.empty() ? 0 : offsets.back(); }
};

}  // namespace kvf
