#pragma once
// Text generation: greedy (kvpress's default) or temperature/top-p sampling with a seed,
// stop on any EOS id, streaming callback per token.
#include <cstdint>
#include <functional>
#include <vector>

#include <ATen/Tensor.h>

#include "core/hooks.hpp"
#include "core/kv_cache.hpp"

namespace kvf {

class Model;

struct SamplingConfig {
  int64_t max_new_tokens = 256;
  double temperature = 0.0;  // 0 = greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // generation ends after emitting one of these (not included in the text)
};

// Called with each new token; return false to stop early.
using TokenCallback = std::function<bool(int32_t token)>;

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated tokens, without the stop token
  bool stopped_on_eos = false;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  int64_t prompt_tokens = 0;
};

// Prefills `prompt` into `cache` (which may already hold a context) then decodes.
GenerationResult generate(const Model& model, KVCache& cache, const std::vector<int32_t>& prompt,
                          const SamplingConfig& cfg, const TokenCallback& on_token = {}, LayerHook* hook = nullptr);

// Picks the next token from logits (V) float32: argmax when temperature == 0, else temperature + top-p
// (transformers' TopPLogitsWarper rule: keep the smallest set whose probability reaches top_p).
int32_t pick_token(const at::Tensor& logits, const SamplingConfig& cfg, at::Generator& gen);

}  // namespace kvf
