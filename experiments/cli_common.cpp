#include "experiments/cli_common.hpp"

#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>

#include "core/chat_template.hpp"
#include "core/device.hpp"
#include "core/error.hpp"

namespace kvf::cli {

void ModelOptions::add_to(CLI::App& app) {
  app.add_option("--model", model, "GGUF file, Hugging Face checkpoint folder, or 'default' (SmolLM2-135M-Instruct Q4_1)")
      ->capture_default_str();
  app.add_option("--dtype", dtype, "compute dtype")->check(CLI::IsMember({"float32", "bfloat16"}))->capture_default_str();
  app.add_option("--threads", threads, "CPU threads for libtorch (0 = all cores)")->capture_default_str();
  app.add_option("--device", device,
                 "where the model and its KV cache run: cpu, cuda or cuda:N (presses without a CUDA executor run on "
                 "host copies)")
      ->capture_default_str();
}

LoadedModel load_with_progress(const ModelOptions& o) {
  if (o.threads > 0) at::set_num_threads(o.threads);
  LoadOptions lo;
  lo.dtype = o.dtype == "bfloat16" ? at::kBFloat16 : at::kFloat;
  lo.device = parse_device(o.device);
  const auto path = resolve_model_path(o.model);
  std::fprintf(stderr, "loading %s\n", path.string().c_str());
  const auto t0 = std::chrono::steady_clock::now();
  lo.progress = [](std::string_view what, int64_t done, int64_t total) {
    std::fprintf(stderr, "\r  %.*s %lld/%lld", static_cast<int>(what.size()), what.data(),
                 static_cast<long long>(done), static_cast<long long>(total));
    if (done == total) std::fprintf(stderr, "\n");
  };
  auto m = load_model(path.string(), lo);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "loaded %s: %lld layers, %lld heads (%lld kv), %.1f MB of weights on %s in %.2f s\n",
               m.config.name.c_str(), static_cast<long long>(m.config.num_hidden_layers),
               static_cast<long long>(m.config.num_attention_heads),
               static_cast<long long>(m.config.num_key_value_heads), m.model->weights().bytes() / 1e6,
               lo.device.str().c_str(), s);
  return m;
}

void PromptOptions::add_to(CLI::App& app) {
  app.add_flag("--no-chat-template", no_chat_template, "use the prompt as it is, without the model's chat template");
  app.add_option("--system", system, "system message (default: the template's own, if any)");
}

std::vector<int32_t> build_prompt(const LoadedModel& m, const PromptOptions& o, const std::string& user_text) {
  if (!m.tokenizer) throw Error("model " + m.source.string() + " has no tokenizer (tokenizer.json missing)");
  const auto& tok = *m.tokenizer;
  if (o.no_chat_template) return tok.encode(user_text, /*add_special=*/true);
  const ChatTemplate t = detect_chat_template(tok.chat_template());
  std::vector<ChatMessage> msgs;
  if (!o.system.empty()) msgs.push_back({"system", o.system});
  msgs.push_back({"user", user_text});
  // As transformers' apply_chat_template(tokenize=True): the template writes any BOS itself.
  return tok.encode(apply_chat_template(t, msgs, /*add_generation_prompt=*/true), /*add_special=*/false);
}

}  // namespace kvf::cli
