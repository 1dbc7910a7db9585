// The model side of kvforge eval / sweep (libtorch): kvpress's inference loop over the kvforge pipeline.
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <numeric>

#include "core/error.hpp"
#include "core/model_loader.hpp"
#include "core/pipeline.hpp"
#include "experiments/eval/eval.hpp"
#include "kernels/press_hook.hpp"
#include "kernels/registry.hpp"

namespace kvf::eval {
namespace fs = std::filesystem;

struct Runner::Impl {
  LoadedModel m;
  std::string id;
};

Runner::Runner(const std::string& model, const std::string& dtype, int64_t threads) : impl_(std::make_unique<Impl>()) {
  if (threads > 0) at::set_num_threads(static_cast<int>(threads));
  if (dtype != "float32" && dtype != "bfloat16") throw Error("dtype must be float32 or bfloat16, got '" + dtype + "'");
  LoadOptions lo;
  lo.dtype = dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  const auto path = resolve_model_path(model);
  const auto t0 = std::chrono::steady_clock::now();
  impl_->m = load_model(path.string(), lo);
  impl_->id = model;
  if (!impl_->m.tokenizer) throw Error("model '" + path.string() + "' has no tokenizer: eval needs one");
  std::fprintf(stderr, "[eval] loaded %s (%lld layers) in %.2f s\n", path.string().c_str(),
               static_cast<long long>(impl_->m.config.num_hidden_layers),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

Runner::~Runner() = default;

std::string Runner::model_id() const { return impl_->id; }

int64_t Runner::count_tokens(const std::string& text) const {
  return static_cast<int64_t>(impl_->m.tokenizer->encode(text, false).size());
}

TokenCounter Runner::counter() const {
  return [this](const std::string& s) { return count_tokens(s); };
}

namespace {
// kvpress: rows grouped by identical context, one pipeline call per group.
struct ContextGroup {
  std::vector<size_t> rows;
  std::string context;                 // query_aware: context + question
  std::vector<std::string> questions;  // query_aware: one "" per row
  PipelineOptions options;             // rerotated_positions left false (it depends on the press)
};

std::vector<ContextGroup> context_groups(const std::vector<Sample>& rows, const EvalConfig& opts) {
  std::vector<ContextGroup> groups;
  std::map<std::string, size_t> gi;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string ctx = opts.query_aware ? rows[i].context + rows[i].question : rows[i].context;
    auto [it, fresh] = gi.emplace(ctx, groups.size());
    if (fresh) {
      groups.emplace_back();
      groups.back().context = ctx;
    }
    groups[it->second].rows.push_back(i);
  }
  for (auto& g : groups) {
    const Sample& first = rows[g.rows[0]];
    for (size_t i : g.rows)
      if (rows[i].answer_prefix != first.answer_prefix)
        throw Error("rows sharing a context must share the answer_prefix (kvpress asserts the same)");
    g.options.answer_prefix = first.answer_prefix;
    g.options.max_new_tokens = opts.max_new_tokens ? *opts.max_new_tokens : first.max_new_tokens;
    g.options.max_context_length = opts.max_context_length ? *opts.max_context_length : 0;
    for (size_t i : g.rows) g.questions.push_back(opts.query_aware ? std::string() : rows[i].question);
  }
  return groups;
}
}  // namespace

struct SharedPrefill {
  std::map<std::string, PrefilledContext> by_context;  // ContextGroup::context -> its recorded prefill
  SharedPrefillInfo info;
};

SharedPrefillInfo Runner::info(const SharedPrefill& shared) { return shared.info; }

std::shared_ptr<const SharedPrefill> Runner::prefill(const std::vector<Sample>& rows, const EvalConfig& opts,
                                                     int64_t budget_bytes,
                                                     const std::function<void(size_t, size_t)>& progress) {
  auto shared = std::make_shared<SharedPrefill>();
  const auto groups = context_groups(rows, opts);
  shared->info.contexts = groups.size();
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& G = groups[g];
    const auto prompt = build_pipeline_prompt(impl_->m, G.context, G.questions, G.options);
    const int64_t need = prefill_record_bytes(impl_->m, static_cast<int64_t>(prompt.context_ids.size()));
    if (shared->info.bytes + need <= budget_bytes) {
      auto p = prefill_context(impl_->m, G.context, G.questions, G.options);
      shared->info.bytes += p.bytes();
      shared->info.seconds += p.prefill_seconds;
      ++shared->info.recorded;
      shared->by_context.emplace(G.context, std::move(p));
    }
    if (progress) progress(g + 1, groups.size());
  }
  return shared;
}

bool Runner::can_share_prefill(const std::string& press_spec, double cr) const {
  if (press_spec.empty()) return true;
  return !press_registry().make(press_spec, cr)->needs_attentions();
}

std::vector<RowResult> Runner::run(const std::vector<Sample>& rows, const std::string& press_spec, double cr,
                                   const EvalConfig& opts, const std::function<void(size_t, size_t)>& progress,
                                   const SharedPrefill* shared) {
  std::unique_ptr<RuntimePress> press;
  if (!press_spec.empty()) press = press_registry().make(press_spec, cr);
  const auto groups = context_groups(rows, opts);
  std::vector<RowResult> out(rows.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& G = groups[g];
    const auto& idx = G.rows;
    const auto& qs = G.questions;
    PipelineOptions po = G.options;
    po.rerotated_positions = press && press->rerotates_positions();
    std::unique_ptr<PressHook> hook;
    if (press)
      hook = std::make_unique<PressHook>(*press, opts.backend == "reference" ? Backend::Reference : Backend::Fused,
                                         opts.cache_mode == "masked" ? CacheMode::Masked : CacheMode::Compact);
    // A recorded prefill, unless the press needs attention weights (not recorded): then the usual prefill.
    const PrefilledContext* rec = nullptr;
    if (shared && can_replay(impl_->m, hook.get())) {
      const auto it = shared->by_context.find(G.context);
      if (it != shared->by_context.end()) {
        rec = &it->second;
        if (rec->questions != qs) throw Error("shared prefill: recorded for other questions (runner bug)");
      }
    }
    const PipelineResult r = rec ? answer_questions(impl_->m, *rec, hook.get(), po)
                                 : run_pipeline(impl_->m, G.context, qs, hook.get(), po);
    const double comp = hook ? hook->total_seconds() : 0.0;
    for (size_t k = 0; k < idx.size(); ++k) {
      RowResult& o = out[idx[k]];
      o.prediction = r.answers.at(k);
      o.context_tokens = r.context_tokens;
      o.question_tokens = count_tokens(qs[k] + po.answer_prefix);
      o.answer_tokens = r.answer_tokens.at(k);
      // a group's prefill/compression is shared: attributed to its first row, decode split evenly
      // (a recorded prefill: its one measured time, whatever the press; the replay's overhead is not counted)
      o.prefill_s = k == 0 ? (rec ? rec->prefill_seconds : r.prefill_seconds - comp) : 0.0;
      o.compression_s = k == 0 ? comp : 0.0;
      o.decode_s = r.decode_seconds / static_cast<double>(idx.size());
      o.kv_bytes_before = r.cache_bytes_before;
      o.kv_bytes_after = r.cache_bytes_after;
      o.achieved_compression =
          r.cache_bytes_before > 0 ? 1.0 - static_cast<double>(r.cache_bytes_after) / r.cache_bytes_before : 0.0;
      o.prefill_shared = rec != nullptr;
    }
    if (progress) progress(g + 1, groups.size());
  }
  return out;
}

namespace {
// kvpress's fraction: a seeded random subsample (kept in dataset order).
std::vector<Sample> subsample(std::vector<Sample> rows, double fraction, uint64_t seed) {
  if (fraction >= 1.0) return rows;
  const size_t n = static_cast<size_t>(std::ceil(fraction * static_cast<double>(rows.size())));
  std::vector<size_t> idx(rows.size());
  std::iota(idx.begin(), idx.end(), 0);
  uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (size_t i = idx.size(); i > 1; --i) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    std::swap(idx[i - 1], idx[(s >> 33) % i]);
  }
  idx.resize(n);
  std::sort(idx.begin(), idx.end());
  std::vector<Sample> out;
  for (size_t i : idx) out.push_back(std::move(rows[i]));
  return out;
}

std::string yaml_of(const nlohmann::json& j) {
  std::string s;
  for (const auto& [k, v] : j.items()) s += k + ": " + v.dump() + "\n";  // JSON values are YAML flow values
  return s;
}
}  // namespace

DatasetRequest dataset_request(const EvalConfig& cfg) {
  DatasetRequest req;
  req.dataset = cfg.dataset;
  req.length = cfg.dataset == "ruler" ? std::stoll(cfg.data_dir) : *cfg.max_context_length;
  req.tasks = cfg.tasks;
  req.num_samples = cfg.num_samples;
  req.depths = cfg.needle_depth;
  req.seed = static_cast<uint64_t>(cfg.seed);
  return req;
}

std::string run_eval(EvalConfig cfg) {
  finalize_config(cfg);  // errors before the model loads
  fs::path dir = fs::path(cfg.output_dir) / run_name(cfg);
  if (fs::exists(dir)) {
    int k = 1;
    while (fs::exists(dir / std::to_string(k))) ++k;
    dir /= std::to_string(k);
  }
  Runner runner(cfg.model, cfg.dtype, cfg.threads);
  const DatasetRequest req = dataset_request(cfg);
  const auto t0 = std::chrono::steady_clock::now();
  auto rows = subsample(make_dataset(req, runner.counter()), cfg.fraction, req.seed);
  std::fprintf(stderr, "[eval] %zu rows of %s (%lld tokens) generated in %.2f s; press %s, compression_ratio %.2f\n",
               rows.size(), cfg.dataset.c_str(), static_cast<long long>(req.length),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
               cfg.press_spec.empty() ? "none" : cfg.press_spec.c_str(), cfg.compression_ratio);
  const auto t1 = std::chrono::steady_clock::now();
  auto res = runner.run(rows, cfg.press_spec, cfg.compression_ratio, cfg, [&](size_t i, size_t n) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    std::fprintf(stderr, "\r[eval] %zu/%zu contexts, %.1f s elapsed, ~%.0f s left   ", i, n, el,
                 el / static_cast<double>(i) * static_cast<double>(n - i));
    if (i == n) std::fprintf(stderr, "\n");
  });
  std::vector<std::string> preds;
  for (auto& r : res) preds.push_back(r.prediction);
  const nlohmann::json metrics = ruler_metrics(rows, preds);

  std::string csv =
      "task,index,depth,question,answer_prefix,answers,max_new_tokens,predicted_answer,compression_ratio,"
      "context_tokens,question_tokens,answer_tokens,kv_bytes_before,kv_bytes_after,prefill_s,compression_s,decode_s\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& s = rows[i];
    const auto& r = res[i];
    char num[256];
    std::snprintf(num, sizeof num, "%.6f,%lld,%lld,%lld,%lld,%lld,%.6f,%.6f,%.6f", r.achieved_compression,
                  static_cast<long long>(r.context_tokens), static_cast<long long>(r.question_tokens),
                  static_cast<long long>(r.answer_tokens), static_cast<long long>(r.kv_bytes_before),
                  static_cast<long long>(r.kv_bytes_after), r.prefill_s, r.compression_s, r.decode_s);
    csv += csv_escape(s.task) + "," + std::to_string(s.index) + "," + (s.depth >= 0 ? std::to_string(s.depth) : "") +
           "," + csv_escape(s.question) + "," + csv_escape(s.answer_prefix) + "," +
           csv_escape(nlohmann::json(s.answers).dump()) + "," +
           std::to_string(cfg.max_new_tokens ? *cfg.max_new_tokens : s.max_new_tokens) + "," +
           csv_escape(r.prediction) + "," + num + "\n";
  }
  fs::create_directories(dir);
  write_file_atomic((dir / "predictions.csv").string(), csv);
  write_file_atomic((dir / "metrics.json").string(), metrics.dump(4) + "\n");
  write_file_atomic((dir / "config.yaml").string(), yaml_of(config_to_json(cfg)));
  std::fprintf(stderr, "[eval] peak RSS %.1f MiB; results in %s\n", peak_rss_bytes() / 1048576.0, dir.string().c_str());
  return dir.string();
}

}  // namespace kvf::eval
