#include "core/pipeline.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <set>

#include <c10/core/InferenceMode.h>

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

namespace {

using clock = std::chrono::steady_clock;

double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

// Uncompressed size: every layer holds C entries per head in the model dtype.
int64_t uncompressed_bytes(const LoadedModel& m, int64_t context_tokens) {
  const auto& c = m.config;
  return 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * context_tokens *
         static_cast<int64_t>(c10::elementSize(m.model->dtype()));
}

// Size figures of the compressed context cache.
void record_cache_sizes(const KVCache& cache, PipelineResult& r) {
  r.cache_bytes_after = cache.bytes();
  r.layer_bytes_after.clear();
  for (const auto& l : cache.layers) r.layer_bytes_after.push_back(l.bytes());
}

// kvpress's question loop over the compressed context cache (shared by run_pipeline and answer_questions).
void decode_questions(const LoadedModel& m, const PipelinePrompt& prompt, KVCache& cache, const PipelineOptions& o,
                      PipelineResult& r) {
  const Model& model = *m.model;
  const auto stop = m.stop_ids();
  auto is_stop = [&](int64_t t) { return std::find(stop.begin(), stop.end(), t) != stop.end(); };
  ForwardOptions fo;
  fo.last_logits_only = true;
  fo.hook = nullptr;  // questions and answers are never compressed
  const auto t0 = clock::now();
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
  r.decode_seconds = seconds_since(t0);
}

PipelinePrompt context_prompt(const LoadedModel& m, const std::string& context, std::vector<std::string>& questions,
                              const PipelineOptions& o) {
  if (questions.empty()) questions.emplace_back();
  PipelinePrompt prompt = build_pipeline_prompt(m, context, questions, o);
  if (prompt.context_ids.empty()) throw Error("pipeline: empty context");
  return prompt;
}

// Records what the press hook would see at prefill; never changes the cache.
class RecordingHook : public LayerHook {
 public:
  explicit RecordingHook(std::vector<PrefilledLayer>& out) : out_(out) {}
  void after_attention(const LayerView& view, LayerCache& cache) override {
    if (view.phase != Phase::Prefill) return;
    PrefilledLayer l;
    l.view = view;
    l.view.attentions = at::Tensor();
    l.cache = cache;  // tensor handles: presses and appends replace the tensors (a ragged append writes in place
                      // only into storage no other LayerCache holds), so the recording stays intact
    out_.push_back(std::move(l));
  }

 private:
  std::vector<PrefilledLayer>& out_;
};

}  // namespace

PipelineResult run_pipeline(const LoadedModel& m, const std::string& context, std::vector<std::string> questions,
                            LayerHook* press_hook, const PipelineOptions& o) {
  const PipelinePrompt prompt = context_prompt(m, context, questions, o);
  const Model& model = *m.model;

  PipelineResult r;
  r.context_tokens = static_cast<int64_t>(prompt.context_ids.size());
  KVCache cache = model.new_cache();
  const std::vector<int64_t> ctx(prompt.context_ids.begin(), prompt.context_ids.end());
  ForwardOptions fo;
  fo.last_logits_only = true;
  fo.hook = press_hook;
  const auto t0 = clock::now();
  model.forward(at::tensor(ctx, at::kLong).unsqueeze(0), cache, fo);
  r.prefill_seconds = seconds_since(t0);
  r.cache_bytes_before = uncompressed_bytes(m, r.context_tokens);
  record_cache_sizes(cache, r);
  decode_questions(m, prompt, cache, o, r);
  return r;
}

int64_t PrefilledContext::bytes() const {
  std::set<const void*> seen;
  int64_t n = 0;
  auto add = [&](const at::Tensor& t) {
    if (!t.defined()) return;
    const auto& st = t.storage();
    if (seen.insert(st.data()).second) n += static_cast<int64_t>(st.nbytes());
  };
  for (const auto& l : layers) {
    add(l.view.hidden_states);
    add(l.view.position_ids);
    add(l.view.cos);
    add(l.view.sin);
    add(l.view.inv_freq);
    add(l.cache.keys);
    add(l.cache.values);
    add(l.cache.keep_mask);
    add(l.cache.packed_keys);
    add(l.cache.packed_values);
  }
  return n;
}

int64_t prefill_record_bytes(const LoadedModel& m, int64_t T) {
  const auto& c = m.config;
  const int64_t e = static_cast<int64_t>(c10::elementSize(m.model->dtype()));
  const int64_t per_layer = T * c.hidden_size * e;                           // hidden_states
  const int64_t shared = T * 8 + 2 * T * c.head_dim * e + c.head_dim / 2 * 4;  // positions, cos, sin, inv_freq
  return c.num_hidden_layers * per_layer + uncompressed_bytes(m, T) + shared;
}

PrefilledContext prefill_context(const LoadedModel& m, const std::string& context, std::vector<std::string> questions,
                                 const PipelineOptions& o) {
  PrefilledContext p;
  p.prompt = context_prompt(m, context, questions, o);
  p.questions = std::move(questions);
  p.options = o;
  const Model& model = *m.model;
  const int64_t T = static_cast<int64_t>(p.prompt.context_ids.size());
  KVCache cache = model.new_cache();
  RecordingHook rec(p.layers);
  ForwardOptions fo;
  fo.last_logits_only = true;
  fo.hook = &rec;
  const std::vector<int64_t> ctx(p.prompt.context_ids.begin(), p.prompt.context_ids.end());
  const auto t0 = clock::now();
  model.forward(at::tensor(ctx, at::kLong).unsqueeze(0), cache, fo);
  p.prefill_seconds = seconds_since(t0);
  if (static_cast<int64_t>(p.layers.size()) != m.config.num_hidden_layers)
    throw Error("pipeline: the prefill recorded " + std::to_string(p.layers.size()) + " layers, the model has " +
                std::to_string(m.config.num_hidden_layers));
  p.seen_tokens = cache.seen_tokens;
  p.cache_bytes_before = uncompressed_bytes(m, T);
  return p;
}

bool can_replay(const LoadedModel& m, const LayerHook* press_hook) {
  if (!press_hook) return true;
  for (int64_t l = 0; l < m.config.num_hidden_layers; ++l)
    if (press_hook->wants_attention_weights(l, Phase::Prefill)) return false;
  return true;
}

PipelineResult answer_questions(const LoadedModel& m, const PrefilledContext& p, LayerHook* press_hook,
                                const PipelineOptions& o) {
  if (o.max_context_length != p.options.max_context_length || o.answer_prefix != p.options.answer_prefix ||
      o.use_chat_template != p.options.use_chat_template)
    throw Error("pipeline: answer_questions needs the prompt options the context was prefilled with");
  if (!can_replay(m, press_hook))
    throw Error("pipeline: this press needs attention weights at prefill, which a recorded prefill does not hold; "
                "use run_pipeline");
  if (static_cast<int64_t>(p.layers.size()) != m.config.num_hidden_layers)
    throw Error("pipeline: the recorded prefill does not match the model's layer count");
  PipelineResult r;
  r.context_tokens = static_cast<int64_t>(p.prompt.context_ids.size());
  KVCache cache = m.model->new_cache();
  const auto t0 = clock::now();
  {
    c10::InferenceMode inference;  // as inside Model::forward, where the hook normally runs
    for (size_t l = 0; l < p.layers.size(); ++l) {
      cache.layers[l] = p.layers[l].cache;  // handles; the press replaces them, the recording stays intact
      if (press_hook) press_hook->after_attention(p.layers[l].view, cache.layers[l]);
    }
  }
  cache.seen_tokens = p.seen_tokens;
  r.prefill_seconds = p.prefill_seconds + seconds_since(t0);
  r.cache_bytes_before = p.cache_bytes_before;
  record_cache_sizes(cache, r);
  decode_questions(m, p.prompt, cache, o, r);
  return r;
}

}  // namespace kvf
