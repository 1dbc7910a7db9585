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
#include "kernels/cuda/executor_steps.hpp"
#include "policies/granularity/token.hpp"

namespace kvf::cuda {

template <class Sc, class Se, class... Po>
  requires(CudaScorer<Sc>::available && CudaSelector<Se>::available && (CudaPostOp<Po>::available && ...))
struct CudaExecutor<Press<Sc, Se, granularity::Token, Po...>> {
  using PressT = Press<Sc, Se, granularity::Token, Po...>;
  static constexpr bool available = true;

  static CompressResult run(const typename PressT::Params& p, const PressInputs& in) {
    const c10::DeviceGuard guard(in.keys.device());
    const LayerInputs raw = detail::validated_layer<Sc>(p.scorer, p.compression_ratio, in);
    if (p.compression_ratio == 0.0) return detail::keep_everything(in);  // kvpress: untouched (CpuExecutor)
    const SelectContext ctx{raw.batch, raw.kv_heads, raw.seq, raw.layer, raw.num_layers, p.compression_ratio,
                            Sc::protect(p.scorer, raw).last};
    at::Tensor scores = detail::score_protected<Sc>(p.scorer, in, raw);
    const DeviceKept kept = CudaSelector<Se>::select(p.selector, ctx, scores);
    return detail::finish<Po...>(p.post, in, std::move(scores), kept, std::index_sequence_for<Po...>{});
  }
};

}  // namespace kvf::cuda
