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

// ---- Shared prefill: run_pipeline split in two, so that one context prefill serves any number of presses.
// A press hook runs after each layer's attention output was computed with the full cache, so the prefill's hidden
// states, positions and keys/values are the same whatever the press: only the cache it leaves behind differs.
// prefill_context records, per layer, what the hook's LayerView holds at Phase::Prefill and the uncompressed cache;
// answer_questions replays the hook over the recording (after_attention, layer by layer, in inference mode, as
// Model::forward calls it) and then runs run_pipeline's question loop. The result equals run_pipeline's bit for bit
// (tests/test_pipeline.cpp), except for hooks that want attention weights at prefill (observed_attention...):
// those are not recorded (the eager path would have to keep a (H, T, T) tensor per layer); can_replay says false
// and answer_questions refuses them — use run_pipeline.

struct PrefilledLayer {
  LayerView view;    // as the hook sees it at Phase::Prefill; `attentions` undefined
  LayerCache cache;  // the layer's uncompressed cache after the context
};

struct PrefilledContext {
  PipelinePrompt prompt;
  std::vector<std::string> questions;  // as given (an empty list became one empty question)
  PipelineOptions options;             // what the prompt was built with (max_context_length, answer_prefix, ...)
  std::vector<PrefilledLayer> layers;
  int64_t seen_tokens = 0;             // the cache's seen_tokens after the context
  int64_t cache_bytes_before = 0;      // as PipelineResult::cache_bytes_before
  double prefill_seconds = 0;          // the context forward (no press), measured once
  int64_t bytes() const;               // memory held by the recording (each tensor storage counted once)
};

// The bytes prefill_context will hold for a context of `context_tokens` tokens (to budget before recording).
int64_t prefill_record_bytes(const LoadedModel& m, int64_t context_tokens);

PrefilledContext prefill_context(const LoadedModel& m, const std::string& context, std::vector<std::string> questions,
                                 const PipelineOptions& o = {});

// Whether `press_hook` (null = no press) can be replayed over a recorded prefill.
bool can_replay(const LoadedModel& m, const LayerHook* press_hook);

// The recording is left untouched (every press gets the same inputs). `o` must have been built with the same
// prompt options as the recording (max_context_length, answer_prefix, use_chat_template; else kvf::Error);
// max_new_tokens and rerotated_positions may differ. PipelineResult::prefill_seconds = the recorded prefill plus
// the replay (the press hook's own time is in its stats, as with run_pipeline).
PipelineResult answer_questions(const LoadedModel& m, const PrefilledContext& prefilled, LayerHook* press_hook,
                                const PipelineOptions& o = {});

}  // namespace kvf
