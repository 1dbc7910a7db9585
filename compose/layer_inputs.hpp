#pragma once
// LayerInputs: everything a press may read at one layer, as raw float32 pointers (no torch).
// The torch bridge (kernels/) fills it from core's LayerView. All arrays are row-major and contiguous.
#include <cstdint>

namespace kvf {

struct LayerInputs {
  int64_t batch = 0;     // B
  int64_t q_heads = 0;   // Hq
  int64_t kv_heads = 0;  // H
  int64_t seq = 0;       // S: cache length being compressed
  int64_t seq_stride = 0;  // S of the underlying (B, H, S, d) arrays; seq_offset selects a sub-range (chunks)
  int64_t seq_offset = 0;
  int64_t token_stride = 0;  // T of the underlying (B, T, hidden) array; token_offset selects a sub-range
  int64_t token_offset = 0;
  int64_t tokens = 0;    // T: rows of hidden_states (== seq at a plain prefill; a chunk's length inside ChunkPress)
  int64_t rope_rows = 0; // rows of cos/sin (the whole forward; kvpress does not re-slice them inside wrappers)
  int64_t head_dim = 0;  // d
  int64_t hidden = 0;    // model hidden size
  int64_t layer = 0;
  int64_t num_layers = 0;
  double rms_norm_eps = 1e-6;
  double compression_ratio = 0.0;  // the applying press's ratio (set by the executors): kvpress scorers that read
                                   // self.compression_ratio (streaming_llm) see it here

  const float* hidden_states = nullptr;  // (B, T, hidden)    attention input, after input_layernorm
  const float* keys = nullptr;           // (B, H, S, d)       post-RoPE
  const float* values = nullptr;         // (B, H, S, d)
  const float* cos = nullptr;            // (B, rope_rows, d)  rotate_half layout
  const float* sin = nullptr;            // (B, rope_rows, d)
  const float* inv_freq = nullptr;       // (d/2)              RoPE frequencies incl. llama3 scaling
  const float* q_proj = nullptr;         // (Hq*d, hidden)
  const float* q_bias = nullptr;         // (Hq*d) or null
  const float* q_norm = nullptr;         // (d) or null: Qwen3 per-head RMSNorm on queries
  const float* o_proj = nullptr;         // (hidden, Hq*d)
  const float* attentions = nullptr;     // (B, Hq, T, S) softmax weights, or null
  // Optional: pre-RoPE queries (q_proj + bias, then q_norm) of hidden rows [query_row0, query_row0 + query_rows)
  // of the underlying (B, T, hidden) array, (B, Hq, query_rows, d), computed once per layer by the torch bridge
  // (one multithreaded GEMM for all heads) for the rows the scorer declares (Scorer::query_rows). Policies fall
  // back to projecting the rows themselves when this is null or does not cover a request.
  const float* queries = nullptr;
  int64_t query_row0 = 0, query_rows = 0;
  // Optional: mean (B, Hq, d) and biased covariance (B, Hq, d, d, or null) of the pre-RoPE queries of hidden rows
  // [query_stats_row0, query_stats_row0 + query_stats_rows) of the underlying array, computed once per layer by the
  // torch bridge (kernels/query_statistics.hpp) for the rows the scorer declares (Scorer::query_stats_request).
  // Policies compute them themselves when null or for other rows.
  const float* query_mean = nullptr;
  const float* query_cov = nullptr;
  int64_t query_stats_row0 = 0, query_stats_rows = 0;

  int64_t group() const { return q_heads / kv_heads; }
  // The precomputed query statistics of hidden rows [t0, t0 + rows) of this view, when the bridge made them.
  bool has_query_stats(int64_t t0, int64_t rows, bool covariance) const {
    return query_mean && (!covariance || query_cov) && query_stats_row0 == token_offset + t0 &&
           query_stats_rows == rows;
  }
  // Position 0 of (b, h)'s keys/values in this view; rows are head_dim apart.
  const float* key(int64_t b, int64_t h) const { return keys + ((b * kv_heads + h) * seq_stride + seq_offset) * head_dim; }
  const float* value(int64_t b, int64_t h) const {
    return values + ((b * kv_heads + h) * seq_stride + seq_offset) * head_dim;
  }
  const float* hidden_row(int64_t b, int64_t t) const {
    return hidden_states + (b * token_stride + token_offset + t) * hidden;
  }
  // A sub-range [begin, begin + len) of the positions (and of the hidden rows, which cover the same tokens).
  LayerInputs slice(int64_t begin, int64_t len) const {
    LayerInputs s = *this;
    s.seq = len;
    s.seq_offset = seq_offset + begin;
    s.tokens = len;
    s.token_offset = token_offset + begin;
    s.attentions = nullptr;
    return s;
  }
  const float* cos_row(int64_t b, int64_t r) const { return cos + (b * rope_rows + r) * head_dim; }
  const float* sin_row(int64_t b, int64_t r) const { return sin + (b * rope_rows + r) * head_dim; }
  const float* attention(int64_t b, int64_t qh, int64_t i) const {  // only for an unsliced view
    return attentions + ((b * q_heads + qh) * tokens + i) * seq;
  }
};

}  // namespace kvf
