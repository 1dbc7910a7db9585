#pragma once
// The steps every CudaExecutor shares (token and granularity executors): the input check and validated layer
// view, the cr == 0 path, scoring with protection, and the gather -> post-ops -> cast tail.
#include <tuple>
#include <utility>

#include <ATen/ATen.h>

#include "compose/concepts.hpp"
#include "core/error.hpp"
#include "kernels/cuda/cuda_executor.hpp"
#include "kernels/cuda/cuda_postops.hpp"
#include "kernels/cuda/cuda_scorers.hpp"
#include "kernels/cuda/device_ops.hpp"

namespace kvf::cuda::detail {

inline void require_layer(const PressInputs& in) {
  if (!in.keys.defined() || !in.keys.is_cuda() || in.keys.scalar_type() != at::kFloat || in.keys.dim() != 4 ||
      !in.keys.is_contiguous() || !in.values.defined() || in.values.sizes() != in.keys.sizes() ||
      in.values.device() != in.keys.device() || !in.values.is_contiguous())
    throw Error("cuda executor: keys and values must be contiguous float32 (B, H, S, d) tensors on one CUDA device");
}

// cr == 0: the cache untouched, nothing scored, no post-ops (CpuExecutor).
inline CompressResult keep_everything(const PressInputs& in) {
  const int64_t B = in.keys.size(0), H = in.keys.size(1), S = in.keys.size(2), d = in.keys.size(3);
  CompressResult r;
  r.kept = to_host(all_kept(B, H, S, in.keys.device()));
  r.keys = in.keys.reshape({B * H * S, d}).to(in.cache_dtype, false, /*copy=*/true);
  r.values = in.values.reshape({B * H * S, d}).to(in.cache_dtype, false, /*copy=*/true);
  return r;
}

// Gather, post-ops, cast: the common tail of every executor.
template <class... Po, size_t... I>
CompressResult finish(const std::tuple<typename Po::Params...>& post, const PressInputs& in, at::Tensor scores,
                      const DeviceKept& kept, std::index_sequence<I...>) {
  auto [keys, values] = gather_kept(in.keys, in.values, kept);
  (CudaPostOp<Po>::apply(std::get<I>(post), in, kept, keys, values), ...);
  CompressResult r;
  r.scores = std::move(scores);
  r.kept = to_host(kept);
  r.keys = keys.to(in.cache_dtype);
  r.values = values.to(in.cache_dtype);
  return r;
}

// The scorer over the whole layer with its protection (compose/score_layer.hpp's order), as the token executor.
template <class Sc>
at::Tensor score_protected(const typename Sc::Params& sp, const PressInputs& in, const LayerInputs& raw) {
  at::Tensor scores = CudaScorer<Sc>::score(sp, in, raw);
  const Protect protect = Sc::protect(sp, raw);
  if (protect.kind == Protect::Kind::MaxPlusOne) protect_max_plus_one(scores, protect.first, protect.last);
  return scores;
}

// The checked inputs as the policies see them, with the press's ratio, validated by the scorer (the CPU
// executor's order: both reject bad input the same way).
template <class Sc>
LayerInputs validated_layer(const typename Sc::Params& sp, double compression_ratio, const PressInputs& in) {
  require_layer(in);
  LayerInputs raw = in.raw();
  raw.compression_ratio = compression_ratio;
  Sc::validate(sp, raw);
  return raw;
}

}  // namespace kvf::cuda::detail
