#include "kernels/press_hook.hpp"

#include <ATen/ATen.h>

#include <chrono>

#include "core/error.hpp"
#include "kernels/press_inputs.hpp"

namespace kvf {

void apply_result(const CompressResult& r, LayerCache& cache, CacheMode mode) {
  const auto& k = r.kept;
  const int64_t B = k.batch, H = k.heads, D = cache.keys.defined() ? cache.keys.size(3) : r.keys.size(1);
  const int64_t S = cache.length();
  if (mode == CacheMode::Masked) {
    auto mask = kept_mask(k, S).to(cache.keys.device());
    const at::Tensor visible = cache.masked() ? cache.keep_mask.logical_and(mask) : mask;
    if (!r.keys.defined()) {  // Rows::SkipUnchanged: the kept rows are the cache's own; only hide the others
      cache.keep_mask = visible;
      return;
    }
    // Keep every slot; write the post-processed kept rows back and hide the others.
    auto flat_pos = at::empty({k.total()}, at::kLong);
    int64_t* fp = flat_pos.data_ptr<int64_t>();
    for (int64_t i = 0; i < B * H; ++i)
      for (int64_t j = k.offsets[i]; j < k.offsets[i + 1]; ++j) fp[j] = i * S + k.positions[j];
    auto keys = cache.keys.reshape({B * H * S, D}).clone();
    auto values = cache.values.reshape({B * H * S, D}).clone();
    flat_pos = flat_pos.to(keys.device());
    keys.index_copy_(0, flat_pos, r.keys.to(keys.device(), keys.scalar_type()));
    values.index_copy_(0, flat_pos, r.values.to(values.device(), values.scalar_type()));
    cache.set_dense(keys.view({B, H, S, D}), values.view({B, H, S, D}));
    cache.keep_mask = visible;
    return;
  }
  if (!r.keys.defined())
    throw Error("apply_result: a compact cache needs the kept rows; this result was computed with Rows::SkipUnchanged");
  if (k.uniform()) {
    const int64_t n = B * H ? k.count(0, 0) : 0;
    cache.set_dense(r.keys.view({B, H, n, D}).contiguous(), r.values.view({B, H, n, D}).contiguous());
    return;
  }
  std::vector<int64_t> counts(static_cast<size_t>(B * H));
  for (int64_t i = 0; i < B * H; ++i) counts[static_cast<size_t>(i)] = k.offsets[i + 1] - k.offsets[i];
  cache.set_ragged(r.keys, r.values, counts, H);
}

void PressHook::after_attention(const LayerView& view, LayerCache& cache) {
  if (view.phase != Phase::Prefill) return;
  const auto t0 = std::chrono::steady_clock::now();
  LayerPressStats st;
  st.layer = view.layer;
  st.seq = cache.length();
  st.bytes_before = cache.bytes();
  // A masked cache keeps rows where they are: unless a post-op rewrites them, the press only selects.
  CompressResult r = press_.compress(view, cache, backend_, mode_ == CacheMode::Masked ? Rows::SkipUnchanged : Rows::Write);
  apply_result(r, cache, mode_);
  st.kept = r.kept.total();
  st.bytes_after = cache.bytes();
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats_.push_back(st);
  if (on_result) on_result(view, r);
}

double PressHook::total_seconds() const {
  double s = 0;
  for (const auto& st : stats_) s += st.seconds;
  return s;
}

}  // namespace kvf
