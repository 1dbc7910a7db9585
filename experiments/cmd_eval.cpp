// kvforge eval: kvpress's evaluation CLI (evaluation/evaluate.py) on offline datasets. docs/eval.md.
#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "experiments/eval/eval.hpp"

namespace kvf::cli {

// Adds --<key> (and --<key-with-dashes>) for every config key; values are collected as text.
void add_config_flags(CLI::App& app, std::map<std::string, std::string>& values) {
  for (const auto& k : eval::config_keys()) {
    std::string names = "--" + k;
    std::string dashed = k;
    for (auto& ch : dashed) if (ch == '_') ch = '-';
    if (dashed != k) names += ",--" + dashed;
    app.add_option(names, values[k], "config key '" + k + "' (overrides the config file)");
  }
}

// Defaults <- config file <- flags given on the command line.
eval::EvalConfig layered_config(CLI::App& app, const std::string& config_file,
                                const std::map<std::string, std::string>& values) {
  eval::EvalConfig cfg;
  if (!config_file.empty()) eval::apply_config(cfg, eval::read_config_file(config_file));
  nlohmann::json flags = nlohmann::json::object();
  for (const auto& [k, v] : values)
    if (app.count("--" + k) > 0) flags[k] = eval::parse_flag_value(k, v);
  eval::apply_config(cfg, flags);
  return cfg;
}

namespace {
// --dump-dataset: the rows `kvforge eval` would run, one JSON object per line (experiments/peer_check.py feeds them
// to kvpress). Rows join predictions.csv on (task, index); max_new_tokens is the effective one (config or row).
void dump_dataset(eval::EvalConfig cfg, const std::string& path) {
  cfg.press_name = "no_press";  // the rows do not depend on the press; validate everything else
  cfg.press_spec.clear();
  eval::finalize_config(cfg);
  eval::Runner runner(cfg.model, cfg.dtype, cfg.threads);  // the model's tokenizer sizes the haystacks
  const eval::DatasetRequest req = eval::dataset_request(cfg);
  std::string out;
  for (const auto& s : eval::make_dataset(req, runner.counter())) {
    const nlohmann::json j = {{"task", s.task},
                              {"index", s.index},
                              {"depth", s.depth >= 0 ? nlohmann::json(s.depth) : nlohmann::json(nullptr)},
                              {"context", s.context},
                              {"question", s.question},
                              {"answer_prefix", s.answer_prefix},
                              {"answers", s.answers},
                              {"max_new_tokens", cfg.max_new_tokens ? *cfg.max_new_tokens : s.max_new_tokens},
                              {"target_length", s.target_length},
                              {"prompt_tokens", s.prompt_tokens},
                              {"seed", cfg.seed}};
    out += j.dump() + "\n";
  }
  eval::write_file_atomic(path, out);
}
}  // namespace

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "kvpress's evaluation CLI on offline RULER-style datasets (docs/eval.md)");
  auto values = std::make_shared<std::map<std::string, std::string>>();
  auto config_file = std::make_shared<std::string>();
  cmd->add_option("--config_file,--config-file,--config", *config_file,
                  "YAML (flat key: value) or JSON config with kvpress's keys");
  add_config_flags(*cmd, *values);
  auto dump = std::make_shared<std::string>();
  cmd->add_option("--dump-dataset,--dump_dataset", *dump,
                  "write the generated dataset (every row, before the 'fraction' subsample; context, question, "
                  "answer_prefix, answers, ...) as JSONL to FILE and exit (the model is loaded for its tokenizer; "
                  "nothing is generated)");
  cmd->callback([cmd, values, config_file, dump] {
    auto cfg = layered_config(*cmd, *config_file, *values);
    if (!dump->empty()) {
      dump_dataset(cfg, *dump);
      std::printf("%s\n", dump->c_str());
      return;
    }
    const std::string dir = eval::run_eval(cfg);
    std::printf("%s\n", dir.c_str());
  });
}

void add_bench_speed_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks of the eval family (see also bench-runtime, bench-press)");
  bench->require_subcommand(1);
  auto o = std::make_shared<eval::SpeedMemoryOptions>();
  auto* sm = bench->add_subcommand(
      "speed-memory", "kvpress's speed-and-memory notebook: timings, KV bytes, peak RSS vs length and ratio (random weights)");
  sm->add_option("--preset", o->preset, "smollm2-135m | llama-3.2-1b | llama-3.1-8b | qwen3-4b")->capture_default_str();
  sm->add_option("--hf-config", o->hf_config, "a Hugging Face config.json (instead of a preset)");
  sm->add_option("--num-layers", o->num_layers, "override the layer count (0 = the config's)");
  sm->add_option("--dtype", o->dtype, "float32 | bfloat16")->capture_default_str();
  sm->add_option("--device", o->device, "cpu, cuda or cuda:N (the model, its cache and the press run there)")
      ->capture_default_str();
  sm->add_option("--threads", o->threads, "libtorch threads (0 = all cores)");
  sm->add_option("--lengths", o->lengths, "context lengths (tokens)")->delimiter(',')->capture_default_str();
  sm->add_option("--ratios", o->ratios, "compression ratios")->delimiter(',')->capture_default_str();
  sm->add_option("--press_name,--press-name", o->press_name, "kvpress press name")->capture_default_str();
  sm->add_option("--press_spec,--press-spec", o->press_spec, "any kvforge spec (instead of press_name)");
  sm->add_option("--decode-tokens", o->decode_tokens, "tokens decoded after the prefill")->capture_default_str();
  sm->add_option("--repeats", o->repeats, "best of N")->capture_default_str();
  sm->add_option("--seed", o->seed, "weights and input ids")->capture_default_str();
  sm->add_option("--out", o->out, "CSV file (default: stdout)");
  sm->callback([o] {
    const std::string csv = eval::bench_speed_memory(*o);
    if (o->out.empty()) std::printf("%s", csv.c_str());
  });
}

}  // namespace kvf::cli
