#pragma once
// CudaSelector<Se>: a selector on the device, the twin of Se::select. A specialisation provides
//   static constexpr bool available = true;
//   static DeviceKept select(const typename Se::Params&, const SelectContext&, const at::Tensor& scores);
// scores: (B, H, S) float32 contiguous on the device, protection applied; it may change them in place, as Se::select
// does (AdaKV's safeguard). The kept sets are exactly Se::select's on the same scores (select_topn's semantics).
#include <algorithm>
#include <cfloat>

#include <ATen/ATen.h>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "kernels/cuda/device_ops.hpp"
#include "policies/selectors/adakv.hpp"
#include "policies/selectors/per_layer.hpp"
#include "policies/selectors/pyramidkv.hpp"
#include "policies/selectors/topk.hpp"

namespace kvf::cuda {

template <class Se>
struct CudaSelector {
  static constexpr bool available = false;
};

// TopK::select_per_head: the same n for every head.
inline DeviceKept select_per_head(const SelectContext& c, const at::Tensor& scores, int64_t n) {
  return uniform_kept(top_n(scores.view({c.batch * c.heads, c.seq}), n), c.batch, c.heads);
}

template <>
struct CudaSelector<selectors::TopK> {
  static constexpr bool available = true;
  static DeviceKept select(const selectors::TopK::Params&, const SelectContext& c, const at::Tensor& scores) {
    return select_per_head(c, scores, n_kept(c.seq, c.compression_ratio));
  }
};

template <>
struct CudaSelector<selectors::PerLayer> {
  static constexpr bool available = true;
  static DeviceKept select(const selectors::PerLayer::Params& p, const SelectContext& c, const at::Tensor& scores) {
    return select_per_head(c, scores, selectors::PerLayer::budget(p, c.seq, c.layer));
  }
};

template <>
struct CudaSelector<selectors::PyramidKV> {
  static constexpr bool available = true;
  static DeviceKept select(const selectors::PyramidKV::Params& p, const SelectContext& c, const at::Tensor& scores) {
    return select_per_head(c, scores, selectors::PyramidKV::layer_budget(c.seq, c.compression_ratio, c.protected_tail,
                                                                         p.beta, c.layer, c.num_layers));
  }
};

// AdaKV::select: the n_safe best of every head set to FLT_MAX (NaN best), then per batch row the H * n best of its
// H * S scores with NaN LOWEST and ties to the lower flat index h * S + t (select_topn with nan-low keys), split
// into per-head counts.
template <>
struct CudaSelector<selectors::AdaKV> {
  static constexpr bool available = true;
  static DeviceKept select(const selectors::AdaKV::Params& p, const SelectContext& c, const at::Tensor& scores) {
    const int64_t B = c.batch, H = c.heads, S = c.seq;
    const int64_t n = std::clamp<int64_t>(n_kept(S, c.compression_ratio), 0, S);
    const int64_t safe = std::min(selectors::AdaKV::n_safe(n, p.alpha_safeguard), S);
    if (safe > 0) fill_top_n(scores.view({B * H, S}), safe, FLT_MAX);
    return kept_from_flat(top_n(scores.view({B, H * S}), H * n, /*nan_high=*/false), H, S);
  }
};

}  // namespace kvf::cuda
