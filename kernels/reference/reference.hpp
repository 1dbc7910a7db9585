#pragma once
// The reference (unfused) path: plain libtorch ops mirroring kvpress's code step by step. It is the oracle of the
// fused executors' tests and the baseline of the benchmarks. One trait specialisation per policy:
//   RefScorer<Sc>::score(params, in)                      -> (B, H, S) f32, protected slots filled as kvpress does
//   RefSelector<Se>::select(params, ctx, scores)          -> KeptSets (ascending positions)
//   RefGranularity<Gr>::run<Sc, Se>(...)                  -> scores + KeptSets (ChunkPress, BlockPress, ...)
//   RefPostOp<Po>::apply(params, in, kept, keys, values)  on the gathered (total, d) keys/values
#include <ATen/ATen.h>

#include <tuple>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/press.hpp"
#include "kernels/press_inputs.hpp"
#include "kernels/runtime_press.hpp"

namespace kvf {

template <class Policy> struct RefScorer;
template <class Policy> struct RefSelector;
template <class Policy> struct RefGranularity;
template <class Policy> struct RefPostOp;

// KeptSets from (B, H, n) top-k indices (any order): sorted ascending per head.
inline KeptSets kept_from_indices(const at::Tensor& idx) {
  KeptSets k;
  const int64_t B = idx.size(0), H = idx.size(1), n = idx.size(2);
  k.reset_uniform(B, H, n);
  auto sorted = std::get<0>(idx.to(at::kLong).sort(-1)).contiguous();
  const int64_t* p = sorted.data_ptr<int64_t>();
  for (int64_t i = 0; i < B * H * n; ++i) k.positions[i] = static_cast<int32_t>(p[i]);
  return k;
}

// kvpress's max(s) + 1 padding: max over the whole tensor, + 1 in double.
inline at::Tensor ref_max_plus_one(const at::Tensor& s) {
  return at::full({}, s.max().item<double>() + 1.0, s.options());
}

template <class P>
struct Reference;

template <class Sc, class Se, class Gr, class... Po>
struct Reference<Press<Sc, Se, Gr, Po...>> {
  using PressT = Press<Sc, Se, Gr, Po...>;

  static CompressResult run(const typename PressT::Params& p, const PressInputs& inputs) {
    PressInputs in = inputs;
    in.compression_ratio = p.compression_ratio;
    const int64_t B = in.keys.size(0), H = in.keys.size(1), S = in.keys.size(2);
    CompressResult r;
    if (p.compression_ratio == 0.0) {  // untouched: no scoring, no post-ops
      r.kept = kept_from_indices(at::arange(S, at::kLong).view({1, 1, S}).expand({B, H, S}));
      gather(in, r);
    } else {
      SelectContext ctx{B, H, S, in.layer, in.config->num_hidden_layers, p.compression_ratio, 0};
      ctx.protected_tail = Sc::protect(p.scorer, in.raw()).last;
      RefGranularity<Gr>::template run<Sc, Se>(p.granularity, p.scorer, p.selector, in, ctx, r.scores, r.kept);
      gather(in, r);
      apply_postops(p, in, r, std::index_sequence_for<Po...>{});
    }
    r.keys = r.keys.to(in.cache_dtype);
    r.values = r.values.to(in.cache_dtype);
    return r;
  }

  static void gather(const PressInputs& in, CompressResult& r) {
    const int64_t B = in.keys.size(0), H = in.keys.size(1), S = in.keys.size(2), d = in.keys.size(3);
    auto flat_pos = at::empty({r.kept.total()}, at::kLong);
    int64_t* fp = flat_pos.data_ptr<int64_t>();
    for (int64_t i = 0; i < B * H; ++i)
      for (int64_t j = r.kept.offsets[i]; j < r.kept.offsets[i + 1]; ++j) fp[j] = i * S + r.kept.positions[j];
    r.keys = in.keys.reshape({B * H * S, d}).index_select(0, flat_pos);
    r.values = in.values.reshape({B * H * S, d}).index_select(0, flat_pos);
  }

  template <size_t... I>
  static void apply_postops(const typename PressT::Params& p, const PressInputs& in, CompressResult& r,
                            std::index_sequence<I...>) {
    (RefPostOp<Po>::apply(std::get<I>(p.post), in, r.kept, r.keys, r.values), ...);
  }
};

}  // namespace kvf
