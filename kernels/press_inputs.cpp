#include "kernels/press_inputs.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdlib>
#include <new>

#include "compose/parallel.hpp"
#include "core/error.hpp"
#include "core/model.hpp"
#include "kernels/aten_pool.hpp"
#include "kernels/build_config.hpp"
#include "kernels/cache_buffer_pool.hpp"
#if KVF_HAVE_CUDA
#include "kernels/cuda/ragged_decode_torch.hpp"
#endif
#include "kernels/runtime_press.hpp"

namespace kvf {
namespace {
const bool aten_pool_installed = [] {
  pool_runner().store(aten_pool_runner(), std::memory_order_release);
  return true;
}();

#if KVF_HAVE_CUDA
// Ragged caches come from presses, so the fused decode kernel is installed with them (core's model calls it).
at::Tensor cuda_ragged_decode(const at::Tensor& q, const LayerCache& cache, double scale) {
  if (!q.is_cuda() || q.scalar_type() != cache.packed_keys.scalar_type()) return {};
  try {
    return cuda::ragged_decode_attention(q, cache.packed_keys, cache.packed_values, cache.head_start, cache.head_len,
                                         cache.ragged_heads, scale);
  } catch (const Error&) {
    return {};  // a shape the kernel does not take (d > 256, G > 8): the generic path
  }
}
const bool ragged_decode_installed = [] {
  ragged_decode_kernel().store(&cuda_ragged_decode, std::memory_order_release);
  return true;
}();
#endif

at::Tensor f32(const at::Tensor& t) { return t.defined() ? t.to(at::kFloat).contiguous() : t; }
const float* ptr(const at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; }
}  // namespace

PressInputs make_press_inputs(const LayerView& view, const LayerCache& cache) {
  if (!view.config || !view.weights) throw Error("press: layer view without config or weights");
  PressInputs p;
  p.config = view.config;
  p.layer = view.layer;
  p.hidden_states = f32(view.hidden_states);
  p.keys = f32(cache.keys);
  p.values = f32(cache.values);
  p.cos = f32(view.cos);
  p.sin = f32(view.sin);
  p.inv_freq = f32(view.inv_freq);
  p.q_proj = f32(view.weights->q_proj);
  p.q_bias = f32(view.weights->q_bias);
  p.q_norm = f32(view.weights->q_norm);
  p.o_proj = f32(view.weights->o_proj);
  p.attentions = f32(view.attentions);
  p.cache_dtype = cache.keys.scalar_type();
  return p;
}

PressInputs inputs_to_host(const PressInputs& in) {
  PressInputs h = in;
  for (at::Tensor* t : {&h.hidden_states, &h.keys, &h.values, &h.cos, &h.sin, &h.inv_freq, &h.q_proj, &h.q_bias,
                        &h.q_norm, &h.o_proj, &h.attentions})
    if (t->defined()) *t = t->to(at::kCPU).contiguous();
  return h;
}

CompressResult result_to(CompressResult r, const at::Device& device) {
  for (at::Tensor* t : {&r.scores, &r.keys, &r.values})
    if (t->defined()) *t = t->to(device);
  return r;
}

LayerInputs PressInputs::raw() const {
  LayerInputs in;
  const auto& c = *config;
  in.batch = keys.size(0);
  in.kv_heads = keys.size(1);
  in.seq = in.seq_stride = keys.size(2);
  in.head_dim = keys.size(3);
  in.q_heads = c.num_attention_heads;
  in.tokens = in.token_stride = hidden_states.size(1);
  in.rope_rows = cos.size(1);
  in.hidden = hidden_states.size(2);
  in.layer = layer;
  in.num_layers = c.num_hidden_layers;
  in.rms_norm_eps = c.rms_norm_eps;
  in.compression_ratio = compression_ratio;
  in.hidden_states = ptr(hidden_states);
  in.keys = ptr(keys);
  in.values = ptr(values);
  in.cos = ptr(cos);
  in.sin = ptr(sin);
  in.inv_freq = ptr(inv_freq);
  in.q_proj = ptr(q_proj);
  in.q_bias = ptr(q_bias);
  in.q_norm = ptr(q_norm);
  in.o_proj = ptr(o_proj);
  in.attentions = ptr(attentions);
  return in;
}

at::Tensor empty_cache_buffer(int64_t rows, int64_t cols) {
  const size_t bytes = static_cast<size_t>(rows * cols) * sizeof(float);
  if (bytes < (size_t{8} << 20)) return at::empty({rows, cols}, at::kFloat);
  size_t granted = 0;
  void* p = acquire_cache_buffer(bytes, &granted);
  return at::from_blob(p, {rows, cols}, [granted](void* q) { release_cache_buffer(q, granted); },
                       at::TensorOptions().dtype(at::kFloat));
}

at::Tensor kept_mask(const KeptSets& kept, int64_t seq) {
  auto m = at::zeros({kept.batch, kept.heads, seq}, at::kBool);
  auto acc = m.accessor<bool, 3>();
  for (int64_t b = 0; b < kept.batch; ++b)
    for (int64_t h = 0; h < kept.heads; ++h)
      for (int64_t j = 0; j < kept.count(b, h); ++j) acc[b][h][kept.begin(b, h)[j]] = true;
  return m;
}

}  // namespace kvf
