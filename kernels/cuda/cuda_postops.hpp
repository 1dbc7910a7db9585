#pragma once
// CudaPostOp<Po>: a post-op on the device, the twin of Po::apply. A specialisation provides
//   static constexpr bool available = true;
//   static void apply(const typename Po::Params&, const PressInputs& in, const DeviceKept& kept,
//                     const at::Tensor& keys, const at::Tensor& values);
// keys/values: the packed kept rows (kept.rows, d) float32 on the device, changed in place.
#include <algorithm>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "kernels/cuda/cuda_scorers.hpp"  // query_inputs
#include "kernels/cuda/device_ops.hpp"
#include "kernels/cuda/device_wrappers.hpp"
#include "kernels/press_inputs.hpp"
#include "policies/postops/key_rerotation.hpp"
#include "policies/postops/think.hpp"

namespace kvf::cuda {

template <class Po>
struct CudaPostOp {
  static constexpr bool available = false;
};

template <>
struct CudaPostOp<postops::KeyRerotation> {
  static constexpr bool available = true;
  static void apply(const postops::KeyRerotation::Params&, const PressInputs& in, const DeviceKept& kept,
                    const at::Tensor& keys, const at::Tensor&) {
    if (!in.inv_freq.defined()) throw Error("key_rerotation: the layer has no RoPE frequencies (inv_freq)");
    rerotate_kept(keys, kept, in.inv_freq);
  }
};

// ThinK: the query side with libtorch ops + a kernel (query_norms' rounding points; the GEMM's sum order differs, so
// channel scores agree within rounding), the key side and the channel choice in kernels: ThinK::channel_pruned on
// the scores, i.e. ThinK::smallest_channels' choice (NaN never, ties to the lower channel).
template <>
struct CudaPostOp<postops::ThinK> {
  static constexpr bool available = true;
  static void apply(const postops::ThinK::Params& p, const PressInputs& in, const DeviceKept& kept,
                    const at::Tensor& keys, const at::Tensor&) {
    const int64_t d = keys.size(1);
    const int64_t m = std::min(postops::ThinK::channels_pruned(d, p.key_channel_compression_ratio), d);
    if (p.key_channel_compression_ratio == 0.0 || m == 0) return;
    if (!in.hidden_states.defined() || !in.q_proj.defined() || !in.cos.defined() || !in.sin.defined())
      throw Error("think: needs the layer's hidden states, q_proj and RoPE tables");
    think_prune(keys, kept, think_query_norms(query_inputs(in), in.keys, p.window_size), m);
  }
};

}  // namespace kvf::cuda
