#pragma once
// PressHook: plugs a RuntimePress into the model runtime (core's LayerHook). At prefill, after each layer's
// attention, the press compresses that layer's cache; the layer's own output already used the full cache.
// Decoding steps are left alone (kvpress's prefill presses compress once).
//
// CacheMode::Compact writes the kept entries only: a dense cache when every head keeps the same count, a ragged
// per-head cache otherwise (head-wise selectors such as adakv then really free memory).
// CacheMode::Masked reproduces kvpress's head-wise behaviour: the full cache stays, evicted slots are hidden.
#include <cstdint>
#include <functional>
#include <vector>

#include "core/hooks.hpp"
#include "kernels/runtime_press.hpp"

namespace kvf {

enum class CacheMode { Compact, Masked };

struct LayerPressStats {
  int64_t layer = 0;
  int64_t seq = 0;              // entries per head before
  int64_t kept = 0;             // entries kept, all heads together
  int64_t bytes_before = 0, bytes_after = 0;
  double seconds = 0;           // compression time of this layer
};

class PressHook : public LayerHook {
 public:
  explicit PressHook(const RuntimePress& press, Backend backend = Backend::Fused, CacheMode mode = CacheMode::Compact)
      : press_(press), backend_(backend), mode_(mode) {}

  bool wants_attention_weights(int64_t, Phase phase) const override {
    return phase == Phase::Prefill && press_.needs_attentions();
  }
  void after_attention(const LayerView& view, LayerCache& cache) override;

  // Called with every layer's full result (scores, kept sets) — kvviz traces use it.
  std::function<void(const LayerView&, const CompressResult&)> on_result;

  const std::vector<LayerPressStats>& stats() const { return stats_; }
  double total_seconds() const;
  void clear_stats() { stats_.clear(); }

 private:
  const RuntimePress& press_;
  Backend backend_;
  CacheMode mode_;
  std::vector<LayerPressStats> stats_;
};

// Writes a compression result into a layer cache in the given mode.
void apply_result(const CompressResult& r, LayerCache& cache, CacheMode mode);

}  // namespace kvf
