// kvforge trace: runs kvpress's pipeline with a press and records, for every layer and kv head, the scores the
// selection saw and the kept mask, plus the context tokens (ids and text pieces), the press spec, the ratio and
// the model. The file is a safetensors file with versioned JSON metadata (docs/formats.md, "Trace"); kvviz reads it.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/pipeline.hpp"
#include "core/safetensors.hpp"
#include "experiments/cli_common.hpp"
#include "kernels/press_hook.hpp"
#include "kernels/registry.hpp"

namespace kvf::cli {
namespace {

constexpr int kTraceVersion = 1;

struct TraceOptions {
  ModelOptions model;
  std::string press;
  double compression_ratio = 0.0;
  std::string backend = "fused";
  std::string context_file;
  std::vector<std::string> questions;
  int64_t max_new_tokens = 16;
  int64_t max_context_length = 0;
  bool no_chat_template = false;
  std::string out;
};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read context file '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::json config_json(const ModelConfig& c) {
  return {{"model_type", c.model_type},
          {"vocab_size", c.vocab_size},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_hidden_layers},
          {"num_attention_heads", c.num_attention_heads},
          {"num_key_value_heads", c.num_key_value_heads},
          {"head_dim", c.head_dim},
          {"max_position_embeddings", c.max_position_embeddings},
          {"rope_theta", c.rope_theta},
          {"rms_norm_eps", c.rms_norm_eps},
          {"tie_word_embeddings", c.tie_word_embeddings}};
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void run_trace(const TraceOptions& o) {
  auto press = press_registry().make(o.press, o.compression_ratio);
  const std::string context = read_text(o.context_file);
  auto m = load_with_progress(o.model);
  if (!m.tokenizer) throw Error("model " + m.source.string() + " has no tokenizer (tokenizer.json missing)");
  PipelineOptions po;
  po.use_chat_template = !o.no_chat_template;
  po.max_new_tokens = o.max_new_tokens;
  po.max_context_length = o.max_context_length;
  po.rerotated_positions = press->rerotates_positions();
  const auto questions = o.questions.empty() ? std::vector<std::string>{""} : o.questions;
  const PipelinePrompt prompt = build_pipeline_prompt(m, context, questions, po);

  const int64_t L = m.config.num_hidden_layers, H = m.config.num_key_value_heads;
  const int64_t S = static_cast<int64_t>(prompt.context_ids.size());
  if (S == 0) throw Error("trace: the context '" + o.context_file + "' has no tokens");
  std::vector<float> scores(static_cast<size_t>(L * H * S), 0.0f);  // (L, H, S)
  std::vector<uint8_t> kept(static_cast<size_t>(L * H * S), 0);     // (L, H, S)
  std::vector<bool> seen(static_cast<size_t>(L), false);
  bool scores_available = true;

  PressHook hook(*press, o.backend == "reference" ? Backend::Reference : Backend::Fused);
  hook.on_result = [&](const LayerView& view, const CompressResult& r) {
    const int64_t l = view.layer;
    if (l < 0 || l >= L) throw Error("trace: layer index " + std::to_string(l) + " out of range");
    if (r.kept.batch != 1 || r.kept.heads != H)
      throw Error("trace: expected batch 1 and " + std::to_string(H) + " kv heads, the press returned batch " +
                  std::to_string(r.kept.batch) + " and " + std::to_string(r.kept.heads) + " heads");
    seen[static_cast<size_t>(l)] = true;
    float* sc = scores.data() + l * H * S;
    uint8_t* kp = kept.data() + l * H * S;
    if (r.scores.defined()) {
      auto s = r.scores.to(at::kFloat).contiguous();  // (1, H, S)
      if (s.dim() != 3 || s.size(1) != H || s.size(2) != S)
        throw Error("trace: layer " + std::to_string(l) + " scores have an unexpected shape");
      std::memcpy(sc, s.data_ptr<float>(), sizeof(float) * static_cast<size_t>(H * S));
    } else {
      scores_available = false;  // compression ratio 0: the press scored nothing
    }
    for (int64_t h = 0; h < H; ++h) {
      const int32_t* p = r.kept.begin(0, h);
      for (int64_t i = 0, n = r.kept.count(0, h); i < n; ++i) {
        if (p[i] < 0 || p[i] >= S) throw Error("trace: kept position out of range");
        kp[h * S + p[i]] = 1;
      }
    }
  };

  std::fprintf(stderr, "tracing %s at %g on %s (%lld tokens) ...\n", press->spec().c_str(), press->compression_ratio(),
               o.context_file.c_str(), static_cast<long long>(S));
  auto r = run_pipeline(m, context, questions, &hook, po);
  for (int64_t l = 0; l < L; ++l)
    if (!seen[static_cast<size_t>(l)]) throw Error("trace: layer " + std::to_string(l) + " reported no result");

  std::vector<int32_t> ids(prompt.context_ids.begin(), prompt.context_ids.end());
  nlohmann::json tokens = nlohmann::json::array();
  for (int32_t id : ids) tokens.push_back(m.tokenizer->token_text(id));
  nlohmann::json meta = {
      {"format", "kvforge-trace"},
      {"version", kTraceVersion},
      {"layers", L},
      {"kv_heads", H},
      {"seq", S},
      {"press", press->spec()},
      {"compression_ratio", press->compression_ratio()},
      {"backend", o.backend},
      {"scores_available", scores_available},
      {"model", {{"name", m.config.name}, {"path", m.source.string()}, {"config", config_json(m.config)}}},
      {"context_file", o.context_file},
      {"chat_template", !o.no_chat_template},
      {"questions", o.questions},
      {"answers", o.questions.empty() ? std::vector<std::string>{} : r.answers},
      {"tokens", tokens},
      {"created_utc", utc_now()},
  };
  // Token pieces may be partial UTF-8 (a character split over tokens): replaced by U+FFFD in the JSON.
  const std::string meta_text = meta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  write_safetensors(o.out,
                    {{"scores", DType::F32, {L, H, S}, scores.data()},
                     {"kept", DType::U8, {L, H, S}, kept.data()},
                     {"token_ids", DType::I32, {S}, ids.data()}},
                    {{"kvforge_trace", std::to_string(kTraceVersion)}, {"trace", meta_text}});
  int64_t n_kept = 0;
  for (uint8_t k : kept) n_kept += k;
  std::printf("traced %lld layers x %lld kv heads x %lld tokens: kept %lld of %lld (%.1f%%) -> %s\n",
              static_cast<long long>(L), static_cast<long long>(H), static_cast<long long>(S),
              static_cast<long long>(n_kept), static_cast<long long>(L * H * S),
              100.0 * static_cast<double>(n_kept) / static_cast<double>(L * H * S), o.out.c_str());
}

}  // namespace

void add_trace_command(CLI::App& app) {
  auto o = std::make_shared<TraceOptions>();
  auto* t = app.add_subcommand("trace", "Record what a press keeps (scores, kept masks, tokens) for kvviz");
  o->model.add_to(*t);
  t->add_option("--press", o->press, "press spec, e.g. snapkv(window_size=16) (see `kvforge presses`)")->required();
  t->add_option("--compression-ratio", o->compression_ratio, "fraction of the KV cache REMOVED, in [0, 1)")
      ->capture_default_str();
  t->add_option("--backend", o->backend, "fused or reference")
      ->check(CLI::IsMember({"fused", "reference"}))
      ->capture_default_str();
  t->add_option("--context", o->context_file, "file holding the context text")->required();
  t->add_option("--question", o->questions, "a question (repeatable; answered and stored in the trace)");
  t->add_option("--max-new-tokens", o->max_new_tokens, "tokens per answer")->capture_default_str();
  t->add_option("--max-context-length", o->max_context_length, "keep only the first N context tokens (0 = all)")
      ->capture_default_str();
  t->add_flag("--no-chat-template", o->no_chat_template, "BOS + context, questions end with a newline");
  t->add_option("--out", o->out, "trace file to write (.kvtrace, safetensors)")->required();
  t->callback([o] { run_trace(*o); });
}

}  // namespace kvf::cli
