// Kernels of the wrapper executors and of lagkv (press_kernels.cuh). Where the CPU result must be matched bit for
// bit, the threads call the policies' KVF_HOST_DEVICE functions and keep the CPU's order of every sequential
// accumulation (compiled with --fmad=false, as the host with -ffp-contract=off).
#include "kernels/cuda/press_kernels.cuh"

#include <algorithm>

// The policies include policies/dense.hpp (Eigen) for their host paths; keep Eigen host-only in this TU.
#define EIGEN_NO_CUDA

#include "kernels/cuda/chunk_layout.hpp"
#include "kernels/cuda/kept_index.hpp"
#include "policies/granularity/chunkkv.hpp"
#include "policies/postops/think.hpp"
#include "policies/scorers/lagkv.hpp"
#include "policies/scorers/query_states.hpp"

namespace kvf::cuda {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t items, int64_t per_block) {
  const int64_t g = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(g < 1 ? 1 : (g > 65535 * 64 ? 65535 * 64 : g));
}
#define KVF_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

// ---- chunkkv --------------------------------------------------------------------------------------------------

// One warp per (b, chunk): the lanes compute 32 consecutive head sums (coalesced), then every lane adds them to
// the double accumulator one by one, in position order (the CPU's order), so the means are the CPU's doubles.
__global__ void __launch_bounds__(kThreads)
    chunkkv_keys_kernel(const float* scores, int64_t B, int64_t H, int64_t S, int64_t C, int64_t n_chunks,
                        int64_t* keys) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / 32);
  for (int64_t w = (blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x) / 32; w < B * n_chunks; w += warps) {
    const int64_t b = w / n_chunks, j = w % n_chunks, t0 = j * C, t1 = min(t0 + C, S);
    double acc = 0.0;
    for (int64_t base = t0; base < t1; base += 32) {
      const int64_t t = base + lane;
      const float hs = t < t1 ? granularity::ChunkKV::head_sum(scores, H, S, b, t) : 0.f;
      const int cnt = t1 - base < 32 ? static_cast<int>(t1 - base) : 32;
      for (int k = 0; k < cnt; ++k) acc += static_cast<double>(__shfl_sync(0xffffffffu, hs, k));
    }
    if (lane == 0) keys[w] = chunk_order_key(acc / static_cast<double>(t1 - t0));
  }
}

// ---- think ----------------------------------------------------------------------------------------------------

// One thread per (b, query head, channel): the w RoPE'd values of its channel squared and summed in double in row
// order (ThinK::query_norms).
__global__ void think_query_kernel(const float* Q, const float* cos, const float* sin, int64_t B, int64_t Hq,
                                   int64_t w, int d, int64_t rope_rows, float* qh) {
  KVF_GRID_STRIDE(i, B * Hq * d) {
    const int64_t c = i % d, bq = i / d, b = bq / Hq;
    double acc = 0.0;
    for (int64_t r = 0; r < w; ++r) {
      const int64_t rr = rope_rows - w + r;
      const float v = scorers::detail::rope_channel(Q + (bq * w + r) * d, cos + (b * rope_rows + rr) * d,
                                                    sin + (b * rope_rows + rr) * d, d, c);
      acc += static_cast<double>(v * v);
    }
    qh[i] = static_cast<float>(acc / static_cast<double>(w));
  }
}

constexpr int kThinkMaxSegs = 64;
constexpr int kThinkRowsPerSeg = 2048;

// Partial channel energies: block (32 channels x 8 row lanes) per (head, segment, channel tile); each lane sums
// every 8th row of the segment in double, the 8 partials are added in lane order. Deterministic (fixed order).
__global__ void __launch_bounds__(kThreads)
    think_energy_kernel(const float* keys, int d, const int64_t* offsets, int segs, double* partial) {
  __shared__ double part[8][32];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t head = blockIdx.x / segs, s = blockIdx.x % segs;
  const int c = blockIdx.y * 32 + tx;
  const int64_t lo = offsets[head], n = offsets[head + 1] - lo;
  const int64_t r0 = lo + n * s / segs, r1 = lo + n * (s + 1) / segs;
  double acc = 0.0;
  if (c < d)
    for (int64_t r = r0 + ty; r < r1; r += 8) {
      const float k = keys[r * d + c];
      acc += static_cast<double>(k * k);
    }
  part[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < d) {
    double sum = part[0][tx];
    for (int j = 1; j < 8; ++j) sum += part[j][tx];
    partial[(head * segs + s) * d + c] = sum;
  }
}

// One block per head: channel scores qn * float(energy / n) in shared memory, then channel c is pruned iff
// ThinK::channel_pruned (its index in ThinK's order < m), the same channels as ThinK::smallest_channels.
__global__ void think_select_kernel(const double* partial, int segs, int d, const int64_t* offsets, const float* qn,
                                    int64_t m, unsigned char* mask) {
  extern __shared__ float score[];
  const int64_t head = blockIdx.x, n = offsets[head + 1] - offsets[head];
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    double a = 0.0;
    for (int s = 0; s < segs; ++s) a += partial[(head * segs + s) * d + c];
    score[c] = n > 0 ? qn[head * d + c] * static_cast<float>(a / static_cast<double>(n)) : 0.f;
  }
  __syncthreads();
  for (int c = threadIdx.x; c < d; c += blockDim.x)
    mask[head * d + c] = n > 0 && postops::ThinK::channel_pruned(score, d, m, c) ? 1 : 0;
}

// One warp per kept row: the head's pruned channels set to 0.
__global__ void __launch_bounds__(kThreads)
    think_zero_kernel(float* keys, int d, const int64_t* offsets, int64_t heads, int64_t rows,
                      const unsigned char* mask) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kThreads / 32);
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x) / 32; r < rows; r += warps) {
    const unsigned char* mk = mask + kept_head_of_row(offsets, heads, r) * d;
    for (int c = lane; c < d; c += 32)
      if (mk[c]) keys[r * d + c] = 0.f;
  }
}

// ---- lagkv ----------------------------------------------------------------------------------------------------

struct LagGeometry {
  int64_t n_part = 0, scored = 0, end = 0, refs = 0;  // refs: reference partitions per head (n_part - 1)
  bool short_cache = true;
};
LagGeometry lag_geometry(int64_t S, int64_t sink, int64_t lag) {
  LagGeometry g;
  if (S < sink + 2 * lag) return g;
  g.short_cache = false;
  g.n_part = (S - sink) / lag;
  g.refs = g.n_part - 1;
  g.scored = g.refs * lag;
  g.end = sink + g.n_part * lag;
  return g;
}

// Thread per (X in {K, V}, head, reference partition, channel): LagKV::channel_range of partition i + 1.
__global__ void lagkv_range_kernel(const float* K, const float* V, int64_t heads, int64_t S, int d, int64_t sink,
                                   int64_t lag, int64_t refs, float* mn, float* mx) {
  const int64_t per_x = heads * refs * d;
  KVF_GRID_STRIDE(i, 2 * per_x) {
    const int64_t x = i / per_x, j = i % per_x, c = j % d, hi = j / d, head = hi / refs, part = hi % refs;
    const float* X = x == 0 ? K : V;
    scorers::LagKV::channel_range(X + (head * S + sink + (part + 1) * lag) * d, d, lag, c, mn[i], mx[i]);
  }
}

// Thread per (X, head, scored token): LagKV::token_spread against the next partition's range.
__global__ void lagkv_spread_kernel(const float* K, const float* V, int64_t heads, int64_t S, int d, int64_t sink,
                                    int64_t lag, int64_t refs, int64_t scored, const float* mn, const float* mx,
                                    float* spread) {
  const int64_t per_x = heads * scored;
  KVF_GRID_STRIDE(i, 2 * per_x) {
    const int64_t x = i / per_x, j = i % per_x, head = j / scored, t = j % scored, part = t / lag;
    const float* X = x == 0 ? K : V;
    const int64_t r = (x * heads * refs + head * refs + part) * d;
    spread[i] = scorers::LagKV::token_spread(X + (head * S + sink + t) * d, mn + r, mx + r, d);
  }
}

// Thread per (head, partition): LagKV::partition_softmax of the K then the V spreads, in place, and
// q = (0 + 0.5 (eK / sumK)) + 0.5 (eV / sumV) (add_states_score for K, then for V).
__global__ void lagkv_softmax_kernel(int64_t heads, int64_t lag, int64_t refs, int64_t scored, float* spread,
                                     float* q) {
  KVF_GRID_STRIDE(i, heads * refs) {
    const int64_t head = i / refs, part = i % refs, o = head * scored + part * lag;
    float* sk = spread + o;
    float* sv = spread + heads * scored + o;
    const float sum_k = scorers::LagKV::partition_softmax(sk, lag);
    const float sum_v = scorers::LagKV::partition_softmax(sv, lag);
    for (int64_t t = 0; t < lag; ++t) {
      float z = 0.f;
      z += 0.5f * (sk[t] / sum_k);
      z += 0.5f * (sv[t] / sum_v);
      q[o + t] = z;
    }
  }
}

// Thread per (head, position): 1 on the sinks and the tail, the partition rank / lag (or q with cross_scoring)
// in between; the short-cache ramp when there are too few partitions.
__global__ void lagkv_out_kernel(int64_t heads, int64_t S, int64_t sink, int64_t lag, LagGeometry g, bool cross,
                                 const float* q, float* out) {
  KVF_GRID_STRIDE(i, heads * S) {
    const int64_t head = i / S, t = i % S;
    if (g.short_cache) {
      out[i] = scorers::LagKV::short_score(t, sink, S);
    } else if (t < sink || t >= g.end - lag) {
      out[i] = 1.f;
    } else {
      const int64_t u = t - sink;
      const float* qh = q + head * g.scored;
      if (cross) {
        out[i] = qh[u];
      } else {
        const int64_t r = scorers::LagKV::rank_in_partition(qh + (u / lag) * lag, lag, u % lag);
        out[i] = static_cast<float>(r) / static_cast<float>(lag);
      }
    }
  }
}

size_t align_up(size_t x) { return (x + 255) / 256 * 256; }

}  // namespace

cudaError_t chunkkv_chunk_keys(const float* scores, int64_t B, int64_t H, int64_t S, int64_t C, int64_t* keys,
                               cudaStream_t stream) {
  if (B < 0 || H < 1 || S < 1 || C < 1 || !scores || !keys) return cudaErrorInvalidValue;
  const int64_t n_chunks = (S + C - 1) / C;
  if (B == 0) return cudaSuccess;
  chunkkv_keys_kernel<<<grid_for(B * n_chunks, kThreads / 32), kThreads, 0, stream>>>(scores, B, H, S, C, n_chunks,
                                                                                      keys);
  return cudaGetLastError();
}

cudaError_t think_query_energy(const float* Q, const float* cos, const float* sin, int64_t B, int64_t Hq, int64_t w,
                               int64_t d, int64_t rope_rows, float* qh, cudaStream_t stream) {
  if (B < 0 || Hq < 0 || w < 1 || d < 1 || d > (1 << 20) || rope_rows < w || !Q || !cos || !sin || !qh)
    return cudaErrorInvalidValue;
  if (B * Hq == 0) return cudaSuccess;
  think_query_kernel<<<grid_for(B * Hq * d, kThreads), kThreads, 0, stream>>>(Q, cos, sin, B, Hq, w,
                                                                              static_cast<int>(d), rope_rows, qh);
  return cudaGetLastError();
}

size_t think_workspace_bytes(int64_t heads, int64_t d) {
  return align_up(static_cast<size_t>(heads * kThinkMaxSegs * d) * sizeof(double)) + static_cast<size_t>(heads * d);
}

cudaError_t think_prune(float* keys, int64_t d, const KeptView& kept, const float* qn, int64_t m, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream) {
  if (d < 1 || d > 8192 || kept.heads < 0 || kept.rows < 0 || m < 0) return cudaErrorInvalidValue;
  if (kept.rows == 0 || m == 0) return cudaSuccess;
  if (!keys || !qn || !kept.offsets || !kept.positions || kept.heads == 0 || !workspace ||
      workspace_bytes < think_workspace_bytes(kept.heads, d))
    return cudaErrorInvalidValue;
  const int64_t avg = kept.rows / kept.heads;
  const int segs = static_cast<int>(std::min<int64_t>(kThinkMaxSegs, std::max<int64_t>(1, avg / kThinkRowsPerSeg)));
  if (kept.heads * segs > 2147483647LL) return cudaErrorInvalidValue;
  auto* partial = static_cast<double*>(workspace);
  auto* mask = static_cast<unsigned char*>(workspace) + align_up(static_cast<size_t>(kept.heads * kThinkMaxSegs * d) *
                                                                 sizeof(double));
  const dim3 eb(32, 8), eg(static_cast<unsigned>(kept.heads * segs), static_cast<unsigned>((d + 31) / 32));
  think_energy_kernel<<<eg, eb, 0, stream>>>(keys, static_cast<int>(d), kept.offsets, segs, partial);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  think_select_kernel<<<static_cast<unsigned>(kept.heads), kThreads, static_cast<size_t>(d) * sizeof(float), stream>>>(
      partial, segs, static_cast<int>(d), kept.offsets, qn, m, mask);
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  think_zero_kernel<<<grid_for(kept.rows, kThreads / 32), kThreads, 0, stream>>>(keys, static_cast<int>(d),
                                                                                 kept.offsets, kept.heads, kept.rows,
                                                                                 mask);
  return cudaGetLastError();
}

size_t lagkv_workspace_bytes(int64_t heads, int64_t S, int64_t d, int64_t n_sink, int64_t lag) {
  const LagGeometry g = lag_geometry(S, n_sink, lag);
  if (g.short_cache) return 0;
  const size_t range = align_up(static_cast<size_t>(2 * heads * g.refs * d) * sizeof(float));
  const size_t per = align_up(static_cast<size_t>(heads * g.scored) * sizeof(float));
  return 2 * range + 3 * per;  // mn, mx; spread (K, V), q
}

cudaError_t lagkv_scores(const float* K, const float* V, int64_t heads, int64_t S, int64_t d, int64_t n_sink,
                         int64_t lag, bool cross_scoring, float* out, void* workspace, size_t workspace_bytes,
                         cudaStream_t stream) {
  if (heads < 0 || S < 0 || d < 1 || d > (1 << 20) || n_sink < 0 || lag < 1 || !out) return cudaErrorInvalidValue;
  if (heads * S == 0) return cudaSuccess;
  const LagGeometry g = lag_geometry(S, n_sink, lag);
  if (!g.short_cache) {
    if (!K || !V || !workspace || workspace_bytes < lagkv_workspace_bytes(heads, S, d, n_sink, lag))
      return cudaErrorInvalidValue;
    const size_t range = align_up(static_cast<size_t>(2 * heads * g.refs * d) * sizeof(float));
    const size_t per = align_up(static_cast<size_t>(heads * g.scored) * sizeof(float));
    auto* base = static_cast<unsigned char*>(workspace);
    auto* mn = reinterpret_cast<float*>(base);
    auto* mx = reinterpret_cast<float*>(base + range);
    auto* spread = reinterpret_cast<float*>(base + 2 * range);  // (2, heads, scored)
    auto* q = reinterpret_cast<float*>(base + 2 * range + 2 * per);
    const int di = static_cast<int>(d);
    lagkv_range_kernel<<<grid_for(2 * heads * g.refs * d, kThreads), kThreads, 0, stream>>>(K, V, heads, S, di, n_sink,
                                                                                          lag, g.refs, mn, mx);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    lagkv_spread_kernel<<<grid_for(2 * heads * g.scored, kThreads), kThreads, 0, stream>>>(
        K, V, heads, S, di, n_sink, lag, g.refs, g.scored, mn, mx, spread);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    lagkv_softmax_kernel<<<grid_for(heads * g.refs, 128), 128, 0, stream>>>(heads, lag, g.refs, g.scored, spread, q);
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
    lagkv_out_kernel<<<grid_for(heads * S, kThreads), kThreads, 0, stream>>>(heads, S, n_sink, lag, g, cross_scoring,
                                                                            q, out);
  } else {
    lagkv_out_kernel<<<grid_for(heads * S, kThreads), kThreads, 0, stream>>>(heads, S, n_sink, lag, g, cross_scoring,
                                                                            nullptr, out);
  }
  return cudaGetLastError();
}

}  // namespace kvf::cuda
