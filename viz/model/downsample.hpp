#pragma once
// Downsampling of long sequences for display: a (rows, cols) grid is reduced along its columns to at most
// `max_cols` bins of `bin` consecutive positions (the last bin may be shorter). Kept masks become the kept
// fraction of each bin; scores the mean (or max) of the bin's finite values. Runs in a worker thread through
// downsample_trace_async so the UI never blocks on a long trace; the job can be cancelled.
#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <vector>

#include "viz/model/trace.hpp"

namespace kvviz {

struct Grid {
  int64_t rows = 0, cols = 0;  // cols after downsampling
  int64_t bin = 1;             // source positions per column
  std::vector<float> v;        // (rows, cols) row-major
  float at(int64_t r, int64_t c) const { return v[static_cast<size_t>(r * cols + c)]; }
};

enum class Reduce { Mean, Max };

// Number of positions per bin so that ceil(cols / bin) <= max_cols (1 when no downsampling is needed).
int64_t bin_size(int64_t cols, int64_t max_cols);
Grid downsample(const float* data, int64_t rows, int64_t cols, int64_t max_cols, Reduce how);
Grid downsample(const uint8_t* data, int64_t rows, int64_t cols, int64_t max_cols);  // kept fraction per bin

// Every layer's kept map and score map, downsampled (or copied when seq <= max_cols).
struct TraceLod {
  int64_t bin = 1;
  std::vector<Grid> kept;    // per layer, (H, cols)
  std::vector<Grid> scores;  // per layer, (H, cols), mean of finite values (non-finite clamped to the layer range)
  bool cancelled = false;
};
TraceLod downsample_trace(const Trace& t, int64_t max_cols, const std::atomic<bool>* cancel = nullptr);
std::future<TraceLod> downsample_trace_async(std::shared_ptr<const Trace> t, int64_t max_cols,
                                             std::shared_ptr<std::atomic<bool>> cancel = nullptr);

}  // namespace kvviz
