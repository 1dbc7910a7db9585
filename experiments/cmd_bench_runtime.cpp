// kvforge bench-runtime: prefill and decode throughput of the runtime (no press), one JSON line per
// prompt length. experiments/bench_runtime.py runs it beside transformers and prints the comparison.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/model.hpp"
#include "experiments/cli_common.hpp"

namespace kvf::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  std::vector<int64_t> prompt_tokens{512, 2048};
  int64_t decode_tokens = 64;
  int repeats = 3;
};

// Deterministic prompt ids shared with bench_runtime.py (no tokenizer involved).
at::Tensor bench_ids(int64_t n, int64_t vocab) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = (i * 7919 + 13) % vocab;
  return at::tensor(ids, at::kLong).unsqueeze(0);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run(const BenchOptions& o) {
  auto m = load_with_progress(o.model);
  const auto& model = *m.model;
  using clock = std::chrono::steady_clock;
  at::NoGradGuard no_grad;
  for (int64_t n : o.prompt_tokens) {
    auto ids = bench_ids(n, m.config.vocab_size);
    std::vector<double> prefill, decode;
    for (int r = 0; r < o.repeats + 1; ++r) {  // the first run warms up and is not counted
      KVCache cache = model.new_cache();
      ForwardOptions fo;
      fo.last_logits_only = true;
      auto t0 = clock::now();
      auto logits = model.forward(ids, cache, fo);
      const double tp = std::chrono::duration<double>(clock::now() - t0).count();
      t0 = clock::now();
      for (int64_t s = 0; s < o.decode_tokens; ++s) {
        auto next = logits[0][-1].argmax().view({1, 1});
        logits = model.forward(next, cache, fo);
      }
      const double td = std::chrono::duration<double>(clock::now() - t0).count();
      if (r > 0) prefill.push_back(tp), decode.push_back(td);
    }
    std::printf("{\"engine\": \"kvforge\", \"prompt_tokens\": %lld, \"decode_tokens\": %lld, \"threads\": %d, "
                "\"prefill_s\": %.6f, \"decode_s\": %.6f, \"prefill_tok_s\": %.3f, \"decode_tok_s\": %.3f}\n",
                static_cast<long long>(n), static_cast<long long>(o.decode_tokens), at::get_num_threads(),
                median(prefill), median(decode), n / median(prefill), o.decode_tokens / median(decode));
    std::fflush(stdout);
  }
}

}  // namespace

void add_bench_runtime_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench-runtime", "Prefill and decode tokens/s of the runtime (JSON lines on stdout)");
  o->model.add_to(*cmd);
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "prompt lengths")->capture_default_str();
  cmd->add_option("--decode-tokens", o->decode_tokens, "tokens decoded after each prefill")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "timed runs per length (median reported), after one warm-up")
      ->check(CLI::PositiveNumber)->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace kvf::cli
