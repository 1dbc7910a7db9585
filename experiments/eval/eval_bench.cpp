// kvforge bench speed-memory: prefill / compression / decode timings, KV-cache bytes and peak RSS against context
// length and compression ratio, on a random-weight model of any config (no weights needed).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "core/config.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "core/model.hpp"
#include "experiments/eval/eval.hpp"
#include "kernels/cache_buffer_pool.hpp"
#include "kernels/press_hook.hpp"
#include "kernels/registry.hpp"

namespace kvf::eval {

ModelConfig preset_config(const std::string& name) {
  ModelConfig c;
  c.model_type = "llama";
  c.name = name + " (random weights)";
  c.rms_norm_eps = 1e-5;
  c.max_position_embeddings = 131072;
  if (name == "smollm2-135m") {
    c.vocab_size = 49152, c.hidden_size = 576, c.intermediate_size = 1536, c.num_hidden_layers = 30;
    c.num_attention_heads = 9, c.num_key_value_heads = 3, c.head_dim = 64, c.rope_theta = 100000;
    c.tie_word_embeddings = true;
  } else if (name == "llama-3.2-1b") {
    c.vocab_size = 128256, c.hidden_size = 2048, c.intermediate_size = 8192, c.num_hidden_layers = 16;
    c.num_attention_heads = 32, c.num_key_value_heads = 8, c.head_dim = 64, c.rope_theta = 500000;
    c.tie_word_embeddings = true;
  } else if (name == "llama-3.1-8b") {
    c.vocab_size = 128256, c.hidden_size = 4096, c.intermediate_size = 14336, c.num_hidden_layers = 32;
    c.num_attention_heads = 32, c.num_key_value_heads = 8, c.head_dim = 128, c.rope_theta = 500000;
  } else if (name == "qwen3-4b") {
    c.model_type = "qwen3";
    c.vocab_size = 151936, c.hidden_size = 2560, c.intermediate_size = 9728, c.num_hidden_layers = 36;
    c.num_attention_heads = 32, c.num_key_value_heads = 8, c.head_dim = 128, c.rope_theta = 1000000;
    c.qk_norm = true, c.tie_word_embeddings = true;
  } else {
    throw Error("unknown preset '" + name + "'. Presets: smollm2-135m, llama-3.2-1b, llama-3.1-8b, qwen3-4b (or --hf-config)");
  }
  return c;
}

namespace {

// Drawn on the target device (8B parameters drawn on the host and copied would take minutes).
ModelWeights random_weights(const ModelConfig& c, at::ScalarType dt, const at::Device& dev) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(dev);
  auto rnd = [&](std::vector<int64_t> shape) { return (at::randn(shape, f32) * 0.02).to(dt); };
  auto ones = [&](std::vector<int64_t> shape) { return at::ones(shape, f32).to(dt); };
  const int64_t h = c.hidden_size, D = c.head_dim, H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  ModelWeights w;
  w.embed_tokens = rnd({c.vocab_size, h});
  w.norm = ones({h});
  w.lm_head = c.tie_word_embeddings ? w.embed_tokens : rnd({c.vocab_size, h});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerWeights L;
    L.input_layernorm = ones({h});
    L.post_attention_layernorm = ones({h});
    L.q_proj = rnd({H * D, h});
    L.k_proj = rnd({Hkv * D, h});
    L.v_proj = rnd({Hkv * D, h});
    L.o_proj = rnd({h, H * D});
    if (c.attention_bias) L.q_bias = rnd({H * D}), L.k_bias = rnd({Hkv * D}), L.v_bias = rnd({Hkv * D});
    if (c.qk_norm) L.q_norm = ones({D}), L.k_norm = ones({D});
    L.gate_proj = rnd({c.intermediate_size, h});
    L.up_proj = rnd({c.intermediate_size, h});
    L.down_proj = rnd({h, c.intermediate_size});
    w.layers.push_back(std::move(L));
  }
  return w;
}

void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (f) f << "5";  // Linux: resets VmHWM to the current RSS
}

double secs(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string bench_speed_memory(const SpeedMemoryOptions& o) {
  if (o.threads > 0) at::set_num_threads(static_cast<int>(o.threads));
  ModelConfig c = o.hf_config.empty() ? preset_config(o.preset) : load_config_json(o.hf_config);
  if (o.num_layers > 0) c.num_hidden_layers = o.num_layers;
  if (o.dtype != "float32" && o.dtype != "bfloat16") throw Error("dtype must be float32 or bfloat16");
  const at::ScalarType dt = o.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  const at::Device dev = parse_device(o.device);
  // Resolve the press before building the model (errors early).
  EvalConfig pc;
  pc.press_name = o.press_spec.empty() ? o.press_name : "custom";
  pc.press_spec = o.press_spec;
  for (double r : o.ratios) {
    EvalConfig t = pc;
    t.compression_ratio = r;
    finalize_config(t);
  }
  at::manual_seed(o.seed);
  const auto t0 = std::chrono::steady_clock::now();
  Model model(c, random_weights(c, dt, dev));
  synchronize(dev);
  const int64_t weight_bytes = model.weights().bytes();
  std::fprintf(stderr, "[bench] %s: %lld layers, %lld heads (%lld kv) x %lld, %.1f MB of random weights on %s in %.1f s\n",
               c.name.c_str(), static_cast<long long>(c.num_hidden_layers),
               static_cast<long long>(c.num_attention_heads), static_cast<long long>(c.num_key_value_heads),
               static_cast<long long>(c.head_dim), weight_bytes / 1e6, dev.str().c_str(), secs(t0));
  std::string csv =
      "model,layers,dtype,press_name,press_spec,compression_ratio,context_tokens,prefill_s,compression_s,"
      "decode_tokens,decode_s,decode_tokens_per_s,kv_bytes_before,kv_bytes_after,weight_bytes,rss_before_bytes,"
      "peak_rss_bytes,device,peak_device_bytes\n";
  for (int64_t len : o.lengths) {
    const auto ids = at::randint(0, c.vocab_size, {1, len}, at::kLong);
    for (double r : o.ratios) {
      EvalConfig t = pc;
      t.compression_ratio = r;
      finalize_config(t);
      std::unique_ptr<RuntimePress> press;
      if (!t.press_spec.empty() && t.compression_ratio > 0) press = press_registry().make(t.press_spec, t.compression_ratio);
      double best_prefill = 1e30, best_comp = 0, best_decode = 1e30;
      int64_t kv_after = 0, peak = 0, rss0 = 0, ndec = 0, peak_dev = -1;
      for (int64_t rep = 0; rep < std::max<int64_t>(1, o.repeats); ++rep) {
        trim_cache_buffer_pool();  // the previous cell's freed caches must not count in this cell's RSS
        reset_peak_rss();
        rss0 = rss_bytes();
        reset_device_peak(dev);
        KVCache cache = model.new_cache();
        std::unique_ptr<PressHook> hook;
        if (press) hook = std::make_unique<PressHook>(*press);
        ForwardOptions fo;
        fo.last_logits_only = true;
        fo.hook = hook.get();
        auto tp = std::chrono::steady_clock::now();
        auto logits = model.forward(ids, cache, fo);
        const double prefill = secs(tp);
        const double comp = hook ? hook->total_seconds() : 0.0;
        kv_after = cache.bytes();
        fo.hook = nullptr;
        int64_t tok = logits[0][-1].argmax().item<int64_t>();
        auto td = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < o.decode_tokens; ++i) {
          fo.position_ids = at::full({1, 1}, len + i, at::kLong);
          logits = model.forward(at::full({1, 1}, tok, at::kLong), cache, fo);
          tok = logits[0][-1].argmax().item<int64_t>();
        }
        const double decode = secs(td);
        ndec = o.decode_tokens;
        peak = std::max(peak, peak_rss_bytes());
        peak_dev = std::max(peak_dev, device_peak_bytes(dev));
        if (prefill < best_prefill) best_prefill = prefill, best_comp = comp;
        best_decode = std::min(best_decode, decode);
      }
      const int64_t kv_before =
          2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim * len * static_cast<int64_t>(c10::elementSize(dt));
      char line[1024];
      std::snprintf(line, sizeof line, "%s,%lld,%s,%s,%s,%.2f,%lld,%.6f,%.6f,%lld,%.6f,%.3f,%lld,%lld,%lld,%lld,%lld,%s,%lld\n",
                    csv_escape(o.hf_config.empty() ? o.preset : o.hf_config).c_str(),
                    static_cast<long long>(c.num_hidden_layers), o.dtype.c_str(), t.press_name.c_str(),
                    csv_escape(t.press_spec).c_str(), t.compression_ratio, static_cast<long long>(len),
                    best_prefill - best_comp, best_comp, static_cast<long long>(ndec), best_decode,
                    best_decode > 0 ? ndec / best_decode : 0.0, static_cast<long long>(kv_before),
                    static_cast<long long>(kv_after), static_cast<long long>(weight_bytes),
                    static_cast<long long>(rss0), static_cast<long long>(peak), dev.str().c_str(),
                    static_cast<long long>(peak_dev));
      csv += line;
      std::fprintf(stderr, "[bench] %lld tokens, ratio %.2f: prefill %.3f s (press %.3f s), decode %.1f tok/s, KV %.1f -> %.1f MiB, peak RSS %.0f MiB%s\n",
                   static_cast<long long>(len), t.compression_ratio, best_prefill - best_comp, best_comp,
                   best_decode > 0 ? ndec / best_decode : 0.0, kv_before / 1048576.0, kv_after / 1048576.0,
                   peak / 1048576.0,
                   dev.is_cpu() ? "" : (", peak " + dev.str() + " " + std::to_string(peak_dev >> 20) + " MiB").c_str());
    }
  }
  if (!o.out.empty()) write_file_atomic(o.out, csv);
  return csv;
}

}  // namespace kvf::eval
