#pragma once
// Reference specialisations of kvpress's wrapper presses, in plain libtorch ops following kvpress's code:
//   selectors   adakv (AdaKVPress), per_layer (PerLayerCompressionPress), pyramidkv (PyramidKVPress budget)
//   granularity chunk (ChunkPress), chunkkv (ChunkKVPress), block (BlockPress)
//   post-ops    key_rerotation (KeyRerotationPress), think (ThinKPress)
// Differences from kvpress (documented in docs/kvpress-differences.md) are marked "kvforge:".
#include <ATen/ATen.h>

#include <cfloat>
#include <cmath>
#include <string>

#include "core/error.hpp"
#include "kernels/reference/basic.hpp"
#include "kernels/reference/reference.hpp"
#include "policies/granularity/block.hpp"
#include "policies/granularity/chunk.hpp"
#include "policies/granularity/chunkkv.hpp"
#include "policies/postops/key_rerotation.hpp"
#include "policies/postops/think.hpp"
#include "policies/selectors/adakv.hpp"
#include "policies/selectors/per_layer.hpp"
#include "policies/selectors/pyramidkv.hpp"

namespace kvf {

// KeptSets from a (B, H, S) bool mask of kept positions (ragged allowed).
inline KeptSets kept_from_mask(const at::Tensor& mask) {
  KeptSets k;
  const int64_t B = mask.size(0), H = mask.size(1), S = mask.size(2);
  k.reset(B, H);
  auto m = mask.to(at::kBool).contiguous();
  const bool* p = m.data_ptr<bool>();
  for (int64_t i = 0; i < B * H; ++i) {
    for (int64_t t = 0; t < S; ++t)
      if (p[i * S + t]) k.positions.push_back(static_cast<int32_t>(t));
    k.offsets[i + 1] = static_cast<int64_t>(k.positions.size());
  }
  return k;
}

// The inputs of a sub-range of positions [i, i + len): hidden states and K/V sliced, RoPE tables not (kvpress
// passes kwargs unchanged), no attention weights.
inline PressInputs ref_slice(const PressInputs& in, int64_t i, int64_t len) {
  PressInputs s = in;
  s.hidden_states = in.hidden_states.narrow(1, i, len).contiguous();
  s.keys = in.keys.narrow(2, i, len).contiguous();
  s.values = in.values.narrow(2, i, len).contiguous();
  s.attentions = at::Tensor();
  return s;
}

// ---- selectors ----------------------------------------------------------------------------------------------

template <>
struct RefSelector<selectors::AdaKV> {
  // kvpress AdaKVPress.compress, with the pruned triples turned into kept sets. Modifies `scores` in place.
  static KeptSets select(const selectors::AdaKV::Params& p, const SelectContext& c, const at::Tensor& scores) {
    const int64_t B = scores.size(0), H = scores.size(1), k_len = scores.size(2);
    const int64_t n_kept = std::clamp<int64_t>(kvf::n_kept(k_len, c.compression_ratio), 0, k_len);
    int64_t n_safe = static_cast<int64_t>(static_cast<double>(n_kept) * p.alpha_safeguard);
    if (p.alpha_safeguard > 0) n_safe = n_kept > 0 ? std::max<int64_t>(1, n_safe) : 0;
    // kvpress: top_indices = topk(scores, n_safe). kvforge fixes the tie order (kvpress leaves it to the backend):
    // NaN, then larger, then lower position — a stable descending sort.
    auto top_indices = std::get<1>(scores.sort(/*stable=*/true, -1, /*descending=*/true)).narrow(-1, 0, n_safe);
    scores.scatter_(-1, top_indices, FLT_MAX);  // torch.finfo(float32).max
    // kvpress: the n_pruned = H * (k_len - n_kept) largest of -scores (NaN first) are masked. Equivalently the
    // H * n_kept kept are the largest scores with NaN last; kvforge: ties keep the lower flat index h * S + t.
    auto flat = scores.reshape({B, -1});
    auto order = std::get<1>(flat.sort(/*stable=*/true, -1, /*descending=*/true));
    auto nan_last = std::get<1>(flat.isnan().gather(1, order).to(at::kInt).sort(/*stable=*/true, -1, false));
    order = order.gather(1, nan_last);
    auto keep = at::zeros({B, H * k_len}, at::kBool);
    keep.scatter_(1, order.narrow(1, 0, H * n_kept), true);
    return kept_from_mask(keep.view({B, H, k_len}));
  }
};

template <>
struct RefSelector<selectors::PerLayer> {
  static KeptSets select(const selectors::PerLayer::Params& p, const SelectContext& c, const at::Tensor& scores) {
    const double cr = selectors::PerLayer::layer_ratio(p, c.layer);  // compression_ratios[layer_idx]
    const int64_t n = std::clamp<int64_t>(n_kept(c.seq, cr), 0, c.seq);
    return kept_from_indices(std::get<1>(scores.topk(n, -1)));
  }
};

template <>
struct RefSelector<selectors::PyramidKV> {
  // kvpress PyramidKVPress.get_layer_budget, line by line (window = the scorer's window_size).
  static int64_t budget(int64_t q_len, double cr, int64_t window_size, int64_t beta, int64_t layer_idx,
                        int64_t num_hidden_layers) {
    const double max_capacity_prompt = static_cast<double>(window_size) + static_cast<double>(q_len) * (1 - cr);
    double min_num = (max_capacity_prompt - static_cast<double>(window_size)) / static_cast<double>(beta);
    double max_num = (max_capacity_prompt - static_cast<double>(window_size)) * 2 - min_num;
    if (max_num >= static_cast<double>(q_len - window_size)) {
      max_num = static_cast<double>(q_len - window_size);
      min_num = (max_capacity_prompt - static_cast<double>(window_size)) * 2 - max_num;
    }
    if (!(static_cast<double>(q_len) >= max_num && max_num >= min_num && min_num >= static_cast<double>(window_size)))
      return std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(static_cast<double>(q_len) * (1 - cr))));
    const double steps =
        num_hidden_layers > 1 ? (max_num - min_num) / static_cast<double>(num_hidden_layers - 1) : 0.0;
    return static_cast<int64_t>(std::nearbyint(max_num - static_cast<double>(layer_idx) * steps));
  }
  static KeptSets select(const selectors::PyramidKV::Params& p, const SelectContext& c, const at::Tensor& scores) {
    const int64_t n = budget(c.seq, c.compression_ratio, c.protected_tail, p.beta, c.layer, c.num_layers);
    return kept_from_indices(std::get<1>(scores.topk(n, -1)));
  }
};

// ---- granularities ------------------------------------------------------------------------------------------

template <>
struct RefGranularity<granularity::Chunk> {
  template <class Sc, class Se>
  static void run(const granularity::Chunk::Params& gp, const typename Sc::Params& sp, const typename Se::Params&,
                  const PressInputs& in, const SelectContext& ctx, at::Tensor& scores, KeptSets& kept) {
    const int64_t kv_len = in.keys.size(2), C = gp.chunk_length;
    std::vector<at::Tensor> all_scores, indices;
    for (int64_t i = 0; i < kv_len; i += C) {
      const int64_t len = std::min(C, kv_len - i);
      const PressInputs chunk = ref_slice(in, i, len);
      Sc::validate(sp, chunk.raw());
      auto chunk_scores = RefScorer<Sc>::score(sp, chunk).to(at::kFloat);
      const int64_t n = std::max<int64_t>(1, n_kept(len, ctx.compression_ratio));
      indices.push_back(i + std::get<1>(chunk_scores.topk(n, -1)));
      all_scores.push_back(chunk_scores);
    }
    scores = at::cat(all_scores, -1).contiguous();
    kept = kept_from_indices(at::cat(indices, -1));
  }
};

template <>
struct RefGranularity<granularity::ChunkKV> {
  template <class Sc, class Se>
  static void run(const granularity::ChunkKV::Params& gp, const typename Sc::Params& sp,
                  const typename Se::Params& selp, const PressInputs& in, const SelectContext& ctx, at::Tensor& scores,
                  KeptSets& kept) {
    const int64_t B = in.keys.size(0), H = in.keys.size(1), kv_len = in.keys.size(2), C = gp.chunk_length;
    auto global_scores = RefScorer<Sc>::score(sp, in).to(at::kFloat).contiguous();
    scores = global_scores;
    const int64_t num_complete_chunks = kv_len / C, remaining_tokens = kv_len % C;
    if (num_complete_chunks == 0) {  // press.compress(...)
      kept = RefSelector<Se>::select(selp, ctx, global_scores);
      return;
    }
    auto main_scores = global_scores.narrow(-1, 0, num_complete_chunks * C);
    // kvforge: the chunk means are taken in double, and equal chunk scores go to the earlier chunk (a stable
    // descending sort), so that exact ties (e.g. chunks inside a protected window) are decided the same way
    // everywhere; kvpress averages in float32 and leaves ties to torch.topk.
    auto chunk_scores = main_scores.sum(1).to(at::kDouble).view({-1, num_complete_chunks, C}).mean(-1);
    if (remaining_tokens > 0) {
      auto remaining = global_scores.narrow(-1, kv_len - remaining_tokens, remaining_tokens);
      chunk_scores = at::cat({chunk_scores, remaining.sum(1).to(at::kDouble).mean(-1, true)}, -1);
    }
    const int64_t n_chunks_kept =
        std::max<int64_t>(1, n_kept(num_complete_chunks + (remaining_tokens > 0 ? 1 : 0), ctx.compression_ratio));
    auto top_chunks =
        std::get<1>(chunk_scores.sort(/*stable=*/true, -1, /*descending=*/true)).narrow(-1, 0, n_chunks_kept).contiguous();
    // kvforge: every batch row keeps its own chunks (kvpress: top_chunks.indices[0] for all rows).
    auto mask = at::zeros({B, H, kv_len}, at::kBool);
    for (int64_t b = 0; b < B; ++b) {
      std::vector<at::Tensor> idx;
      for (int64_t j = 0; j < n_chunks_kept; ++j) {
        const int64_t chunk_idx = top_chunks[b][j].template item<int64_t>();
        if (chunk_idx < num_complete_chunks)
          idx.push_back(at::arange(chunk_idx * C, chunk_idx * C + C, at::kLong));
        else
          idx.push_back(at::arange(num_complete_chunks * C, kv_len, at::kLong));
      }
      auto rows = std::get<0>(at::cat(idx).sort());
      mask[b].index_fill_(-1, rows, true);
    }
    kept = kept_from_mask(mask);
  }
};

template <>
struct RefGranularity<granularity::Block> {
  template <class Sc, class Se>
  static void run(const granularity::Block::Params& gp, const typename Sc::Params& sp, const typename Se::Params&,
                  const PressInputs& in, const SelectContext& ctx, at::Tensor& scores, KeptSets& kept) {
    const auto& keys = in.keys;
    const auto& hidden_states = in.hidden_states;
    const int64_t bsz = keys.size(0), num_key_value_heads = keys.size(1), k_len = keys.size(2),
                  head_dim = keys.size(3);
    const int64_t block_size = gp.block_size < k_len ? gp.block_size : k_len;
    const int64_t n = std::clamp<int64_t>(n_kept(k_len, ctx.compression_ratio), 0, k_len);
    if (hidden_states.size(-1) % num_key_value_heads != 0 || hidden_states.size(1) != k_len)
      throw Error("block: the hidden states must have one row per cached position and a hidden size divisible by "
                  "the kv heads");
    auto kept_indices = at::arange(n, at::kLong).expand({bsz, num_key_value_heads, n});
    auto states = hidden_states.view({bsz, k_len, num_key_value_heads, -1}).transpose(1, 2);
    auto recorded = at::full({bsz, num_key_value_heads, k_len}, NAN, at::kFloat);
    for (int64_t i = n; i < k_len; i += block_size) {
      const int64_t end = std::min(i + block_size, k_len);
      auto current = at::arange(i, end, at::kLong).expand({bsz, num_key_value_heads, end - i});
      current = at::cat({kept_indices, current}, -1);
      auto current_states = states.gather(2, current.unsqueeze(-1).expand({-1, -1, -1, states.size(-1)}));
      current_states = current_states.transpose(1, 2).reshape({bsz, -1, hidden_states.size(-1)});
      PressInputs sub = in;
      sub.hidden_states = current_states.contiguous();
      sub.keys = keys.gather(2, current.unsqueeze(-1).expand({-1, -1, -1, head_dim})).contiguous();
      sub.values = in.values.gather(2, current.unsqueeze(-1).expand({-1, -1, -1, head_dim})).contiguous();
      sub.attentions = at::Tensor();
      Sc::validate(sp, sub.raw());
      auto s = RefScorer<Sc>::score(sp, sub).to(at::kFloat);
      recorded.scatter_(-1, current, s);
      auto topk_indices = std::get<1>(s.topk(n, -1));
      kept_indices = current.gather(-1, topk_indices);
    }
    scores = recorded;
    kept = kept_from_indices(kept_indices);
  }
};

// ---- post-ops -----------------------------------------------------------------------------------------------

inline at::Tensor ref_rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, x.size(-1) - half), x.narrow(-1, 0, half)}, -1);
}

template <>
struct RefPostOp<postops::KeyRerotation> {
  // kvpress KeyRerotationPress.rerotate_keys on the gathered keys (positions ascending per head).
  static void apply(const postops::KeyRerotation::Params&, const PressInputs& in, const KeptSets& kept,
                    at::Tensor& keys, at::Tensor&) {
    if (!in.inv_freq.defined()) throw Error("key_rerotation: the layer has no RoPE frequencies (inv_freq)");
    const int64_t total = kept.total();
    auto selected = at::empty({total}, at::kLong), idx = at::empty({total}, at::kLong);
    int64_t* sp = selected.data_ptr<int64_t>();
    int64_t* ip = idx.data_ptr<int64_t>();
    for (int64_t i = 0; i < kept.batch * kept.heads; ++i)
      for (int64_t j = kept.offsets[i]; j < kept.offsets[i + 1]; ++j) {
        sp[j] = kept.positions[static_cast<size_t>(j)];
        ip[j] = j - kept.offsets[i];
      }
    auto delta_pos = idx.to(at::kFloat) - selected;              // (total,) float
    auto freqs = delta_pos.unsqueeze(-1) * in.inv_freq.to(at::kFloat).unsqueeze(0);  // (total, d/2)
    auto emb = at::cat({freqs, freqs}, -1);
    auto cos = emb.cos().to(keys.scalar_type()), sin = emb.sin().to(keys.scalar_type());
    keys = keys * cos + ref_rotate_half(keys) * sin;
  }
};

template <>
struct RefPostOp<postops::ThinK> {
  // kvpress ThinKPress.compress on the kept keys of each head.
  static void apply(const postops::ThinK::Params& p, const PressInputs& in, const KeptSets& kept, at::Tensor& keys,
                    at::Tensor&) {
    if (p.key_channel_compression_ratio == 0) return;
    const int64_t bsz = in.keys.size(0), num_key_value_heads = in.keys.size(1), head_dim = in.keys.size(3);
    const int64_t num_heads = in.config->num_attention_heads, groups = num_heads / num_key_value_heads;
    // compute_window_queries(module, kwargs["hidden_states"], kwargs["position_embeddings"])
    const int64_t T = in.hidden_states.size(1), w = std::min(p.window_size, T);
    auto h = in.hidden_states.narrow(1, T - w, w);
    auto query_states = at::linear(h, in.q_proj, in.q_bias).view({bsz, w, num_heads, head_dim}).transpose(1, 2);
    if (in.q_norm.defined()) {
      const double eps = in.config->rms_norm_eps;
      query_states = in.q_norm * (query_states * at::rsqrt(query_states.pow(2).mean(-1, true) + eps));
    }
    const int64_t R = in.cos.size(1), wr = std::min(p.window_size, R);
    auto cos = in.cos.narrow(1, R - wr, wr), sin = in.sin.narrow(1, R - wr, wr);
    query_states = query_states * cos.unsqueeze(1) + ref_rotate_half(query_states) * sin.unsqueeze(1);
    auto queries_norm = query_states.pow(2).mean(2);  // (bsz, num_heads, head_dim)
    queries_norm = queries_norm.view({bsz, num_key_value_heads, groups, head_dim}).mean(2);
    const int64_t n_pruned = static_cast<int64_t>(static_cast<double>(head_dim) * p.key_channel_compression_ratio);
    for (int64_t b = 0; b < bsz; ++b)
      for (int64_t hh = 0; hh < num_key_value_heads; ++hh) {
        const int64_t i = b * num_key_value_heads + hh, n = kept.offsets[i + 1] - kept.offsets[i];
        if (n == 0) continue;
        auto k = keys.narrow(0, kept.offsets[i], n);  // (n, d) view
        auto keys_norm = k.pow(2).mean(0);
        auto key_scores = queries_norm[b][hh] * keys_norm;
        auto indices = std::get<1>(key_scores.topk(n_pruned, -1, /*largest=*/false));
        k.index_fill_(1, indices, 0.0);  // in place, as kvpress's scatter_
      }
  }
};

}  // namespace kvf
