#pragma once
// kvforge eval / sweep: kvpress's evaluation CLI (evaluation/evaluate.py) offline.
//   - datasets generated with fixed seeds (RULER-style synthetic tasks, a needle grid) — eval_data.cpp
//   - RULER's string-match metrics — eval_data.cpp
//   - configs with kvpress's keys, the kvpress press-name table, output files, the JSONL result store — eval_store.cpp
//   - the model runner (libtorch; the only TU that needs torch) — eval_runner.cpp
// This header is torch-free so that the CLI front ends and the tests compile quickly.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"

namespace kvf {
class Tokenizer;
}

namespace kvf::eval {

// ---------------------------------------------------------------------------------------------- datasets
// One row, kvpress's columns.
struct Sample {
  std::string task;
  int64_t index = 0;                 // within its task
  std::string context, question, answer_prefix;
  std::vector<std::string> answers;  // RULER: every reference must appear (string_match_all)
  int64_t max_new_tokens = 0;
  int64_t target_length = 0;         // context length asked for, in tokens
  int64_t prompt_tokens = 0;         // context + question + answer_prefix as generated, in tokens (no template)
  int64_t depth = -1;                // needle depth in percent (needle grid), else -1
};

// Counts tokens; the generator fills haystacks until context+question+answer_prefix fits `length` tokens.
using TokenCounter = std::function<int64_t(const std::string&)>;

const std::vector<std::string>& ruler_tasks();  // niah_single_1 ... fwe (the synthetic RULER tasks, no qa)
const std::vector<std::string>& word_list();    // the project's offline word list (experiments/eval/words.cpp)

struct DatasetRequest {
  std::string dataset = "ruler";   // "ruler" | "needle_in_haystack"
  int64_t length = 1024;           // tokens (kvpress's data_dir for ruler)
  std::vector<std::string> tasks;  // ruler: empty = all
  int64_t num_samples = 10;        // per task (ruler) / per depth (needle grid)
  std::vector<int64_t> depths;     // needle grid: percent; empty = 0,10,...,100
  uint64_t seed = 42;
};

// Throws kvf::Error for an unknown dataset or task (listing the known ones).
std::vector<Sample> make_dataset(const DatasetRequest& r, const TokenCounter& count_tokens);
// One (task, length) cell of RULER; seeds derive from (seed, task, length, index) only, so any subset of cells
// generates the same rows.
std::vector<Sample> make_ruler_task(const std::string& task, int64_t length, int64_t num_samples, uint64_t seed,
                                    const TokenCounter& count_tokens);
std::vector<Sample> make_needle_grid(int64_t length, const std::vector<int64_t>& depths, int64_t num_samples,
                                     uint64_t seed, const TokenCounter& count_tokens);

// ---------------------------------------------------------------------------------------------- metrics
// RULER postprocessing: strip, drop \x00-\x1f, strip.
std::string ruler_postprocess(const std::string& pred);
// Fraction of references contained in the prediction (case-insensitive), RULER's string_match_all per sample.
double string_match_all(const std::string& pred, const std::vector<std::string>& refs);
// 1 if any reference is contained (case-insensitive), RULER's string_match_part per sample.
double string_match_part(const std::string& pred, const std::vector<std::string>& refs);
// kvpress's ruler scorer: {task: {"string_match": round(100*mean, 2)}}; tasks starting with "qa" use part.
nlohmann::json ruler_metrics(const std::vector<Sample>& rows, const std::vector<std::string>& predictions);
double round2(double x);

// ---------------------------------------------------------------------------------------------- config
// kvpress's keys (evaluate.py's EvaluationConfig) plus the offline-generation keys (num_samples, tasks, depths).
struct EvalConfig {
  std::string dataset = "ruler";
  std::string data_dir;  // ruler: context length in tokens ("1024"); needle_in_haystack: unused
  std::string model = "default";
  std::string device;    // kept for compatibility; only "cpu"/empty supported here
  std::string press_name = "knorm";
  double compression_ratio = 1.0;
  std::optional<double> key_channel_compression_ratio;
  double fraction = 1.0;
  std::optional<int64_t> max_new_tokens;
  std::optional<int64_t> max_context_length;
  bool query_aware = false;
  std::vector<int64_t> needle_depth;
  std::string output_dir = "./results";
  int64_t seed = 42;
  // kvforge additions
  int64_t num_samples = 10;
  std::vector<std::string> tasks;
  std::string dtype = "float32";
  int64_t threads = 0;
  std::string cache_mode = "compact";  // compact | masked (kvpress)
  std::string backend = "fused";       // fused | reference
  std::string press_spec;              // filled: the kvforge spec press_name resolved to ("" = no press)
};

// The keys a config file or flag may set (error messages list them).
const std::vector<std::string>& config_keys();
// Parses JSON (a file starting with '{') or flat YAML ("key: value", '#' comments, null, [a, b] lists).
nlohmann::json read_config_file(const std::string& path);
// A command-line value for `key` as JSON: lists as "[a, b]" or "a,b" (tasks, needle_depth), scalars as in YAML.
nlohmann::json parse_flag_value(const std::string& key, const std::string& text);
// Applies keys onto cfg; unknown key or bad value -> kvf::Error naming it.
void apply_config(EvalConfig& cfg, const nlohmann::json& j);
nlohmann::json config_to_json(const EvalConfig& cfg);
// Validates (dataset, ranges) and resolves press_name -> press_spec. Throws kvf::Error.
void finalize_config(EvalConfig& cfg);
// The rows a finalized config evaluates (dataset, length from data_dir / max_context_length, tasks, depths, seed).
DatasetRequest dataset_request(const EvalConfig& cfg);

// kvpress press_name -> kvforge spec (with kvpress's registry defaults). "no_press" -> "".
// `kccr`: key_channel_compression_ratio for think / snap_think. Unknown -> kvf::Error listing the names.
struct PressChoice {
  std::string spec;          // "" = no press
  double compression_ratio = 0;
};
PressChoice resolve_press(const std::string& press_name, double compression_ratio, std::optional<double> kccr);
const std::vector<std::pair<std::string, std::string>>& press_name_table();  // name, spec template

// kvpress's run directory name (§9.6), without the numbered-subdirectory rule.
std::string run_name(const EvalConfig& cfg);

// ---------------------------------------------------------------------------------------------- files
// Write-to-temp + fsync + rename + fsync(dir).
void write_file_atomic(const std::string& path, const std::string& data);
std::string csv_escape(const std::string& s);

// The JSONL result store. Each line is one finished cell, a JSON object with a "key" member.
class ResultStore {
 public:
  // Opens (creating) the file; a torn last line (no newline / not JSON: a kill during the write) is cut off.
  // A malformed line that is not the last one -> kvf::Error.
  explicit ResultStore(std::string path);
  ~ResultStore();
  ResultStore(const ResultStore&) = delete;
  ResultStore& operator=(const ResultStore&) = delete;
  bool has(const std::string& key) const { return keys_.count(key) != 0; }
  size_t size() const { return keys_.size(); }
  // Appends one line with a single write() and fsyncs it.
  void append(const nlohmann::json& row);
  size_t repaired_bytes() const { return repaired_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::map<std::string, int> keys_;
  size_t repaired_ = 0;
};

// Reads the rows of a JSONL results file (tolerating a torn last line).
std::vector<nlohmann::json> read_results(const std::string& path);
// Merges shard files: one row per key (the first seen; identical duplicates are silent, differing ones are
// reported in `conflicts`), sorted by key; written atomically.
size_t merge_results(const std::vector<std::string>& inputs, const std::string& out, std::vector<std::string>* conflicts);

// ---------------------------------------------------------------------------------------------- memory
int64_t rss_bytes();       // VmRSS now
int64_t peak_rss_bytes();  // VmHWM

// ---------------------------------------------------------------------------------------------- runner (torch)
struct RowResult {
  std::string prediction;
  int64_t context_tokens = 0, question_tokens = 0, answer_tokens = 0;
  double prefill_s = 0, compression_s = 0, decode_s = 0;
  int64_t kv_bytes_before = 0, kv_bytes_after = 0;
  double achieved_compression = 0;  // 1 - kv_after / kv_before
  bool prefill_shared = false;      // the press replayed a recorded prefill (Runner::prefill); prefill_s is the
                                    // time of that one recorded prefill, the same for every press sharing it
};

// Recorded context prefills of some rows (Runner::prefill): replayed under any press by Runner::run.
struct SharedPrefill;  // defined in eval_runner.cpp (holds tensors)
struct SharedPrefillInfo {
  size_t contexts = 0;   // context groups in the rows
  size_t recorded = 0;   // of them recorded (the others did not fit the budget)
  int64_t bytes = 0;     // memory held by the recordings
  double seconds = 0;    // the recorded prefills' time
};

class Runner {
 public:
  Runner(const std::string& model, const std::string& dtype, int64_t threads);
  ~Runner();
  int64_t count_tokens(const std::string& text) const;
  TokenCounter counter() const;
  // Runs the rows (grouped by identical context, kvpress's loop: one compressed context, every question).
  // press_spec "" = no press. progress(i, n) after each group.
  // shared: rows whose context prefill it recorded replay it (bit-identical results, see core/pipeline.hpp);
  // a press that needs attention weights (observed_attention) ignores it and prefills as usual.
  std::vector<RowResult> run(const std::vector<Sample>& rows, const std::string& press_spec, double compression_ratio,
                             const EvalConfig& opts, const std::function<void(size_t, size_t)>& progress = {},
                             const SharedPrefill* shared = nullptr);
  // Prefills the context groups of `rows` (the grouping and prompt options run() uses with `opts`) once, recording
  // them for run(), in order while the recordings fit `budget_bytes` (a group that does not fit is skipped and
  // prefilled by run() per press). progress(i, n) after each group.
  std::shared_ptr<const SharedPrefill> prefill(const std::vector<Sample>& rows, const EvalConfig& opts,
                                               int64_t budget_bytes,
                                               const std::function<void(size_t, size_t)>& progress = {});
  static SharedPrefillInfo info(const SharedPrefill& shared);
  // Whether a press can replay a recorded prefill (false when it needs attention weights at prefill).
  bool can_share_prefill(const std::string& press_spec, double compression_ratio) const;
  std::string model_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// kvforge eval end to end: dataset -> predictions.csv, metrics.json, config.json in a new run directory.
// Returns the run directory.
std::string run_eval(EvalConfig cfg);

}  // namespace kvf::eval

namespace kvf::eval {
// ---------------------------------------------------------------------------------------------- bench (torch)
// kvforge bench speed-memory: kvpress's speed-and-memory notebook on a random-weight model of any config.
struct SpeedMemoryOptions {
  std::string preset = "smollm2-135m";  // smollm2-135m | llama-3.2-1b | llama-3.1-8b | qwen3-4b, or hf_config
  std::string hf_config;                // a config.json (overrides preset)
  int64_t num_layers = 0;               // > 0: override the layer count (e.g. the 8B shape with 2 layers)
  std::string dtype = "float32";
  std::string device = "cpu";           // cpu | cuda[:N]: where the model and its cache run
  int64_t threads = 0;
  std::vector<int64_t> lengths = {512, 1024, 2048};
  std::vector<double> ratios = {0.0, 0.25, 0.5, 0.75};
  std::string press_name = "knorm";     // kvpress name (or press_spec)
  std::string press_spec;
  int64_t decode_tokens = 16;
  int64_t repeats = 1;                  // best of
  uint64_t seed = 0;
  std::string out;                      // CSV path ("" = stdout)
};
// Returns the CSV text (also written atomically to opts.out when set).
std::string bench_speed_memory(const SpeedMemoryOptions& opts);
// The config of a named random-weight preset: smollm2-135m | llama-3.2-1b | llama-3.1-8b | qwen3-4b.
ModelConfig preset_config(const std::string& name);
}  // namespace kvf::eval
