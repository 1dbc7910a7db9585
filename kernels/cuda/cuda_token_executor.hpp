#pragma once
// CudaExecutor for token granularity: Press<Sc, Se, Token, Po...> whenever the scorer, the selector and every
// post-op have a device twin. The device mirror of CpuExecutor + granularity::Token:
//   validate -> (cr == 0: keep everything, nothing scored, no post-ops) -> score -> protect -> select -> gather
//   -> post-ops -> cast to the cache dtype.
#include <tuple>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/press.hpp"
#include "core/error.hpp"
#include "kernels/cuda/cuda_executor.hpp"
#include "kernels/cuda/cuda_postops.hpp"
#include "kernels/cuda/cuda_scorers.hpp"
#include "kernels/cuda/cuda_selectors.hpp"
#include "kernels/cuda/device_ops.hpp"
#include "policies/granularity/token.hpp"

namespace kvf::cuda {

template <class Sc, class Se, class... Po>
  requires(CudaScorer<Sc>::available && CudaSelector<Se>::available && (CudaPostOp<Po>::available && ...))
struct CudaExecutor<Press<Sc, Se, granularity::Token, Po...>> {
  using PressT = Press<Sc, Se, granularity::Token, Po...>;
  static constexpr bool available = true;

  static CompressResult run(const typename PressT::Params& p, const PressInputs& in) {
    if (!in.keys.defined() || !in.keys.is_cuda() || in.keys.scalar_type() != at::kFloat || in.keys.dim() != 4 ||
        !in.keys.is_contiguous() || !in.values.defined() || in.values.sizes() != in.keys.sizes() ||
        in.values.device() != in.keys.device() || !in.values.is_contiguous())
      throw Error("cuda executor: keys and values must be contiguous float32 (B, H, S, d) tensors on one CUDA device");
    const c10::DeviceGuard guard(in.keys.device());
    LayerInputs raw = in.raw();
    raw.compression_ratio = p.compression_ratio;
    Sc::validate(p.scorer, raw);
    const Protect protect = Sc::protect(p.scorer, raw);
    const int64_t B = raw.batch, H = raw.kv_heads, S = raw.seq, d = raw.head_dim;
    const SelectContext ctx{B, H, S, raw.layer, raw.num_layers, p.compression_ratio, protect.last};
    CompressResult r;
    if (p.compression_ratio == 0.0) {  // kvpress: the cache untouched, nothing scored, no post-ops (CpuExecutor)
      r.kept = to_host(all_kept(B, H, S, in.keys.device()));
      r.keys = in.keys.reshape({B * H * S, d}).to(in.cache_dtype, false, /*copy=*/true);
      r.values = in.values.reshape({B * H * S, d}).to(in.cache_dtype, false, /*copy=*/true);
      return r;
    }
    at::Tensor scores = CudaScorer<Sc>::score(p.scorer, in, raw);
    if (protect.kind == Protect::Kind::MaxPlusOne) protect_max_plus_one(scores, protect.first, protect.last);
    const DeviceKept kept = CudaSelector<Se>::select(p.selector, ctx, scores);
    auto [keys, values] = gather_kept(in.keys, in.values, kept);
    apply_postops(p, in, kept, keys, values, std::index_sequence_for<Po...>{});
    r.scores = scores;
    r.kept = to_host(kept);
    r.keys = keys.to(in.cache_dtype);
    r.values = values.to(in.cache_dtype);
    return r;
  }

  template <size_t... I>
  static void apply_postops(const typename PressT::Params& p, const PressInputs& in, const DeviceKept& kept,
                            const at::Tensor& keys, const at::Tensor& values, std::index_sequence<I...>) {
    (CudaPostOp<Po>::apply(std::get<I>(p.post), in, kept, keys, values), ...);
  }
};

}  // namespace kvf::cuda
