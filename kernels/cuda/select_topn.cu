// Per-head top-n selection (see select_topn.cuh). Two steps per head:
//   1. the threshold key T = the n-th largest key: one block sorts the head's keys (Block path, S <= one tile), or
//      four 8-bit-digit histogram passes over every tile of the head narrow it down (Radix path, any S);
//   2. one ordered compaction: a block scan over (key > T, key == T) flags in position order; a position is kept
//      when key > T or it is among the first `ties` keys == T, and its output index is
//      above_before + min(ties_before, ties), so positions come out ascending without a sort.
#include "kernels/cuda/select_topn.cuh"

#include <algorithm>
#include <climits>

#include <cub/block/block_load.cuh>
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "kernels/cuda/radix_select.hpp"
#include "policies/score_key.hpp"

namespace kvf::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kItems = 16;
static_assert(kThreads * kItems == kSelectTile);
static_assert(kThreads == kRadixBins, "the histogram kernels give each thread one bin");

using Load = cub::BlockLoad<float, kThreads, kItems, cub::BLOCK_LOAD_WARP_TRANSPOSE>;
using Scan = cub::BlockScan<uint64_t, kThreads>;

// (key > T, key == T) as one 64-bit count: one scan yields both prefix counts (each < 2^32 as S < 2^31).
__device__ __forceinline__ uint64_t pack_flags(uint32_t key, uint32_t T) {
  return (static_cast<uint64_t>(key > T) << 32) | static_cast<uint64_t>(key == T);
}

// Keys of one tile in blocked arrangement (thread i holds positions i*kItems ..); 0 pads past `valid`, below every
// real key (real keys are >= 0x007FFFFF, policies/score_key.hpp).
// With nan_high == false a NaN's key is 0 too; pads still come after every real position, so the ordered
// compaction never reaches them (at most `ties` keys == T are kept, and S >= n real ones precede the pads).
__device__ __forceinline__ void tile_keys(const float* scores, int valid, typename Load::TempStorage& tmp,
                                          uint32_t (&keys)[kItems], bool nan_high) {
  float v[kItems];
  Load(tmp).Load(scores, v, valid, 0.f);
#pragma unroll
  for (int j = 0; j < kItems; ++j) keys[j] = threadIdx.x * kItems + j < valid ? score_key(v[j], nan_high) : 0u;
}

// Step 2 for one tile: `before` holds the tile's exclusive (above, ties) prefix counts, `offset` those of the
// head's earlier tiles.
__device__ __forceinline__ void emit_kept(const uint32_t (&keys)[kItems], const uint64_t (&before)[kItems],
                                          uint64_t offset, uint32_t T, uint32_t ties, int64_t pos0, int32_t* out) {
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const uint64_t c = offset + before[j];
    const uint32_t above_before = static_cast<uint32_t>(c >> 32), ties_before = static_cast<uint32_t>(c);
    const bool keep = keys[j] > T || (keys[j] == T && ties_before < ties);
    if (keep) out[above_before + min(ties_before, ties)] = static_cast<int32_t>(pos0 + threadIdx.x * kItems + j);
  }
}

// Block path: one block per head, S <= kSelectTile.
__global__ void __launch_bounds__(kThreads) select_block_kernel(const float* scores, int S, int n, int32_t* out,
                                                                   bool nan_high) {
  using Sort = cub::BlockRadixSort<uint32_t, kThreads, kItems>;
  __shared__ union {
    typename Load::TempStorage load;
    typename Sort::TempStorage sort;
    typename Scan::TempStorage scan;
  } tmp;
  __shared__ uint32_t threshold;
  const int64_t head = blockIdx.x;
  uint32_t keys[kItems], sorted[kItems];
  tile_keys(scores + head * S, S, tmp.load, keys, nan_high);
#pragma unroll
  for (int j = 0; j < kItems; ++j) sorted[j] = keys[j];
  __syncthreads();
  Sort(tmp.sort).SortDescending(sorted);  // blocked: thread i holds ranks i*kItems ..
  const int r = n - 1 - static_cast<int>(threadIdx.x) * kItems;
#pragma unroll
  for (int j = 0; j < kItems; ++j)
    if (j == r) threshold = sorted[j];
  __syncthreads();
  const uint32_t T = threshold;
  uint64_t before[kItems], total;
#pragma unroll
  for (int j = 0; j < kItems; ++j) before[j] = pack_flags(keys[j], T);
  Scan(tmp.scan).ExclusiveSum(before, before, total);
  const uint32_t ties = static_cast<uint32_t>(n) - static_cast<uint32_t>(total >> 32);
  emit_kept(keys, before, 0, T, ties, 0, out + head * n);
}

// Radix path state per head: x = the key prefix fixed so far (T once all passes ran), y = the rank still sought
// among the candidates (the number of ties to keep once all passes ran).
__global__ void radix_init_kernel(uint2* state, uint32_t* hist, uint32_t n) {
  hist[blockIdx.x * kRadixBins + threadIdx.x] = 0;
  if (threadIdx.x == 0) state[blockIdx.x] = make_uint2(0u, n);
}

// One pass: the histogram of the digit at `shift` over the head's candidates, one block per tile.
__global__ void __launch_bounds__(kThreads) radix_hist_kernel(const float* scores, int64_t S, const uint2* state,
                                                              uint32_t* hist, int shift, bool nan_high) {
  __shared__ uint32_t h[kRadixBins];
  const int64_t head = blockIdx.y, base = static_cast<int64_t>(blockIdx.x) * kSelectTile;
  h[threadIdx.x] = 0;
  __syncthreads();
  const uint32_t prefix = state[head].x;
  const float* s = scores + head * S;
  const unsigned lane = threadIdx.x & 31u;
#pragma unroll 4
  for (int j = 0; j < kItems; ++j) {
    const int64_t t = base + j * kThreads + threadIdx.x;
    uint32_t digit = kRadixBins;  // not a candidate
    if (t < S) {
      const uint32_t key = score_key(s[t], nan_high);
      if (radix_candidate(key, prefix, shift)) digit = radix_digit(key, shift);
    }
    // Real scores share few digits (the exponent byte, 0/1 masks): one atomic per distinct digit per warp.
    const unsigned peers = __match_any_sync(0xFFFFFFFFu, digit);
    if (digit < kRadixBins && lane == static_cast<unsigned>(__ffs(peers) - 1)) atomicAdd(&h[digit], __popc(peers));
  }
  __syncthreads();
  if (h[threadIdx.x] != 0) atomicAdd(&hist[head * kRadixBins + threadIdx.x], h[threadIdx.x]);
}

// After a pass: fix the digit holding the sought rank (radix_holds_rank), clear the histogram for the next pass.
__global__ void __launch_bounds__(kRadixBins) radix_pick_kernel(uint2* state, uint32_t* hist, int shift) {
  using BinScan = cub::BlockScan<uint32_t, kRadixBins>;
  __shared__ typename BinScan::TempStorage tmp;
  uint32_t* hh = hist + static_cast<int64_t>(blockIdx.x) * kRadixBins;
  const uint32_t d = kRadixBins - 1 - threadIdx.x;  // thread 0 holds the top digit: exclusive sums count larger ones
  const uint32_t count = hh[d];
  uint32_t greater;
  BinScan(tmp).ExclusiveSum(count, greater);
  const uint2 st = state[blockIdx.x];
  __syncthreads();  // every thread has read the state before the one holding the rank rewrites it
  hh[d] = 0;
  if (radix_holds_rank(greater, count, st.y)) state[blockIdx.x] = make_uint2(st.x | (d << shift), st.y - greater);
}

// (above, ties) counts of every tile, for the tiles' output offsets.
__global__ void __launch_bounds__(kThreads) tile_count_kernel(const float* scores, int64_t S, const uint2* state,
                                                              uint64_t* tile_counts, int64_t tiles, bool nan_high) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t head = blockIdx.y, base = static_cast<int64_t>(blockIdx.x) * kSelectTile;
  const uint32_t T = state[head].x;
  const float* s = scores + head * S;
  uint64_t c = 0;
#pragma unroll 4
  for (int j = 0; j < kItems; ++j) {
    const int64_t t = base + j * kThreads + threadIdx.x;
    if (t < S) c += pack_flags(score_key(s[t], nan_high), T);
  }
  const uint64_t total = Reduce(tmp).Sum(c);
  if (threadIdx.x == 0) tile_counts[head * tiles + blockIdx.x] = total;
}

// Exclusive scan of each head's tile counts, in place (one block per head).
__global__ void __launch_bounds__(kThreads) tile_scan_kernel(uint64_t* tile_counts, int64_t tiles) {
  __shared__ typename Scan::TempStorage tmp;
  uint64_t* c = tile_counts + static_cast<int64_t>(blockIdx.x) * tiles;
  uint64_t carry = 0;
  for (int64_t b = 0; b < tiles; b += kThreads) {
    const int64_t i = b + threadIdx.x;
    const uint64_t v = i < tiles ? c[i] : 0;
    uint64_t ex, total;
    Scan(tmp).ExclusiveSum(v, ex, total);
    if (i < tiles) c[i] = carry + ex;
    carry += total;
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kThreads) tile_write_kernel(const float* scores, int64_t S, int64_t n,
                                                              const uint2* state, const uint64_t* tile_offsets,
                                                              int64_t tiles, int32_t* out, bool nan_high) {
  __shared__ union {
    typename Load::TempStorage load;
    typename Scan::TempStorage scan;
  } tmp;
  const int64_t head = blockIdx.y, base = static_cast<int64_t>(blockIdx.x) * kSelectTile;
  const uint2 st = state[head];
  const int valid = static_cast<int>(min(S - base, kSelectTile));
  uint32_t keys[kItems];
  tile_keys(scores + head * S + base, valid, tmp.load, keys, nan_high);
  __syncthreads();
  uint64_t before[kItems];
#pragma unroll
  for (int j = 0; j < kItems; ++j) before[j] = pack_flags(keys[j], st.x);
  Scan(tmp.scan).ExclusiveSum(before, before);
  emit_kept(keys, before, tile_offsets[head * tiles + blockIdx.x], st.x, st.y, base, out + head * n);
}

bool uses_block(int64_t S, SelectPath path) {
  return path == SelectPath::Block || (path == SelectPath::Auto && S <= kSelectTile);
}
int64_t tiles_of(int64_t S) { return (S + kSelectTile - 1) / kSelectTile; }
constexpr size_t align8(size_t b) { return (b + 7) & ~size_t{7}; }

}  // namespace

size_t select_topn_workspace_bytes(int64_t heads, int64_t S, SelectPath path) {
  if (heads <= 0 || S <= 0 || uses_block(S, path)) return 0;
  const auto h = static_cast<size_t>(heads);
  return align8(h * static_cast<size_t>(tiles_of(S)) * sizeof(uint64_t)) + align8(h * sizeof(uint2)) +
         h * kRadixBins * sizeof(uint32_t);
}

cudaError_t select_topn(const float* scores, int64_t heads, int64_t S, int64_t n, int32_t* out, void* workspace,
                        size_t workspace_bytes, cudaStream_t stream, SelectPath path, bool nan_high) {
  if (heads < 0 || S < 0 || S > INT_MAX) return cudaErrorInvalidValue;
  n = std::clamp<int64_t>(n, 0, S);
  if (heads == 0 || n == 0) return cudaSuccess;
  if (path == SelectPath::Block && S > kSelectTile) return cudaErrorInvalidConfiguration;
  if (uses_block(S, path)) {
    if (heads > INT_MAX) return cudaErrorInvalidConfiguration;
    select_block_kernel<<<static_cast<unsigned>(heads), kThreads, 0, stream>>>(scores, static_cast<int>(S),
                                                                                static_cast<int>(n), out, nan_high);
    return cudaGetLastError();
  }
  if (workspace == nullptr || workspace_bytes < select_topn_workspace_bytes(heads, S, path))
    return cudaErrorInvalidValue;
  if (heads > 65535) return cudaErrorInvalidConfiguration;  // heads run along grid.y
  const int64_t tiles = tiles_of(S);
  auto* tile_counts = static_cast<uint64_t*>(workspace);
  auto* state = reinterpret_cast<uint2*>(static_cast<char*>(workspace) +
                                         align8(static_cast<size_t>(heads * tiles) * sizeof(uint64_t)));
  auto* hist = reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(state) +
                                           align8(static_cast<size_t>(heads) * sizeof(uint2)));
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(heads));
  radix_init_kernel<<<static_cast<unsigned>(heads), kRadixBins, 0, stream>>>(state, hist, static_cast<uint32_t>(n));
  for (int shift = 32 - kRadixBits; shift >= 0; shift -= kRadixBits) {
    radix_hist_kernel<<<grid, kThreads, 0, stream>>>(scores, S, state, hist, shift, nan_high);
    radix_pick_kernel<<<static_cast<unsigned>(heads), kRadixBins, 0, stream>>>(state, hist, shift);
  }
  tile_count_kernel<<<grid, kThreads, 0, stream>>>(scores, S, state, tile_counts, tiles, nan_high);
  tile_scan_kernel<<<static_cast<unsigned>(heads), kThreads, 0, stream>>>(tile_counts, tiles);
  tile_write_kernel<<<grid, kThreads, 0, stream>>>(scores, S, n, state, tile_counts, tiles, out, nan_high);
  return cudaGetLastError();
}

}  // namespace kvf::cuda
