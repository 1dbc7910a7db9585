#pragma once
// The context-once, many-questions pipeline: kvpress's KVPressTextGenerationPipeline, same semantics.
//   - the context (inside the chat template's user turn) is prefilled once with the press hook attached;
//   - each question (+ the template's end-of-turn/assistant header + answer_prefix) is never compressed;
//   - questions continue at the ORIGINAL context length C (RoPE positions), leaving a gap equal to the evicted
//     tokens — except when `rerotated_positions` (top-level key_rerotation): then C = compressed length;
//   - greedy decoding, first token never checked for EOS; the last token is not fed back;
//   - the cache is cut back to the compressed context after every question.
#include <cstdint>
#include <string>
#include <vector>

#include "core/hooks.hpp"
#include "core/model_loader.hpp"

namespace kvf {

struct PipelineOptions {
  int64_t max_new_tokens = 50;
  int64_t max_context_length = 0;  // 0 = no limit; else keep the FIRST max_context_length context tokens
  std::string answer_prefix;
  bool use_chat_template = true;   // false: context = BOS + context, question suffix "\n"
  bool rerotated_positions = false;
};

struct PipelinePrompt {
  std::vector<int32_t> context_ids;
  std::vector<std::vector<int32_t>> question_ids;
  bool truncated = false;
};

struct PipelineResult {
  std::vector<std::string> answers;
  std::vector<int64_t> answer_tokens;
  int64_t context_tokens = 0;
  int64_t cache_bytes_before = 0;  // the cache the context would need uncompressed
  int64_t cache_bytes_after = 0;   // after the press
  std::vector<int64_t> layer_bytes_after;
  double prefill_seconds = 0;      // context forward incl. compression (see hook stats for the press alone)
  double decode_seconds = 0;       // all questions
};

// kvpress's pre-processing: split the chat template at a separator after the context.
PipelinePrompt build_pipeline_prompt(const LoadedModel& m, const std::string& context,
                                     const std::vector<std::string>& questions, const PipelineOptions& o);

// `press_hook` may be null (no compression). Questions empty = one empty question.
PipelineResult run_pipeline(const LoadedModel& m, const std::string& context, std::vector<std::string> questions,
                            LayerHook* press_hook, const PipelineOptions& o = {});

}  // namespace kvf
