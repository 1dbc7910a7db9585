// kvforge generate: chat with a model (no press). Streams the answer to stdout, stats to stderr.
#include <cstdio>
#include <memory>
#include <string>

#include "core/generation.hpp"
#include "experiments/cli_common.hpp"

namespace kvf::cli {
namespace {

struct GenerateOptions {
  ModelOptions model;
  PromptOptions prompt;
  std::string text;
  SamplingConfig sampling;
};

// Length of the longest prefix of s that ends on a complete UTF-8 character.
size_t complete_utf8_prefix(const std::string& s) {
  size_t i = s.size(), back = 0;
  while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i, ++back;
  if (i == 0) return s.size();
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  const size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return (back + 1 >= need) ? s.size() : i - 1;
}

void run(const GenerateOptions& o) {
  auto m = load_with_progress(o.model);
  auto prompt = build_prompt(m, o.prompt, o.text);
  SamplingConfig sc = o.sampling;
  sc.stop_ids = m.stop_ids();
  KVCache cache = m.model->new_cache();
  std::vector<int32_t> out;
  size_t printed = 0;
  auto res = generate(*m.model, cache, prompt, sc, [&](int32_t t) {
    out.push_back(t);
    const std::string text = m.tokenizer->decode(out, /*skip_special=*/true);
    const size_t ready = complete_utf8_prefix(text);
    if (ready > printed) {
      std::fwrite(text.data() + printed, 1, ready - printed, stdout);
      std::fflush(stdout);
      printed = ready;
    }
    return true;
  });
  const std::string text = m.tokenizer->decode(out, true);
  if (text.size() > printed) std::fwrite(text.data() + printed, 1, text.size() - printed, stdout);
  std::fputc('\n', stdout);
  const double n = static_cast<double>(res.tokens.size());
  std::fprintf(stderr, "prompt %lld tokens, prefill %.3f s (%.1f tok/s); %lld new tokens, decode %.3f s (%.1f tok/s)%s\n",
               static_cast<long long>(res.prompt_tokens), res.prefill_seconds,
               res.prompt_tokens / std::max(res.prefill_seconds, 1e-9), static_cast<long long>(res.tokens.size()),
               res.decode_seconds, n / std::max(res.decode_seconds, 1e-9), res.stopped_on_eos ? ", stopped on EOS" : "");
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt (chat template applied for instruct models)");
  o->model.add_to(*cmd);
  o->prompt.add_to(*cmd);
  cmd->add_option("--prompt", o->text, "the user message")->required();
  cmd->add_option("--max-new-tokens", o->sampling.max_new_tokens, "maximum tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "0 = greedy (kvpress's default)")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p, "nucleus sampling threshold (with --temperature > 0)")
      ->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "sampling seed")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace kvf::cli
