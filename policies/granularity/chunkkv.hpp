#pragma once
// chunkkv (kvpress ChunkKVPress): keep whole semantic chunks. The layer is scored once; chunk j of chunk_length
// positions gets the mean over its positions of the scores summed over heads (a trailing partial chunk is a chunk
// of its own); each batch row keeps its max(1, int(n_chunks * (1 - cr))) best chunks, every head the same
// positions. Kept count = chunks x chunk_length (less when the partial chunk is kept), generally not int(S(1-cr)).
// With fewer positions than one chunk, it is the wrapped press (the selector on the layer's scores).
// Fixed vs kvpress: kvpress applies batch row 0's chunk choice to every row; here each row picks its own
// (docs/kvpress-differences.md). Chunk means are accumulated in double (kvpress: float32) and equal chunk scores
// go to the earlier chunk (NaN first, as torch.topk), so exact ties, such as chunks inside a protected window,
// are decided deterministically. Output: ascending positions.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "compose/budget.hpp"
#include "compose/concepts.hpp"
#include "compose/host_device.hpp"
#include "compose/params.hpp"
#include "compose/score_layer.hpp"

namespace kvf::granularity {

struct ChunkKV {
  static constexpr std::string_view name = "chunkkv";
  static constexpr bool needs_per_head_selector = true;
  struct Params {
    int64_t chunk_length = 20;
    static constexpr auto fields = std::make_tuple(field("chunk_length", &Params::chunk_length, 1, 1 << 30));
  };

  // max(1, int((n_full + [rem > 0]) * (1 - cr)))
  static int64_t chunks_kept(int64_t n_chunks, double cr) { return std::max<int64_t>(1, n_kept(n_chunks, cr)); }

  // Position t of batch row b summed over the heads first (kvpress: scores.sum(dim=1)), in the scores' dtype, heads
  // in order (the CUDA executor calls it too: kernels/cuda/press_kernels.cu).
  KVF_HOST_DEVICE static float head_sum(const float* scores, int64_t H, int64_t S, int64_t b, int64_t t) {
    float hs = 0.f;
    for (int64_t h = 0; h < H; ++h) hs += scores[(b * H + h) * S + t];
    return hs;
  }

  template <class Sc, class Se>
  static void run(const Params& gp, const typename Sc::Params& sp, const typename Se::Params& selp,
                  const LayerInputs& in, const SelectContext& ctx, std::vector<float>& scores, KeptSets& kept) {
    const int64_t B = in.batch, H = in.kv_heads, S = in.seq, C = gp.chunk_length;
    scores.resize(static_cast<size_t>(B * H * S));
    score_layer<Sc>(sp, in, scores.data());
    const int64_t n_full = S / C, rem = S % C;
    if (n_full == 0) {  // kvpress: return press.compress(...)
      Se::select(selp, ctx, scores.data(), kept);
      return;
    }
    const int64_t n_chunks = n_full + (rem > 0 ? 1 : 0);
    const int64_t n = std::min(chunks_kept(n_chunks, ctx.compression_ratio), n_chunks);
    std::vector<double> chunk_score(static_cast<size_t>(n_chunks));
    std::vector<int32_t> top(static_cast<size_t>(n_chunks));
    std::vector<int32_t> row;  // kept positions of one batch row (ascending)
    kept.reset(B, H);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t j = 0; j < n_chunks; ++j) {
        const int64_t t0 = j * C, t1 = j < n_full ? t0 + C : S;
        double acc = 0.0;
        for (int64_t t = t0; t < t1; ++t) {
          acc += head_sum(scores.data(), H, S, b, t);
        }
        chunk_score[static_cast<size_t>(j)] = acc / static_cast<double>(t1 - t0);
      }
      // The n best chunks (NaN first, then higher, then earlier), in ascending chunk order.
      std::iota(top.begin(), top.end(), 0);
      const double* cs = chunk_score.data();
      std::nth_element(top.begin(), top.begin() + n, top.end(), [cs](int32_t a, int32_t b2) {
        const bool na = std::isnan(cs[a]), nb = std::isnan(cs[b2]);
        if (na != nb) return na;
        if (!na && cs[a] != cs[b2]) return cs[a] > cs[b2];
        return a < b2;
      });
      std::sort(top.begin(), top.begin() + n);
      row.clear();
      for (int64_t k = 0; k < n; ++k) {
        const int64_t j = top[static_cast<size_t>(k)];
        for (int64_t t = j * C; t < (j < n_full ? (j + 1) * C : S); ++t) row.push_back(static_cast<int32_t>(t));
      }
      for (int64_t h = 0; h < H; ++h) {
        kept.positions.insert(kept.positions.end(), row.begin(), row.end());
        kept.offsets[b * H + h + 1] = static_cast<int64_t>(kept.positions.size());
      }
    }
  }
};
static_assert(Granularity<ChunkKV>);

}  // namespace kvf::granularity
