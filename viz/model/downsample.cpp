#include "viz/model/downsample.hpp"

#include <algorithm>
#include <cmath>

#include "viz/model/stats.hpp"

namespace kvviz {

int64_t bin_size(int64_t cols, int64_t max_cols) {
  if (max_cols <= 0 || cols <= max_cols) return 1;
  return (cols + max_cols - 1) / max_cols;
}

Grid downsample(const float* data, int64_t rows, int64_t cols, int64_t max_cols, Reduce how) {
  Grid g;
  g.rows = rows;
  g.bin = bin_size(cols, max_cols);
  g.cols = (cols + g.bin - 1) / g.bin;
  g.v.assign(static_cast<size_t>(rows * g.cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < g.cols; ++c) {
      const int64_t s0 = c * g.bin, s1 = std::min(cols, s0 + g.bin);
      double acc = how == Reduce::Max ? -INFINITY : 0.0;
      int64_t n = 0;
      for (int64_t s = s0; s < s1; ++s) {
        const float x = data[r * cols + s];
        if (!std::isfinite(x)) continue;
        acc = how == Reduce::Max ? std::max<double>(acc, x) : acc + x;
        ++n;
      }
      float out = NAN;
      if (n) out = static_cast<float>(how == Reduce::Max ? acc : acc / static_cast<double>(n));
      g.v[static_cast<size_t>(r * g.cols + c)] = out;
    }
  return g;
}

Grid downsample(const uint8_t* data, int64_t rows, int64_t cols, int64_t max_cols) {
  Grid g;
  g.rows = rows;
  g.bin = bin_size(cols, max_cols);
  g.cols = (cols + g.bin - 1) / g.bin;
  g.v.assign(static_cast<size_t>(rows * g.cols), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < g.cols; ++c) {
      const int64_t s0 = c * g.bin, s1 = std::min(cols, s0 + g.bin);
      int64_t n = 0;
      for (int64_t s = s0; s < s1; ++s) n += data[r * cols + s] != 0;
      g.v[static_cast<size_t>(r * g.cols + c)] = static_cast<float>(n) / static_cast<float>(s1 - s0);
    }
  return g;
}

TraceLod downsample_trace(const Trace& t, int64_t max_cols, const std::atomic<bool>* cancel) {
  TraceLod lod;
  lod.bin = bin_size(t.seq, max_cols);
  std::vector<float> clamped(static_cast<size_t>(t.heads * t.seq));
  for (int64_t l = 0; l < t.layers; ++l) {
    if (cancel && cancel->load()) {
      lod.cancelled = true;
      return lod;
    }
    lod.kept.push_back(downsample(t.layer_kept(l).data(), t.heads, t.seq, max_cols));
    const Range r = score_range(t, l);
    auto sc = t.layer_scores(l);
    for (size_t i = 0; i < sc.size(); ++i) clamped[i] = static_cast<float>(std::clamp<double>(sc[i], r.lo, r.hi));
    lod.scores.push_back(downsample(clamped.data(), t.heads, t.seq, max_cols, Reduce::Mean));
  }
  return lod;
}

std::future<TraceLod> downsample_trace_async(std::shared_ptr<const Trace> t, int64_t max_cols,
                                             std::shared_ptr<std::atomic<bool>> cancel) {
  return std::async(std::launch::async, [t = std::move(t), max_cols, cancel = std::move(cancel)] {
    return downsample_trace(*t, max_cols, cancel.get());
  });
}

}  // namespace kvviz
