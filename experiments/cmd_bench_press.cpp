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
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/device.hpp"
#include "core/error.hpp"
#include "core/layer_snapshot.hpp"
#include "core/rope.hpp"
#include "experiments/eval/eval.hpp"
#include "experiments/cli_common.hpp"
#include "kernels/registry.hpp"

namespace kvf::cli {
namespace {

struct BenchPressOptions {
  std::string in;
  int64_t synthetic_seq = 0;  // > 0: a random layer of --preset's attention shape instead of --in
  std::string preset = "llama-3.1-8b";
  std::string dtype = "float32";  // cache (keys/values) dtype of a synthetic layer
  std::string device = "cpu";
  uint64_t seed = 0;
  std::vector<std::string> presses;
  double compression_ratio = 0.5;
  std::string backend = "both";
  std::string cache_mode = "compact";  // masked: select only, as kvpress's AdaKV (Rows::SkipUnchanged)
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

// A random layer with `cfg`'s attention shape, B = 1, S tokens (keys/values/hidden ~ N(0, 1), q_proj/o_proj
// ~ N(0, 0.02), real RoPE tables), drawn on `dev`: what a GPU benchmark at 128k needs without a 2 GB snapshot file.
std::unique_ptr<LayerSnapshot> synthetic_layer(const ModelConfig& cfg, int64_t S, at::ScalarType dt,
                                               const at::Device& dev, uint64_t seed) {
  at::manual_seed(seed);
  auto snap = std::make_unique<LayerSnapshot>();
  snap->config = cfg;
  const int64_t hid = cfg.hidden_size, Hq = cfg.num_attention_heads, H = cfg.num_key_value_heads, d = cfg.head_dim;
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(dev);
  snap->weights.q_proj = at::randn({Hq * d, hid}, f32) * 0.02;
  snap->weights.o_proj = at::randn({hid, Hq * d}, f32) * 0.02;
  auto& v = snap->view;
  v.layer = 0;
  v.config = &snap->config;
  v.weights = &snap->weights;
  v.hidden_states = at::randn({1, S, hid}, f32).to(dt);
  v.position_ids = at::arange(S, f32.dtype(at::kLong)).unsqueeze(0);
  v.inv_freq = rope_inv_freq(cfg).to(dev);
  std::tie(v.cos, v.sin) = rope_cos_sin(v.inv_freq, v.position_ids, dt);
  snap->cache.keys = at::randn({1, H, S, d}, f32).to(dt);
  snap->cache.values = at::randn({1, H, S, d}, f32).to(dt);
  return snap;
}

// Moves a loaded snapshot's tensors to `dev` (its view keeps pointing at the snapshot's config and weights).
void snapshot_to(LayerSnapshot& s, const at::Device& dev) {
  for (at::Tensor* t : {&s.weights.q_proj, &s.weights.o_proj, &s.weights.q_bias, &s.weights.q_norm,
                        &s.view.hidden_states, &s.view.position_ids, &s.view.cos, &s.view.sin, &s.view.inv_freq,
                        &s.view.attentions, &s.cache.keys, &s.cache.values})
    if (t->defined()) *t = t->to(dev);
}

// One press on the loaded layer: each backend's median time, as a JSON line (index = its --press position) or
// a text line.
void bench_one(const BenchPressOptions& o, size_t index, const RuntimePress& press, const LayerSnapshot& snap,
               const at::Device& dev) {
  if (press.needs_attentions() && !snap.view.attentions.defined())
    throw Error("press '" + press.spec() + "' needs attention weights, which " +
                (o.in.empty() ? std::string("a synthetic layer does not have")
                              : "snapshot '" + o.in + "' lacks (dump it with --attentions)"));
  const int64_t B = snap.cache.keys.size(0), H = snap.cache.keys.size(1), S = snap.cache.length();
  std::vector<std::pair<std::string, Backend>> backends;
  if (o.backend != "fused") backends.emplace_back("reference", Backend::Reference);
  if (o.backend != "reference") backends.emplace_back("fused", Backend::Fused);
  using clock = std::chrono::steady_clock;
  const Rows rows = o.cache_mode == "masked" ? Rows::SkipUnchanged : Rows::Write;
  for (const auto& [name, backend] : backends) {
    int warm = 0;
    for (; warm < o.warmup; ++warm) {
      (void)press.compress(snap.view, snap.cache, backend, rows);
      synchronize(dev);
    }
    std::vector<double> ms;
    int64_t kept = 0;
    auto timed = [&] {
      const auto t0 = clock::now();
      CompressResult r = press.compress(snap.view, snap.cache, backend, rows);
      synchronize(dev);
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
      nlohmann::json j{{"index", index},            {"press", press.spec()},
                       {"compression_ratio", press.compression_ratio()},
                       {"backend", name},           {"batch", B},
                       {"cache_mode", o.cache_mode},
                       {"rows_written", rows == Rows::Write || press.rewrites_rows()},
                       {"kv_heads", H},             {"seq", S},
                       {"threads", at::get_num_threads()}, {"warmup", warm},
                       {"ms", med},                 {"runs_ms", ms},
                       {"kept", kept},              {"entries", B * H * S},
                       {"device", dev.str()},
                       {"native", press.has_device_executor(dev)},  // false: host copies on a GPU
                       {"cache_dtype", std::string(c10::toString(snap.cache.keys.scalar_type()))}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%-10s %s  cr=%g  S=%lld%s: %.3f ms (median of %d", name.c_str(), press.spec().c_str(),
                  press.compression_ratio(), static_cast<long long>(S),
                  rows == Rows::Write || press.rewrites_rows() ? "" : " (masked: selection only)", med, o.repeat);
      if (warm) std::printf(", after %d warm-up", warm);
      std::printf("), kept %lld of %lld entries\n", static_cast<long long>(kept), static_cast<long long>(B * H * S));
    }
    std::fflush(stdout);
  }
}

void run_bench_press(const BenchPressOptions& o) {
  if (o.threads > 0) at::set_num_threads(o.threads);
  // Every spec is resolved before the layer is built or loaded: a typo fails at once.
  std::vector<std::unique_ptr<RuntimePress>> presses;
  for (const auto& spec : o.presses) presses.push_back(press_registry().make(spec, o.compression_ratio));
  if (o.in.empty() == (o.synthetic_seq <= 0)) throw Error("bench-press: give exactly one of --in and --synthetic-seq");
  const at::Device dev = parse_device(o.device);
  std::unique_ptr<LayerSnapshot> snap;
  if (o.synthetic_seq > 0) {
    snap = synthetic_layer(eval::preset_config(o.preset), o.synthetic_seq,
                           o.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat, dev, o.seed);
  } else {
    snap = load_layer_snapshot(o.in);
    snapshot_to(*snap, dev);
  }
  synchronize(dev);
  at::NoGradGuard no_grad;
  // With several presses (one layer, many timings: a GPU session's sweep) a press that fails is reported and the
  // next one runs; the exit status is then non-zero. A single press fails as any command does.
  int failed = 0;
  for (size_t i = 0; i < presses.size(); ++i) {
    if (presses.size() == 1) {
      bench_one(o, i, *presses[i], *snap, dev);
      break;
    }
    try {
      bench_one(o, i, *presses[i], *snap, dev);
    } catch (const std::exception& e) {
      ++failed;
      if (o.json)
        std::printf("%s\n", nlohmann::json{{"index", i}, {"press", presses[i]->spec()}, {"error", e.what()}}.dump().c_str());
      else
        std::printf("FAILED     %s: %s\n", presses[i]->spec().c_str(), e.what());
      std::fflush(stdout);
    }
  }
  if (failed) throw Error("bench-press: " + std::to_string(failed) + " of " + std::to_string(presses.size()) +
                          " presses failed (see their lines)");
}

}  // namespace

void add_bench_press_command(CLI::App& app) {
  auto o = std::make_shared<BenchPressOptions>();
  auto* cmd = app.add_subcommand("bench-press", "Time a press's compression step on a layer snapshot");
  cmd->add_option("--in", o->in, "layer snapshot (.safetensors, docs/formats.md)");
  cmd->add_option("--synthetic-seq", o->synthetic_seq,
                  "instead of --in: a random layer of this many tokens with --preset's attention shape")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--preset", o->preset, "shape of a synthetic layer: smollm2-135m | llama-3.2-1b | llama-3.1-8b | qwen3-4b")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "cache dtype of a synthetic layer")
      ->check(CLI::IsMember({"float32", "bfloat16"}))
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of a synthetic layer")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu, cuda or cuda:N: where the layer lives and the press runs")
      ->capture_default_str();
  cmd->add_option("--press", o->presses,
                  "press spec, e.g. snapkv(window_size=64) (see `kvforge presses`); repeat it to time several presses "
                  "on one layer (JSON lines carry each one's --press index)")
      ->required()
      ->take_all()
      ->allow_extra_args(false);
  cmd->add_option("--compression-ratio", o->compression_ratio, "fraction of the KV cache REMOVED, in [0, 1)")
      ->capture_default_str();
  cmd->add_option("--backend", o->backend, "fused, reference or both (reference first)")
      ->check(CLI::IsMember({"fused", "reference", "both"}))
      ->capture_default_str();
  cmd->add_option("--cache-mode", o->cache_mode,
                  "compact (write the compressed cache) or masked (kvpress's AdaKV: select only, the cache stays; a "
                  "press whose post-op rewrites rows still writes them)")
      ->check(CLI::IsMember({"compact", "masked"}))
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
