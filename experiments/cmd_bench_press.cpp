// kvforge bench-press: wall-clock time of one press's compression step on a layer snapshot
// (core/layer_snapshot.hpp), through the fused executor, the libtorch reference path, or both.
// experiments/bench_presses.py runs it beside kvpress on the same snapshot and writes docs/bench-presses.md.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/layer_snapshot.hpp"
#include "experiments/cli_common.hpp"
#include "kernels/registry.hpp"

namespace kvf::cli {
namespace {

struct BenchPressOptions {
  std::string in;
  std::string press;
  double compression_ratio = 0.5;
  std::string backend = "both";
  int repeat = 1;
  int warmup = 0;
  double warmup_under_ms = 0.0;
  int threads = 0;
  bool json = false;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void run_bench_press(const BenchPressOptions& o) {
  if (o.threads > 0) at::set_num_threads(o.threads);
  auto press = press_registry().make(o.press, o.compression_ratio);
  auto snap = load_layer_snapshot(o.in);
  if (press->needs_attentions() && !snap->view.attentions.defined())
    throw Error("press '" + press->spec() + "' needs attention weights, but snapshot '" + o.in +
                "' has no 'attentions' tensor (dump it with --attentions)");
  const int64_t B = snap->cache.keys.size(0), H = snap->cache.keys.size(1), S = snap->cache.length();
  std::vector<std::pair<std::string, Backend>> backends;
  if (o.backend != "fused") backends.emplace_back("reference", Backend::Reference);
  if (o.backend != "reference") backends.emplace_back("fused", Backend::Fused);

  at::NoGradGuard no_grad;
  using clock = std::chrono::steady_clock;
  for (const auto& [name, backend] : backends) {
    int warm = 0;
    for (; warm < o.warmup; ++warm) (void)press->compress(snap->view, snap->cache, backend);
    std::vector<double> ms;
    int64_t kept = 0;
    auto timed = [&] {
      const auto t0 = clock::now();
      CompressResult r = press->compress(snap->view, snap->cache, backend);
      kept = r.kept.total();
      return std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    };
    if (o.warmup_under_ms > 0) {  // a cold run: a warm-up when it was cheap, else the first measurement
      const double t = timed();
      if (t < o.warmup_under_ms)
        ++warm;
      else
        ms.push_back(t);
    }
    while (static_cast<int>(ms.size()) < o.repeat) ms.push_back(timed());
    const double med = median(ms);
    if (o.json) {
      nlohmann::json j{{"press", press->spec()},   {"compression_ratio", press->compression_ratio()},
                       {"backend", name},           {"batch", B},
                       {"kv_heads", H},             {"seq", S},
                       {"threads", at::get_num_threads()}, {"warmup", warm},
                       {"ms", med},                 {"runs_ms", ms},
                       {"kept", kept},              {"entries", B * H * S}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%-10s %s  cr=%g  S=%lld: %.3f ms (median of %d", name.c_str(), press->spec().c_str(),
                  press->compression_ratio(), static_cast<long long>(S), med, o.repeat);
      if (warm) std::printf(", after %d warm-up", warm);
      std::printf("), kept %lld of %lld entries\n", static_cast<long long>(kept), static_cast<long long>(B * H * S));
    }
    std::fflush(stdout);
  }
}

}  // namespace

void add_bench_press_command(CLI::App& app) {
  auto o = std::make_shared<BenchPressOptions>();
  auto* cmd = app.add_subcommand("bench-press", "Time a press's compression step on a layer snapshot");
  cmd->add_option("--in", o->in, "layer snapshot (.safetensors, docs/formats.md)")->required();
  cmd->add_option("--press", o->press, "press spec, e.g. snapkv(window_size=64) (see `kvforge presses`)")->required();
  cmd->add_option("--compression-ratio", o->compression_ratio, "fraction of the KV cache REMOVED, in [0, 1)")
      ->capture_default_str();
  cmd->add_option("--backend", o->backend, "fused, reference or both (reference first)")
      ->check(CLI::IsMember({"fused", "reference", "both"}))
      ->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "timed runs per backend (the median is reported)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "untimed runs per backend before the timed ones")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--warmup-under-ms", o->warmup_under_ms,
                  "time one cold run first: below this many ms it is an untimed warm-up, else it counts as the "
                  "first timed run (0 = off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads for libtorch (0 = all cores)")->capture_default_str();
  cmd->add_flag("--json", o->json, "one JSON object per backend and line");
  cmd->callback([o] { run_bench_press(*o); });
}

}  // namespace kvf::cli
