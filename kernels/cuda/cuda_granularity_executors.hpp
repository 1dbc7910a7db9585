#pragma once
// CudaExecutor for the chunk, chunkkv and block granularities, the device mirrors of CpuExecutor +
// policies/granularity/{chunk,chunkkv,block}.hpp:
//   chunk   Press<Sc, Se, Chunk, Po...>   (Se unused, as on the CPU): a token-local scorer without protection is
//           scored once for the whole layer (its chunk scores are the same floats); any other scorer per chunk on
//           the chunk's keys/values/hidden rows (RoPE tables not re-sliced, as kvpress), max + 1 protection per
//           chunk. Selection: chunk_select (two select_topn calls, whatever the chunk count).
//   chunkkv Press<Sc, Se, ChunkKV, Po...>: the layer scored and protected once; S < chunk_length: the wrapped
//           selector (CudaSelector<Se>); else chunkkv_select (chunk means bitwise the CPU's, NaN first, ties to the
//           earlier chunk, one choice per batch row).
//   block   Press<Sc, Se, Block, Po...> for token-local scorers without protection only (knorm): Block's
//           run_token_local keeps, round after round, the n best of the kept set and the next block under the
//           total order (key descending, position ascending), so its final set is that order's n best of the
//           whole layer: one select_topn (tests/test_cuda_executors.cpp checks it against run_token_local). Scores:
//           the layer's, or all NaN when n == S (no round runs). Set-dependent scorers that read neither the
//           hidden states nor attention weights (keydiff): run_iterative's rounds with tensor ops
//           (block_iterative), each round's set scored by CudaScorer<Sc> with its protection.
// Then, as the token executor: ragged gather -> post-ops -> cast to the cache dtype; cr == 0 keeps everything
// (nothing scored, no post-ops).
#include <algorithm>
#include <limits>
#include <tuple>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/DeviceGuard.h>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/press.hpp"
#include "core/error.hpp"
#include "kernels/cuda/chunk_layout.hpp"
#include "kernels/cuda/cuda_executor.hpp"
#include "kernels/cuda/cuda_postops.hpp"
#include "kernels/cuda/cuda_scorers.hpp"
#include "kernels/cuda/cuda_selectors.hpp"
#include "kernels/cuda/device_ops.hpp"
#include "kernels/cuda/executor_steps.hpp"
#include "kernels/cuda/device_wrappers.hpp"
#include "policies/granularity/block.hpp"
#include "policies/granularity/chunk.hpp"
#include "policies/granularity/chunkkv.hpp"

namespace kvf::cuda {
namespace detail {

// in restricted to positions (and hidden rows) [i, i + len), as LayerInputs::slice: no attentions; the RoPE
// tables whole.
inline PressInputs slice_inputs(const PressInputs& in, int64_t i, int64_t len) {
  PressInputs s = in;
  s.keys = in.keys.narrow(2, i, len).contiguous();
  s.values = in.values.narrow(2, i, len).contiguous();
  if (in.hidden_states.defined()) s.hidden_states = in.hidden_states.narrow(1, i, len);
  s.attentions = at::Tensor();
  return s;
}

}  // namespace detail

template <class Sc, class Se, class... Po>
  requires(CudaScorer<Sc>::available && (CudaPostOp<Po>::available && ...))
struct CudaExecutor<Press<Sc, Se, granularity::Chunk, Po...>> {
  using PressT = Press<Sc, Se, granularity::Chunk, Po...>;
  static constexpr bool available = true;

  static CompressResult run(const typename PressT::Params& p, const PressInputs& in) {
    const c10::DeviceGuard guard(in.keys.device());
    const LayerInputs raw = detail::validated_layer<Sc>(p.scorer, p.compression_ratio, in);
    if (p.compression_ratio == 0.0) return detail::keep_everything(in);
    const int64_t S = raw.seq, C = p.granularity.chunk_length;
    // Every chunk is validated as the CPU does; a token-local scorer whose chunks are all unprotected is scored once.
    bool once = TokenLocalScorer<Sc>;
    for (int64_t i = 0; i < S; i += C) {
      const LayerInputs sub = raw.slice(i, std::min(C, S - i));
      Sc::validate(p.scorer, sub);
      once = once && Sc::protect(p.scorer, sub).kind == Protect::Kind::None;
    }
    at::Tensor scores;
    if (once) {
      scores = CudaScorer<Sc>::score(p.scorer, in, raw);
    } else {
      scores = at::empty({raw.batch, raw.kv_heads, S}, in.keys.options());
      for (int64_t i = 0; i < S; i += C) {
        const int64_t len = std::min(C, S - i);
        const LayerInputs sub = raw.slice(i, len);
        scores.narrow(2, i, len).copy_(detail::score_protected<Sc>(p.scorer, detail::slice_inputs(in, i, len), sub));
      }
    }
    const DeviceKept kept = chunk_select(scores, C, p.compression_ratio);
    return detail::finish<Po...>(p.post, in, std::move(scores), kept, std::index_sequence_for<Po...>{});
  }
};

template <class Sc, class Se, class... Po>
  requires(CudaScorer<Sc>::available && CudaSelector<Se>::available && (CudaPostOp<Po>::available && ...))
struct CudaExecutor<Press<Sc, Se, granularity::ChunkKV, Po...>> {
  using PressT = Press<Sc, Se, granularity::ChunkKV, Po...>;
  static constexpr bool available = true;

  static CompressResult run(const typename PressT::Params& p, const PressInputs& in) {
    const c10::DeviceGuard guard(in.keys.device());
    const LayerInputs raw = detail::validated_layer<Sc>(p.scorer, p.compression_ratio, in);
    if (p.compression_ratio == 0.0) return detail::keep_everything(in);
    const int64_t B = raw.batch, H = raw.kv_heads, S = raw.seq, C = p.granularity.chunk_length;
    at::Tensor scores = detail::score_protected<Sc>(p.scorer, in, raw);
    DeviceKept kept;
    if (S / C == 0) {  // kvpress: return press.compress(...)
      const SelectContext ctx{B, H, S, raw.layer, raw.num_layers, p.compression_ratio, Sc::protect(p.scorer, raw).last};
      kept = CudaSelector<Se>::select(p.selector, ctx, scores);
    } else {
      kept = chunkkv_select(scores, C, p.compression_ratio);
    }
    return detail::finish<Po...>(p.post, in, std::move(scores), kept, std::index_sequence_for<Po...>{});
  }
};

template <class Sc, class Se, class... Po>
  requires(TokenLocalScorer<Sc> && CudaScorer<Sc>::available && (CudaPostOp<Po>::available && ...))
struct CudaExecutor<Press<Sc, Se, granularity::Block, Po...>> {
  using PressT = Press<Sc, Se, granularity::Block, Po...>;
  static constexpr bool available = true;

  static CompressResult run(const typename PressT::Params& p, const PressInputs& in) {
    const c10::DeviceGuard guard(in.keys.device());
    const LayerInputs raw = detail::validated_layer<Sc>(p.scorer, p.compression_ratio, in);
    if (p.compression_ratio == 0.0) return detail::keep_everything(in);
    if (Sc::protect(p.scorer, raw).kind != Protect::Kind::None)  // Block::run would take run_iterative
      throw Error("block: the CUDA executor handles token-local scorers without protection only");
    const int64_t B = raw.batch, H = raw.kv_heads, S = raw.seq;
    const int64_t n = std::clamp<int64_t>(n_kept(S, p.compression_ratio), 0, S);
    at::Tensor scores;
    DeviceKept kept;
    if (n < S) {
      scores = CudaScorer<Sc>::score(p.scorer, in, raw);
      kept = uniform_kept(top_n(scores.view({B * H, S}), n), B, H);
    } else {  // no round runs: nothing scored (NaN), everything kept
      scores = at::full({B, H, S}, std::numeric_limits<float>::quiet_NaN(), in.keys.options());
      kept = all_kept(B, H, S, in.keys.device());
    }
    return detail::finish<Po...>(p.post, in, std::move(scores), kept, std::index_sequence_for<Po...>{});
  }
};

template <class Sc, class Se, class... Po>
  requires(!TokenLocalScorer<Sc> && !scorer_reads_hidden_states<Sc>() && !Sc::needs_attentions &&
           CudaScorer<Sc>::available && (CudaPostOp<Po>::available && ...))
struct CudaExecutor<Press<Sc, Se, granularity::Block, Po...>> {
  using PressT = Press<Sc, Se, granularity::Block, Po...>;
  static constexpr bool available = true;

  static CompressResult run(const typename PressT::Params& p, const PressInputs& in) {
    const c10::DeviceGuard guard(in.keys.device());
    const LayerInputs raw = detail::validated_layer<Sc>(p.scorer, p.compression_ratio, in);
    if (p.compression_ratio == 0.0) return detail::keep_everything(in);
    granularity::Block::check_hidden_rows(raw);
    const int64_t B = raw.batch, H = raw.kv_heads, S = raw.seq;
    const int64_t n = std::clamp<int64_t>(n_kept(S, p.compression_ratio), 0, S);
    // Each round's set as the CPU's run_iterative presents it to the scorer: its keys (and values if read), no
    // hidden rows, no attention weights.
    auto score = [&](const at::Tensor& ks, const at::Tensor& vs) {
      PressInputs sub = in;
      sub.keys = ks;
      sub.values = vs;
      sub.attentions = at::Tensor();
      LayerInputs r = sub.raw();
      r.compression_ratio = p.compression_ratio;
      r.hidden_states = nullptr;
      r.tokens = r.token_stride = ks.size(2);
      r.token_offset = 0;  // raw() sets no precomputed queries or statistics
      Sc::validate(p.scorer, r);
      return detail::score_protected<Sc>(p.scorer, sub, r);
    };
    BlockRounds rounds = block_iterative(in.keys, scorer_reads_values<Sc>() ? in.values : at::Tensor(), n,
                                         p.granularity.block_size, score);
    const DeviceKept kept = uniform_kept(rounds.positions, B, H);
    return detail::finish<Po...>(p.post, in, std::move(rounds.scores), kept, std::index_sequence_for<Po...>{});
  }
};

}  // namespace kvf::cuda
