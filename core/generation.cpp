#include "core/generation.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>

#include "core/error.hpp"
#include "core/model.hpp"

namespace kvf {

int32_t pick_token(const at::Tensor& logits, const SamplingConfig& cfg, at::Generator& gen) {
  if (cfg.temperature <= 0.0) return static_cast<int32_t>(logits.argmax().item<int64_t>());
  auto scores = logits.to(at::kFloat) / cfg.temperature;
  if (cfg.top_p < 1.0) {
    auto [sorted, idx] = scores.sort(/*dim=*/-1, /*descending=*/false);
    auto cum = sorted.softmax(-1).cumsum(-1);
    auto remove = cum <= (1.0 - cfg.top_p);
    remove.index_put_({-1}, false);  // always keep the most likely token
    scores = scores.scatter(-1, idx, sorted.masked_fill(remove, -INFINITY));
  }
  auto probs = scores.softmax(-1);
  return static_cast<int32_t>(at::multinomial(probs, 1, false, gen).item<int64_t>());
}

GenerationResult generate(const Model& model, KVCache& cache, const std::vector<int32_t>& prompt,
                          const SamplingConfig& cfg, const TokenCallback& on_token, LayerHook* hook) {
  using clock = std::chrono::steady_clock;
  if (prompt.empty()) throw Error("generate: empty prompt");
  GenerationResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(cfg.seed);
  auto is_stop = [&](int32_t t) { return std::find(cfg.stop_ids.begin(), cfg.stop_ids.end(), t) != cfg.stop_ids.end(); };

  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  auto input = at::tensor(ids, at::kLong).unsqueeze(0);
  ForwardOptions opts;
  opts.hook = hook;
  opts.last_logits_only = true;
  auto t0 = clock::now();
  auto logits = model.forward(input, cache, opts);
  r.prefill_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  t0 = clock::now();
  for (int64_t step = 0; step < cfg.max_new_tokens; ++step) {
    const int32_t next = pick_token(logits[0][-1].to(at::kCPU), cfg, gen);  // the CPU generator samples
    if (is_stop(next)) {
      r.stopped_on_eos = true;
      break;
    }
    r.tokens.push_back(next);
    if (on_token && !on_token(next)) break;
    if (step + 1 == cfg.max_new_tokens) break;  // no forward for a token we will not use
    logits = model.forward(at::full({1, 1}, static_cast<int64_t>(next), at::kLong), cache, opts);
  }
  r.decode_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return r;
}

}  // namespace kvf
