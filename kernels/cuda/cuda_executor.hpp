#pragma once
// CudaExecutor<P>: the fused CUDA executor of a composed press, the device twin of kernels/cpu/executor.hpp's
// CpuExecutor. TypedPress (kernels/typed_press.hpp) calls it when the layer's cache lives on a CUDA device and the
// backend is Fused; for a press without one (the primary template below) it runs the CPU executor on host copies
// and moves the result back, so every press works on a GPU cache, the fused CUDA ones fast.
//
// A specialisation provides
//   static constexpr bool available = true;
//   static CompressResult run(const typename P::Params& params, const PressInputs& in);
// where `in` holds float32 contiguous CUDA tensors (PressInputs, as make_press_inputs builds them, with
// compression_ratio already set) and the result has the CPU executor's semantics: scores (B, H, S) float32 on the
// device (undefined at cr == 0), kept on the host (KeptSets, ascending positions), keys/values (kept.total(), d)
// on the device in in.cache_dtype.
//
// Built only with KVF_HAVE_CUDA; the specialisations live in kernels/cuda/cuda_executors.hpp.
#include "kernels/press_inputs.hpp"
#include "kernels/runtime_press.hpp"

namespace kvf::cuda {

template <class P>
struct CudaExecutor {
  static constexpr bool available = false;
};

}  // namespace kvf::cuda
