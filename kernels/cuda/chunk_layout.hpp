#pragma once
// Budget arithmetic and chunk ordering of the CUDA chunk / chunkkv executors (cuda_granularity_executors.hpp),
// torch-free so the host tests (tests/test_select_host.cpp) check it against the CPU granularities.
#include <cstdint>

#include "compose/budget.hpp"
#include "compose/host_device.hpp"

namespace kvf::cuda {

// granularity::Chunk on S positions: n_full chunks of chunk_length keep per_full each, a last partial chunk of rem
// positions keeps per_rem (0 when rem == 0); every head keeps total = n_full * per_full + per_rem, ascending by
// chunk. Chunk::chunk_kept: max(1, int(len * (1 - cr))) clamped to len.
struct ChunkLayout {
  int64_t n_full = 0, rem = 0, per_full = 0, per_rem = 0, total = 0;
};
inline int64_t chunk_kept(int64_t len, double cr) {
  const int64_t n = n_kept(len, cr);
  return n < 1 ? 1 : (n > len ? len : n);
}
inline ChunkLayout chunk_layout(int64_t S, int64_t chunk_length, double cr) {
  ChunkLayout l;
  l.n_full = S / chunk_length;
  l.rem = S % chunk_length;
  l.per_full = l.n_full > 0 ? chunk_kept(chunk_length, cr) : 0;
  l.per_rem = l.rem > 0 ? chunk_kept(l.rem, cr) : 0;
  l.total = l.n_full * l.per_full + l.per_rem;
  return l;
}

// granularity::ChunkKV on S positions: n_chunks chunks (a trailing partial one included), the n best kept.
// n_full == 0: the wrapped selector runs on the layer's scores instead.
struct ChunkKVLayout {
  int64_t n_full = 0, n_chunks = 0, n = 0;
};
inline ChunkKVLayout chunkkv_layout(int64_t S, int64_t chunk_length, double cr) {
  ChunkKVLayout l;
  l.n_full = S / chunk_length;
  l.n_chunks = l.n_full + (S % chunk_length > 0 ? 1 : 0);
  const int64_t k = n_kept(l.n_chunks, cr);
  l.n = l.n_chunks == 0 ? 0 : (k < 1 ? 1 : (k > l.n_chunks ? l.n_chunks : k));  // min(max(1, k), n_chunks)
  return l;
}

// The ascending sort key of a chunk score (a double mean) in ChunkKV's order: NaN first (every NaN equal), then
// larger before smaller, -0 == +0. A stable ascending sort by this key puts equal scores in chunk order, so the
// first n of that sort are ChunkKV's n best chunks (ties to the earlier chunk).
KVF_HOST_DEVICE inline int64_t chunk_order_key(double x) {
  if (x != x) return INT64_MIN;
  x = x + 0.0;  // -0 -> +0
  const int64_t bits = double_bits(x);
  const int64_t mono = bits >= 0 ? bits : bits ^ INT64_MAX;  // signed order == numeric order
  return ~mono;  // descending; never INT64_MIN (mono < INT64_MAX: NaN bits are excluded)
}

}  // namespace kvf::cuda
