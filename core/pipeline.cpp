#include "core/pipeline.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "core/chat_template.hpp"
#include "core/error.hpp"

namespace kvf {

PipelinePrompt build_pipeline_prompt(const LoadedModel& m, const std::string& context,
                                     const std::vector<std::string>& questions, const PipelineOptions& o) {
  if (!m.tokenizer) throw Error("pipeline: model '" + m.source.string() + "' has no tokenizer");
  const Tokenizer& tok = *m.tokenizer;
  std::string context_text, suffix;
  if (o.use_chat_template) {
    // A separator that cannot occur inside the context: len(context) + 10 '#'.
    const std::string sep(context.size() + 10, '#');
    const ChatMessage msg{"user", context + sep};
    const std::string text =
        apply_chat_template(detect_chat_template(tok.chat_template()), {&msg, 1}, /*add_generation_prompt=*/true);
    const size_t at = text.find(sep);
    if (at == std::string::npos) throw Error("pipeline: the chat template dropped the context separator");
    context_text = text.substr(0, at);
    suffix = text.substr(at + sep.size());
  } else {
    context_text = (tok.bos_id() >= 0 ? tok.token_text(tok.bos_id()) : std::string()) + context;
    suffix = "\n";
  }
  PipelinePrompt p;
  p.context_ids = tok.encode(context_text, /*add_special=*/false);
  if (o.max_context_length > 0 && static_cast<int64_t>(p.context_ids.size()) > o.max_context_length) {
    p.context_ids.resize(static_cast<size_t>(o.max_context_length));
    p.truncated = true;
  }
  for (const auto& q : questions) p.question_ids.push_back(tok.encode(q + suffix + o.answer_prefix, false));
  return p;
}

PipelineResult run_pipeline(const LoadedModel& m, const std::string& context, std::vector<std::string> questions,
                            LayerHook* press_hook, const PipelineOptions& o) {
  using clock = std::chrono::steady_clock;
  if (questions.empty()) questions.emplace_back();
  const PipelinePrompt prompt = build_pipeline_prompt(m, context, questions, o);
  if (prompt.context_ids.empty()) throw Error("pipeline: empty context");
  const Model& model = *m.model;
  const auto stop = m.stop_ids();
  auto is_stop = [&](int64_t t) { return std::find(stop.begin(), stop.end(), t) != stop.end(); };

  PipelineResult r;
  r.context_tokens = static_cast<int64_t>(prompt.context_ids.size());
  KVCache cache = model.new_cache();
  const std::vector<int64_t> ctx(prompt.context_ids.begin(), prompt.context_ids.end());
  ForwardOptions fo;
  fo.last_logits_only = true;
  fo.hook = press_hook;
  auto t0 = clock::now();
  model.forward(at::tensor(ctx, at::kLong).unsqueeze(0), cache, fo);
  r.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  // Uncompressed size: every layer holds C entries per head in the model dtype.
  const auto& c = m.config;
  r.cache_bytes_before = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * r.context_tokens *
                         static_cast<int64_t>(c10::elementSize(model.dtype()));
  r.cache_bytes_after = cache.bytes();
  for (const auto& l : cache.layers) r.layer_bytes_after.push_back(l.bytes());

  fo.hook = nullptr;  // questions and answers are never compressed
  t0 = clock::now();
  for (const auto& q : prompt.question_ids) {
    const int64_t C = o.rerotated_positions ? cache.length(0) : r.context_tokens;
    const int64_t nq = static_cast<int64_t>(q.size());
    std::vector<int32_t> tokens;
    int64_t appended = 0;
    if (nq > 0) {
      const std::vector<int64_t> qi(q.begin(), q.end());
      fo.position_ids = at::arange(C, C + nq, at::kLong).unsqueeze(0);
      auto logits = model.forward(at::tensor(qi, at::kLong).unsqueeze(0), cache, fo);
      appended += nq;
      tokens.push_back(static_cast<int32_t>(logits[0][-1].argmax().item<int64_t>()));  // no EOS check (kvpress)
      for (int64_t i = 0; i + 1 < o.max_new_tokens; ++i) {
        fo.position_ids = at::full({1, 1}, C + nq + i, at::kLong);
        logits = model.forward(at::full({1, 1}, static_cast<int64_t>(tokens.back()), at::kLong), cache, fo);
        ++appended;
        const int32_t t = static_cast<int32_t>(logits[0][-1].argmax().item<int64_t>());
        tokens.push_back(t);
        if (is_stop(t)) break;
      }
    }
    r.answers.push_back(m.tokenizer->decode(tokens, /*skip_special=*/true));
    r.answer_tokens.push_back(static_cast<int64_t>(tokens.size()));
    cache.truncate(appended);  // back to the compressed context
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return r;
}

}  // namespace kvf
