#include "kernels/cuda/device_ops.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/error.hpp"
#include "kernels/cuda/bridge_util.hpp"
#include "kernels/cuda/kept_rows.cuh"
#include "kernels/cuda/select_topn.cuh"
#include "kernels/cuda/token_local.cuh"

namespace kvf::cuda {
namespace {

using bridge::check;
using bridge::require_cuda_f32;
using bridge::stream;
using bridge::view_of;

}  // namespace

at::Tensor top_n(const at::Tensor& scores, int64_t n, bool nan_high) {
  require_cuda_f32(scores, "top_n scores", 2);
  const c10::cuda::CUDAGuard guard(scores.device());
  const int64_t R = scores.size(0), S = scores.size(1);
  n = std::clamp<int64_t>(n, 0, S);
  at::Tensor out = at::empty({R, n}, scores.options().dtype(at::kInt));
  if (R == 0 || n == 0) return out;
  const size_t bytes = select_topn_workspace_bytes(R, S);
  const at::Tensor ws = at::empty({static_cast<int64_t>(bytes)}, scores.options().dtype(at::kByte));
  check(select_topn(scores.data_ptr<float>(), R, S, n, out.data_ptr<int32_t>(), bytes ? ws.data_ptr() : nullptr,
                    bytes, stream(), SelectPath::Auto, nan_high),
        "select_topn");
  return out;
}

void fill_top_n(const at::Tensor& scores, int64_t n, float value) {
  const at::Tensor pos = top_n(scores, n);
  if (pos.numel() > 0) scores.scatter_(1, pos.to(at::kLong), value);
}

DeviceKept uniform_kept(const at::Tensor& positions, int64_t batch, int64_t heads) {
  DeviceKept k;
  k.batch = batch;
  k.heads = heads;
  k.rows = positions.numel();
  const int64_t n = batch * heads > 0 ? positions.numel() / (batch * heads) : 0;
  k.offsets = at::arange(batch * heads + 1, positions.options().dtype(at::kLong)) * n;
  k.positions = positions.reshape({-1}).contiguous();
  return k;
}

DeviceKept all_kept(int64_t batch, int64_t heads, int64_t seq, const at::Device& device) {
  const auto i32 = at::TensorOptions().dtype(at::kInt).device(device);
  return uniform_kept(at::arange(seq, i32).repeat({batch * heads}), batch, heads);
}

DeviceKept kept_from_flat(const at::Tensor& flat, int64_t heads, int64_t seq) {
  DeviceKept k;
  k.batch = flat.size(0);
  k.heads = heads;
  k.rows = flat.numel();
  const at::Tensor f = flat.to(at::kLong);
  const at::Tensor head = at::div(f, seq, "floor");  // (B, keep), ascending per row
  const at::Tensor counts = at::zeros({k.batch, heads}, f.options()).scatter_add_(1, head, at::ones_like(head));
  k.offsets = at::cat({at::zeros({1}, f.options()), counts.reshape({-1}).cumsum(0)});
  k.positions = (f - head * seq).to(at::kInt).reshape({-1}).contiguous();
  return k;
}

KeptSets to_host(const DeviceKept& k) {
  KeptSets out;
  out.reset(k.batch, k.heads);
  const at::Tensor off = k.offsets.to(at::kCPU).contiguous(), pos = k.positions.to(at::kCPU).contiguous();
  std::copy_n(off.data_ptr<int64_t>(), off.numel(), out.offsets.begin());
  out.positions.assign(pos.data_ptr<int32_t>(), pos.data_ptr<int32_t>() + pos.numel());
  return out;
}

at::Tensor knorm_scores(const at::Tensor& keys) {
  require_cuda_f32(keys, "keys", 4);
  const c10::cuda::CUDAGuard guard(keys.device());
  at::Tensor out = at::empty({keys.size(0), keys.size(1), keys.size(2)}, keys.options());
  check(knorm_scores(keys.data_ptr<float>(), out.numel(), keys.size(3), out.data_ptr<float>(), stream()), "knorm");
  return out;
}

at::Tensor streaming_llm_scores(const at::Tensor& keys, int64_t n_sink, double compression_ratio) {
  require_cuda_f32(keys, "keys", 4);
  const c10::cuda::CUDAGuard guard(keys.device());
  at::Tensor out = at::empty({keys.size(0), keys.size(1), keys.size(2)}, keys.options());
  check(streaming_llm_scores(keys.size(0) * keys.size(1), keys.size(2), n_sink, compression_ratio,
                             out.data_ptr<float>(), stream()),
        "streaming_llm");
  return out;
}

void protect_max_plus_one(const at::Tensor& scores, int64_t first, int64_t last) {
  const int64_t S = scores.size(2);
  first = std::clamp<int64_t>(first, 0, S);
  last = std::clamp<int64_t>(last, 0, S - first);
  const int64_t mid = S - first - last;
  float value = 0.f;  // nothing unprotected: any value works (score_layer.hpp)
  if (mid > 0 && scores.size(0) * scores.size(1) > 0) {
    const float mx = scores.narrow(2, first, mid).max().item<float>();  // NaN-propagating, like torch.max
    value = std::isnan(mx) ? std::numeric_limits<float>::quiet_NaN()
                           : static_cast<float>(static_cast<double>(mx) + 1.0);
  }
  if (first > 0) scores.narrow(2, 0, first).fill_(value);
  if (last > 0) scores.narrow(2, S - last, last).fill_(value);
}

std::pair<at::Tensor, at::Tensor> gather_kept(const at::Tensor& keys, const at::Tensor& values,
                                              const DeviceKept& kept) {
  require_cuda_f32(keys, "keys", 4);
  require_cuda_f32(values, "values", 4);
  if (keys.sizes() != values.sizes()) throw Error("cuda: keys and values differ in shape");
  const c10::cuda::CUDAGuard guard(keys.device());
  const int64_t S = keys.size(2), d = keys.size(3);
  at::Tensor ko = at::empty({kept.rows, d}, keys.options()), vo = at::empty({kept.rows, d}, keys.options());
  check(gather_kept(keys.data_ptr<float>(), values.data_ptr<float>(), S, d, view_of(kept), ko.data_ptr<float>(),
                    vo.data_ptr<float>(), stream()),
        "gather_kept");
  return {ko, vo};
}

void rerotate_kept(const at::Tensor& kept_keys, const DeviceKept& kept, const at::Tensor& inv_freq) {
  require_cuda_f32(kept_keys, "kept keys", 2);
  const c10::cuda::CUDAGuard guard(kept_keys.device());
  const at::Tensor w = inv_freq.to(kept_keys.device(), at::kFloat).contiguous();
  if (w.numel() < kept_keys.size(1) / 2) throw Error("key_rerotation: inv_freq has fewer than head_dim / 2 entries");
  check(rerotate_kept(kept_keys.data_ptr<float>(), kept_keys.size(1), view_of(kept), w.data_ptr<float>(), stream()),
        "key_rerotation");
}

}  // namespace kvf::cuda
