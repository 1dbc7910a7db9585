#pragma once
// Torch-level building blocks of the CUDA executors (cuda_scorers.hpp, cuda_selectors.hpp, cuda_postops.hpp):
// CUDA tensors in and out, on the current stream, float32. Part of kvf_cuda_torch, which must not need kvf_kernels
// (kvf_kernels links it): no PressInputs here, only tensors and numbers.
#include <cstdint>
#include <utility>

#include <ATen/Tensor.h>

#include "compose/kept_sets.hpp"

namespace kvf::cuda {

// Kept sets on the device in KeptSets' packed layout: head i = b * heads + h keeps
// positions[offsets[i] : offsets[i + 1]], ascending.
struct DeviceKept {
  at::Tensor offsets;    // (batch * heads + 1) int64
  at::Tensor positions;  // (rows) int32
  int64_t batch = 0, heads = 0, rows = 0;
};

// Per-row top-n of scores (R, S) float32 CUDA, exactly policies/selection.hpp's top_n_positions (select_topn.cuh):
// (R, n) int32 ascending; n clamped to [0, S]. nan_high = false ranks NaN lowest (AdaKV's global prune).
at::Tensor top_n(const at::Tensor& scores, int64_t n, bool nan_high = true);
// scores (R, S): the n best of every row (NaN best, as torch.topk) set to `value` in place (AdaKV's safeguard).
void fill_top_n(const at::Tensor& scores, int64_t n, float value);

// Every head keeps the rows of positions (B*H, n) int32 (a uniform selection).
DeviceKept uniform_kept(const at::Tensor& positions, int64_t batch, int64_t heads);
// Every position of every head (cr == 0).
DeviceKept all_kept(int64_t batch, int64_t heads, int64_t seq, const at::Device& device);
// flat (B, keep) int32, ascending flat indices h * seq + t of each batch row (a global selection over the row's
// heads) -> per-head kept sets; counts per head may differ. Torch ops only, so it also runs on CPU tensors.
DeviceKept kept_from_flat(const at::Tensor& flat, int64_t heads, int64_t seq);
KeptSets to_host(const DeviceKept& kept);  // synchronises

// Scorers with their own kernels (token_local.cuh): (B, H, S) float32.
at::Tensor knorm_scores(const at::Tensor& keys);
at::Tensor streaming_llm_scores(const at::Tensor& keys, int64_t n_sink, double compression_ratio);

// compose/score_layer.hpp's apply_protect for Protect::Kind::MaxPlusOne on (B, H, S) scores, in place: positions
// [0, first) and [S - last, S) of every head get max(scores elsewhere, over the whole layer) + 1, computed in double
// and stored as float; NaN when a NaN is among them (torch.max); 0 when nothing is left to take the max of.
void protect_max_plus_one(const at::Tensor& scores, int64_t first, int64_t last);

// The kept rows of keys/values (B, H, S, d) float32, (rows, d) each, head after head.
std::pair<at::Tensor, at::Tensor> gather_kept(const at::Tensor& keys, const at::Tensor& values, const DeviceKept& kept);
// postops::KeyRerotation on packed kept keys (rows, d) float32, in place; inv_freq (d/2).
void rerotate_kept(const at::Tensor& kept_keys, const DeviceKept& kept, const at::Tensor& inv_freq);

}  // namespace kvf::cuda
