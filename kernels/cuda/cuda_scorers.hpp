#pragma once
// CudaScorer<Sc>: a scorer on the device, the twin of Sc::score_head over a whole layer. A specialisation provides
//   static constexpr bool available = true;
//   static at::Tensor score(const typename Sc::Params&, const PressInputs& in, const LayerInputs& raw);
// returning (B, H, S) float32 contiguous on the keys' device, WITHOUT Sc::protect applied (the executor applies it,
// as compose/score_layer.hpp does). `raw` is in.raw() with the applying press's compression_ratio (device pointers).
#include <vector>

#include <ATen/ATen.h>

#include "compose/layer_inputs.hpp"
#include "compose/score_layer.hpp"
#include "kernels/cuda/device_ops.hpp"
#include "kernels/cuda/device_scorers.hpp"
#include "kernels/cuda/device_wrappers.hpp"
#include "kernels/press_inputs.hpp"
#include "policies/scorers/expected_attention.hpp"
#include "policies/scorers/keydiff.hpp"
#include "policies/scorers/lagkv.hpp"
#include "policies/scorers/knorm.hpp"
#include "policies/scorers/observed_attention.hpp"
#include "policies/scorers/random.hpp"
#include "policies/scorers/snapkv.hpp"
#include "policies/scorers/streaming_llm.hpp"
#include "policies/scorers/tova.hpp"

namespace kvf::cuda {

template <class Sc>
struct CudaScorer {
  static constexpr bool available = false;
};

inline QueryInputs query_inputs(const PressInputs& in) {
  QueryInputs q;
  q.hidden_states = in.hidden_states;
  q.q_proj = in.q_proj;
  q.q_bias = in.q_bias;
  q.q_norm = in.q_norm;
  q.cos = in.cos;
  q.sin = in.sin;
  q.inv_freq = in.inv_freq;
  q.attentions = in.attentions;
  q.q_heads = in.config->num_attention_heads;
  q.rms_norm_eps = in.config->rms_norm_eps;
  return q;
}

// Kernels: Knorm::token_score per row (token_local.cu).
template <>
struct CudaScorer<scorers::Knorm> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::Knorm::Params&, const PressInputs& in, const LayerInputs&) {
    return knorm_scores(in.keys);
  }
};

template <>
struct CudaScorer<scorers::StreamingLLM> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::StreamingLLM::Params& p, const PressInputs& in, const LayerInputs& raw) {
    return streaming_llm_scores(in.keys, p.n_sink, raw.compression_ratio);
  }
};

// Scored on the HOST and uploaded: seed >= 0 must be torch's CPU MT19937 stream (random.hpp), which the device
// does not reproduce; (B, H, S) uniforms cost one host pass. seed = -1 draws on the host too.
template <>
struct CudaScorer<scorers::Random> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::Random::Params& p, const PressInputs& in, const LayerInputs& raw) {
    std::vector<float> s(static_cast<size_t>(raw.batch * raw.kv_heads * raw.seq));
    score_layer<scorers::Random>(p, raw, s.data());  // reads only the shape (no Protect)
    return at::from_blob(s.data(), {raw.batch, raw.kv_heads, raw.seq}, at::kFloat).to(in.keys.device());
  }
};

// Kernels evaluating LagKV's own KVF_HOST_DEVICE pieces in the CPU's order (press_kernels.cu): bitwise the CPU's
// scores, so the per-partition ranks agree.
template <>
struct CudaScorer<scorers::LagKV> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::LagKV::Params& p, const PressInputs& in, const LayerInputs&) {
    return lagkv_scores(in.keys, in.values, p.n_sink, p.lag_size, p.cross_scoring);
  }
};

// libtorch ops on the device (device_scorers.cpp).
template <>
struct CudaScorer<scorers::KeyDiff> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::KeyDiff::Params&, const PressInputs& in, const LayerInputs&) {
    return keydiff_scores(in.keys);
  }
};

template <>
struct CudaScorer<scorers::SnapKV> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::SnapKV::Params& p, const PressInputs& in, const LayerInputs&) {
    return snapkv_scores(query_inputs(in), in.keys, p.window_size, p.kernel_size);
  }
};

template <>
struct CudaScorer<scorers::TOVA> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::TOVA::Params&, const PressInputs& in, const LayerInputs&) {
    return tova_scores(query_inputs(in), in.keys);
  }
};

template <>
struct CudaScorer<scorers::ObservedAttention> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::ObservedAttention::Params&, const PressInputs& in, const LayerInputs&) {
    return observed_attention_scores(query_inputs(in), in.keys);
  }
};

template <>
struct CudaScorer<scorers::ExpectedAttention> {
  static constexpr bool available = true;
  static at::Tensor score(const scorers::ExpectedAttention::Params& p, const PressInputs& in, const LayerInputs&) {
    return expected_attention_scores(query_inputs(in), in.keys, in.values,
                                     {p.n_future_positions, p.n_sink, p.use_covariance, p.use_vnorm, p.epsilon});
  }
};

}  // namespace kvf::cuda
