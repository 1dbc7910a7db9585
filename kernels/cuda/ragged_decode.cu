#include "kernels/cuda/ragged_decode.cuh"

#include <cuda_bf16.h>

#include <cmath>

namespace kvf::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kMaxGroup = 8;

__device__ inline float load(const float* p, int64_t i) { return p[i]; }
__device__ inline float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
__device__ inline void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ inline void store(__nv_bfloat16* p, int64_t i, float v) { p[i] = __float2bfloat16(v); }

__device__ inline float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Workspace of one (split, kv head): per query head of the group, m (running max of the scaled logits), l (sum of
// exp(logit - m)) and acc[d] (sum of exp(logit - m) * v).
struct Partial {
  static __host__ __device__ int64_t floats(int64_t G, int64_t d) { return G * (d + 2); }
};

// grid (splits, B*Hkv), kWarps warps. Lane l of a warp owns dims l, l + 32, ... (NJ of them).
template <class T, int NJ>
__global__ void decode_split_kernel(RaggedDecodeArgs a, float* ws, int64_t splits) {
  const int64_t head = blockIdx.y, split = blockIdx.x;
  const int64_t G = a.q_heads / a.kv_heads, d = a.head_dim;
  const int64_t b = head / a.kv_heads, h = head % a.kv_heads;
  const int64_t len = a.len[head], row0 = a.start[head];
  const int64_t lo = split * kDecodeSplitRows, hi = min(len, lo + kDecodeSplitRows);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* q = static_cast<const T*>(a.q) + (b * a.q_heads + h * G) * d;
  const T* K = static_cast<const T*>(a.keys);
  const T* V = static_cast<const T*>(a.values);

  float qr[kMaxGroup][NJ], acc[kMaxGroup][NJ], m[kMaxGroup], l[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    m[g] = -INFINITY, l[g] = 0.f;
    for (int j = 0; j < NJ; ++j) {
      const int64_t e = lane + 32 * j;
      qr[g][j] = (g < G && e < d) ? load(q, g * d + e) * a.scale : 0.f;
      acc[g][j] = 0.f;
    }
  }
  for (int64_t r = lo + warp; r < hi; r += kWarps) {
    const int64_t row = (row0 + r) * d;
    float kr[NJ], vr[NJ];
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const int64_t e = lane + 32 * j;
      kr[j] = e < d ? load(K, row + e) : 0.f;
      vr[j] = e < d ? load(V, row + e) : 0.f;
    }
    // Unrolled over the largest group with a uniform guard, so qr/acc stay in registers (a runtime index would
    // put them in local memory).
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g >= G) break;
      float s = 0.f;
#pragma unroll
      for (int j = 0; j < NJ; ++j) s += qr[g][j] * kr[j];
      s = warp_sum(s);
      const float mn = fmaxf(m[g], s);
      const float c = expf(m[g] - mn), p = expf(s - mn);  // m = -inf at first: c = 0
      l[g] = l[g] * c + p;
#pragma unroll
      for (int j = 0; j < NJ; ++j) acc[g][j] = acc[g][j] * c + p * vr[j];
      m[g] = mn;
    }
  }
  // Merge the warps in shared memory: warp w's (m, l, acc) per g.
  extern __shared__ float sh[];  // kWarps * G * (d + 2)
  float* mine = sh + warp * Partial::floats(G, d);
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= G) break;
    if (lane == 0) mine[g * (d + 2)] = m[g], mine[g * (d + 2) + 1] = l[g];
#pragma unroll
    for (int j = 0; j < NJ; ++j) {
      const int64_t e = lane + 32 * j;
      if (e < d) mine[g * (d + 2) + 2 + e] = acc[g][j];
    }
  }
  __syncthreads();
  float* outp = ws + (split * gridDim.y + head) * Partial::floats(G, d);
  for (int64_t x = threadIdx.x; x < G * d; x += blockDim.x) {
    const int64_t g = x / d, e = x % d;
    float M = -INFINITY;
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sh[w * Partial::floats(G, d) + g * (d + 2)]);
    float L = 0.f, A = 0.f;
    for (int w = 0; w < kWarps; ++w) {
      const float* p = sh + w * Partial::floats(G, d) + g * (d + 2);
      const float c = M == -INFINITY ? 0.f : expf(p[0] - M);
      L += p[1] * c;
      A += p[2 + e] * c;
    }
    outp[g * (d + 2) + 2 + e] = A;
    if (e == 0) outp[g * (d + 2)] = M, outp[g * (d + 2) + 1] = L;
  }
}

// grid (B*Hq), block d threads (<= 256): out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
template <class T>
__global__ void decode_merge_kernel(RaggedDecodeArgs a, const float* ws, int64_t splits) {
  const int64_t qrow = blockIdx.x, e = threadIdx.x;
  const int64_t G = a.q_heads / a.kv_heads, d = a.head_dim;
  const int64_t b = qrow / a.q_heads, j = qrow % a.q_heads, h = j / G, g = j % G;
  const int64_t head = b * a.kv_heads + h;
  const int64_t used = (a.len[head] + kDecodeSplitRows - 1) / kDecodeSplitRows;  // splits that saw rows
  if (e >= d) return;
  float M = -INFINITY;
  for (int64_t s = 0; s < used; ++s) M = fmaxf(M, ws[(s * a.batch * a.kv_heads + head) * Partial::floats(G, d) + g * (d + 2)]);
  float L = 0.f, A = 0.f;
  for (int64_t s = 0; s < used; ++s) {
    const float* p = ws + (s * a.batch * a.kv_heads + head) * Partial::floats(G, d) + g * (d + 2);
    const float c = M == -INFINITY ? 0.f : expf(p[0] - M);
    L += p[1] * c;
    A += p[2 + e] * c;
  }
  store(static_cast<T*>(a.out), qrow * d + e, L > 0.f ? A / L : 0.f);
}

int64_t num_splits(const RaggedDecodeArgs& a) {
  return a.max_len > 0 ? (a.max_len + kDecodeSplitRows - 1) / kDecodeSplitRows : 1;
}

template <class T, int NJ>
cudaError_t launch(const RaggedDecodeArgs& a, float* ws, cudaStream_t stream) {
  const int64_t splits = num_splits(a), G = a.q_heads / a.kv_heads;
  const size_t shmem = sizeof(float) * kWarps * Partial::floats(G, a.head_dim);
  decode_split_kernel<T, NJ><<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(a.batch * a.kv_heads)),
                               kWarps * 32, shmem, stream>>>(a, ws, splits);
  decode_merge_kernel<T><<<static_cast<unsigned>(a.batch * a.q_heads), static_cast<unsigned>(a.head_dim), 0, stream>>>(
      a, ws, splits);
  return cudaGetLastError();
}

template <class T>
cudaError_t dispatch(const RaggedDecodeArgs& a, float* ws, cudaStream_t stream) {
  const int64_t nj = (a.head_dim + 31) / 32;
  if (nj <= 1) return launch<T, 1>(a, ws, stream);
  if (nj <= 2) return launch<T, 2>(a, ws, stream);
  if (nj <= 4) return launch<T, 4>(a, ws, stream);
  return launch<T, 8>(a, ws, stream);
}

}  // namespace

size_t ragged_decode_workspace_bytes(const RaggedDecodeArgs& a) {
  if (a.kv_heads <= 0) return 0;
  return sizeof(float) * static_cast<size_t>(num_splits(a) * a.batch * a.kv_heads *
                                             Partial::floats(a.q_heads / a.kv_heads, a.head_dim));
}

cudaError_t ragged_decode_attention(const RaggedDecodeArgs& a, void* workspace, size_t workspace_bytes,
                                    cudaStream_t stream) {
  if (a.batch <= 0 || a.kv_heads <= 0 || a.q_heads % a.kv_heads != 0 || a.q_heads / a.kv_heads > kMaxGroup ||
      a.head_dim <= 0 || a.head_dim > 256 || !a.q || !a.keys || !a.values || !a.start || !a.len || !a.out)
    return cudaErrorInvalidValue;
  if (workspace_bytes < ragged_decode_workspace_bytes(a) || (!workspace && workspace_bytes))
    return cudaErrorInvalidValue;
  // Review fix: the split kernel runs the B*Hkv heads along grid.y (at most 65535) and the merge kernel B*Hq blocks
  // along grid.x; say so instead of a launch failure.
  if (a.batch * a.kv_heads > 65535 || a.batch * a.q_heads > INT32_MAX || a.max_len < 0)
    return cudaErrorInvalidConfiguration;
  float* ws = static_cast<float*>(workspace);
  return a.type == CacheType::BF16 ? dispatch<__nv_bfloat16>(a, ws, stream) : dispatch<float>(a, ws, stream);
}

}  // namespace kvf::cuda
