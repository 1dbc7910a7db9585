#pragma once
// CudaPostOp<Po>: a post-op on the device, the twin of Po::apply. A specialisation provides
//   static constexpr bool available = true;
//   static void apply(const typename Po::Params&, const PressInputs& in, const DeviceKept& kept,
//                     const at::Tensor& keys, const at::Tensor& values);
// keys/values: the packed kept rows (kept.rows, d) float32 on the device, changed in place.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "kernels/cuda/device_ops.hpp"
#include "kernels/press_inputs.hpp"
#include "policies/postops/key_rerotation.hpp"

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

}  // namespace kvf::cuda
