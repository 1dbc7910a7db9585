// kvforge run:      the kvpress pipeline (context once, questions never compressed) with a press from the registry.
// kvforge compress: a press applied offline to a layer snapshot (core/layer_snapshot.hpp); writes scores, kept
//                   indices (position order) and the compressed keys/values.
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "compose/spec.hpp"
#include "core/error.hpp"
#include "core/layer_snapshot.hpp"
#include "core/pipeline.hpp"
#include "core/tensor_io.hpp"
#include "experiments/cli_common.hpp"
#include "kernels/press_hook.hpp"
#include "kernels/registry.hpp"

namespace kvf::cli {
namespace {

struct PressOptions {
  std::string press;
  double compression_ratio = 0.0;
  std::string backend = "fused";
  void add_to(CLI::App& app, bool press_required) {
    auto* o = app.add_option("--press", press,
                             "press spec, kvpress names, e.g. snapkv(window_size=64) (see `kvforge presses`)");
    if (press_required) o->required();
    app.add_option("--compression-ratio", compression_ratio, "fraction of the KV cache REMOVED, in [0, 1)")
        ->capture_default_str();
    app.add_option("--backend", backend, "fused (the compiled executor) or reference (unfused libtorch ops)")
        ->check(CLI::IsMember({"fused", "reference"}))
        ->capture_default_str();
  }
  Backend backend_enum() const { return backend == "reference" ? Backend::Reference : Backend::Fused; }
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read context file '" + path + "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string mib(int64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

struct RunOptions {
  ModelOptions model;
  PressOptions press;
  std::string context_file;
  std::vector<std::string> questions;
  PipelineOptions pipeline;
  bool no_chat_template = false;
  std::string cache_mode = "compact";
};

void run_pipeline_cmd(const RunOptions& o) {
  std::unique_ptr<RuntimePress> press;
  if (!o.press.press.empty()) press = press_registry().make(o.press.press, o.press.compression_ratio);
  const std::string context = read_file(o.context_file);
  auto m = load_with_progress(o.model);
  PipelineOptions po = o.pipeline;
  po.use_chat_template = !o.no_chat_template;
  // A top-level key_rerotation closes the positional gap: questions continue at the compressed length.
  po.rerotated_positions = press && press->rerotates_positions();
  std::unique_ptr<PressHook> hook;
  if (press)
    hook = std::make_unique<PressHook>(*press, o.press.backend_enum(),
                                       o.cache_mode == "masked" ? CacheMode::Masked : CacheMode::Compact);
  std::fprintf(stderr, "running %s on %s ...\n", press ? press->spec().c_str() : "no press", o.context_file.c_str());
  auto r = run_pipeline(m, context, o.questions.empty() ? std::vector<std::string>{""} : o.questions, hook.get(), po);

  for (size_t i = 0; i < r.answers.size(); ++i) {
    if (!o.questions.empty()) std::printf("Q%zu: %s\n", i + 1, o.questions[i].c_str());
    std::printf("A%zu: %s\n", i + 1, r.answers[i].c_str());
  }
  std::printf("\npress: %s  compression_ratio: %g  backend: %s  cache: %s\n",
              press ? press->spec().c_str() : "none", press ? press->compression_ratio() : 0.0, o.press.backend.c_str(),
              o.cache_mode.c_str());
  std::printf("context tokens: %lld\n", static_cast<long long>(r.context_tokens));
  std::printf("KV cache: %s before, %s after (%.1f%% kept)\n", mib(r.cache_bytes_before).c_str(),
              mib(r.cache_bytes_after).c_str(),
              100.0 * static_cast<double>(r.cache_bytes_after) / std::max<double>(1.0, r.cache_bytes_before));
  std::printf("per layer (bytes after):");
  for (size_t l = 0; l < r.layer_bytes_after.size(); ++l)
    std::printf("%s %zu:%lld", l % 8 ? "" : "\n ", l, static_cast<long long>(r.layer_bytes_after[l]));
  const double comp = hook ? hook->total_seconds() : 0.0;
  int64_t answer_tokens = 0;
  for (auto n : r.answer_tokens) answer_tokens += n;
  std::printf("\ntimings: prefill %.3f s (of which compression %.3f s), decoding %.3f s for %lld tokens (%.1f tok/s)\n",
              r.prefill_seconds, comp, r.decode_seconds, static_cast<long long>(answer_tokens),
              static_cast<double>(answer_tokens) / std::max(r.decode_seconds, 1e-9));
}

struct CompressOptions {
  std::string in, out;
  PressOptions press;
};

void run_compress(const CompressOptions& o) {
  auto press = press_registry().make(o.press.press, o.press.compression_ratio);
  auto snap = load_layer_snapshot(o.in);
  if (press->needs_attentions() && !snap->view.attentions.defined())
    throw Error("press '" + press->spec() + "' needs attention weights, but snapshot '" + o.in +
                "' has no 'attentions' tensor (dump it with --attentions)");
  const auto t0 = std::chrono::steady_clock::now();
  CompressResult r = press->compress(snap->view, snap->cache, o.press.backend_enum());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto& k = r.kept;
  auto offsets = at::tensor(k.offsets, at::kLong);
  auto positions = at::from_blob(const_cast<int32_t*>(k.positions.data()), {static_cast<int64_t>(k.positions.size())},
                                 at::kInt).clone();
  std::map<std::string, at::Tensor> t{{"kept_offsets", offsets}, {"kept_positions", positions},
                                      {"keys", r.keys}, {"values", r.values}};
  if (r.scores.defined()) t["scores"] = r.scores;
  const int64_t S = snap->cache.length();
  save_tensors(o.out, t,
               {{"kvforge_result", "1"}, {"press", press->spec()},
                {"compression_ratio", std::to_string(press->compression_ratio())},
                {"batch", std::to_string(k.batch)}, {"kv_heads", std::to_string(k.heads)}, {"seq", std::to_string(S)},
                {"layer_idx", std::to_string(snap->view.layer)}, {"backend", o.press.backend}});
  std::printf("%s on layer %lld (batch %lld, %lld kv heads, %lld positions): kept %lld of %lld entries in %.3f ms -> %s\n",
              press->spec().c_str(), static_cast<long long>(snap->view.layer), static_cast<long long>(k.batch),
              static_cast<long long>(k.heads), static_cast<long long>(S), static_cast<long long>(k.total()),
              static_cast<long long>(k.batch * k.heads * S), secs * 1e3, o.out.c_str());
}

}  // namespace

void add_press_commands(CLI::App& app) {
  auto* list = app.add_subcommand("presses", "List the registered presses, their parameters and an example spec");
  static bool as_json = false;
  list->add_flag("--json", as_json, "machine-readable list (the kvpress parity fixtures read it)");
  list->callback([] {
    if (as_json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& e : press_registry().entries())
        j.push_back({{"shape", e.shape}, {"example", e.example}, {"description", e.description},
                     {"params", e.params},
                     {"needs_attentions", press_registry().make(e.example, 0.5)->needs_attentions()}});
      std::printf("%s\n", j.dump(1).c_str());
      return;
    }
    for (const auto& e : press_registry().entries()) {
      std::printf("%-28s %s\n", e.shape.c_str(), e.description.c_str());
      std::printf("%-28s example: %s\n", "", e.example.c_str());
      if (!e.params.empty()) {
        std::string p;
        for (const auto& n : e.params) p += (p.empty() ? "" : ", ") + n;
        std::printf("%-28s parameters: %s\n", "", p.c_str());
      }
    }
  });

  auto r = std::make_shared<RunOptions>();
  auto* run = app.add_subcommand("run", "kvpress's pipeline: compress a context once, answer questions about it");
  r->model.add_to(*run);
  r->press.add_to(*run, false);
  run->add_option("--context", r->context_file, "file holding the context text")->required();
  run->add_option("--question", r->questions, "a question (repeatable; never compressed)");
  run->add_option("--max-new-tokens", r->pipeline.max_new_tokens, "tokens per answer")->capture_default_str();
  run->add_option("--max-context-length", r->pipeline.max_context_length,
                  "keep only the first N context tokens (0 = all)")->capture_default_str();
  run->add_option("--answer-prefix", r->pipeline.answer_prefix, "text the answer starts with");
  run->add_flag("--no-chat-template", r->no_chat_template, "BOS + context, questions end with a newline");
  run->add_option("--cache-mode", r->cache_mode,
                  "compact (ragged per-head cache for head-wise presses: real memory saved) or masked (kvpress: full "
                  "cache, evicted entries hidden)")
      ->check(CLI::IsMember({"compact", "masked"}))
      ->capture_default_str();
  run->callback([r] { run_pipeline_cmd(*r); });

  auto c = std::make_shared<CompressOptions>();
  auto* comp = app.add_subcommand("compress", "Apply a press to a layer snapshot (docs/formats.md)");
  comp->add_option("--in", c->in, "layer snapshot (.safetensors)")->required();
  comp->add_option("--out", c->out, "result file (.safetensors)")->required();
  c->press.add_to(*comp, true);
  comp->callback([c] { run_compress(*c); });
}

}  // namespace kvf::cli
