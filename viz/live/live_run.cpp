#include "viz/live/live_run.hpp"

#include <cstring>
#include <ctime>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "core/pipeline.hpp"
#include "kernels/press_hook.hpp"
#include "kernels/registry.hpp"

namespace kvviz::live {

std::vector<std::string> registered_press_examples() {
  std::vector<std::string> out;
  for (const auto& e : kvf::press_registry().entries()) out.push_back(e.example);
  return out;
}

namespace {
struct Cancelled {};
}  // namespace

Trace run_press(const LiveRequest& r, const Progress& progress, const std::atomic<bool>* cancel) {
  try {
    auto press = kvf::press_registry().make(r.press, r.compression_ratio);
    if (progress) progress(0, 1, "loading " + r.model);
    kvf::LoadOptions lo;
    auto m = kvf::load_model(r.model, lo);
    if (!m.tokenizer) throw kvf::Error("model " + m.source.string() + " has no tokenizer");
    kvf::PipelineOptions po;
    po.max_new_tokens = 1;
    po.rerotated_positions = press->rerotates_positions();
    const std::vector<std::string> questions{""};
    const auto prompt = kvf::build_pipeline_prompt(m, r.context, questions, po);
    Trace t;
    t.layers = m.config.num_hidden_layers;
    t.heads = m.config.num_key_value_heads;
    t.seq = static_cast<int64_t>(prompt.context_ids.size());
    if (t.seq == 0) throw kvf::Error("the context has no tokens");
    t.press = press->spec();
    t.compression_ratio = press->compression_ratio();
    t.backend = "fused";
    t.model_name = m.config.name;
    t.model_path = m.source.string();
    t.context_file = r.context_name;
    const size_t n = static_cast<size_t>(t.layers * t.heads * t.seq);
    t.scores.assign(n, 0.0f);
    t.kept.assign(n, 0);
    kvf::PressHook hook(*press, kvf::Backend::Fused);
    int done = 0;
    hook.on_result = [&](const kvf::LayerView& view, const kvf::CompressResult& res) {
      if (cancel && cancel->load()) throw Cancelled{};
      const int64_t l = view.layer, H = t.heads, S = t.seq;
      if (res.scores.defined()) {
        auto s = res.scores.to(at::kFloat).contiguous();
        if (s.numel() != H * S) throw kvf::Error("unexpected score shape");
        std::memcpy(t.scores.data() + t.index(l, 0, 0), s.data_ptr<float>(), sizeof(float) * size_t(H * S));
      } else {
        t.scores_available = false;
      }
      for (int64_t h = 0; h < H; ++h) {
        const int32_t* p = res.kept.begin(0, h);
        for (int64_t i = 0, k = res.kept.count(0, h); i < k; ++i) t.kept[t.index(l, h, p[i])] = 1;
      }
      if (progress) progress(++done, static_cast<int>(t.layers), "layer " + std::to_string(l));
    };
    kvf::run_pipeline(m, r.context, questions, &hook, po);
    for (int32_t id : prompt.context_ids) {
      t.token_ids.push_back(id);
      t.tokens.push_back(m.tokenizer->token_text(id));
    }
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    t.created_utc = buf;
    return t;
  } catch (const Cancelled&) {
    throw TraceError("cancelled");
  } catch (const TraceError&) {
    throw;
  } catch (const std::exception& e) {
    throw TraceError(e.what());
  }
}

}  // namespace kvviz::live
