#include "core/layer_snapshot.hpp"

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/safetensors.hpp"
#include "core/tensor_io.hpp"

namespace kvf {

std::unique_ptr<LayerSnapshot> load_layer_snapshot(const std::filesystem::path& path) {
  const std::string src = path.string();
  SafetensorsFile f(path);
  const auto& meta = f.metadata();
  auto need_meta = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end()) throw Error(src + ": not a kvforge layer snapshot (metadata '" + key + "' missing)");
    return it->second;
  };
  if (need_meta("kvforge_snapshot") != "1")
    throw Error(src + ": unsupported snapshot version '" + meta.at("kvforge_snapshot") + "' (this kvforge reads 1)");
  auto s = std::make_unique<LayerSnapshot>();
  s->config_json = need_meta("config");
  nlohmann::json cj;
  try {
    cj = nlohmann::json::parse(s->config_json);
  } catch (const nlohmann::json::exception& e) {
    throw Error(src + ": metadata 'config' is not valid JSON: " + e.what());
  }
  s->config = parse_config_json(cj, src + " (metadata 'config')");
  const auto& c = s->config;
  int64_t layer = 0;
  try {
    size_t used = 0;
    layer = std::stoll(need_meta("layer_idx"), &used);
    if (used != meta.at("layer_idx").size()) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw Error(src + ": metadata 'layer_idx' = '" + meta.at("layer_idx") + "' is not an integer");
  }
  if (layer < 0 || layer >= c.num_hidden_layers)
    throw Error(src + ": layer_idx " + std::to_string(layer) + " is out of range (the config has " +
                std::to_string(c.num_hidden_layers) + " layers)");

  auto get = [&](const char* name, bool required) -> at::Tensor {
    const TensorView* v = f.find(name);
    if (!v) {
      if (required) throw Error(src + ": tensor '" + name + "' missing");
      return {};
    }
    return tensor_from_view(*v);
  };
  auto check = [&](const at::Tensor& t, const char* name, std::vector<int64_t> shape) {
    if (!t.defined()) return;
    if (t.sizes().vec() != shape) {
      std::string want, got;
      for (auto d : shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
      for (auto d : t.sizes()) got += (got.empty() ? "" : ", ") + std::to_string(d);
      throw Error(src + ": tensor '" + name + "' has shape (" + got + "), expected (" + want + ")");
    }
  };
  auto keys = get("keys", true), values = get("values", true), hidden = get("hidden_states", true);
  if (keys.dim() != 4) throw Error(src + ": tensor 'keys' must be (batch, kv_heads, seq, head_dim)");
  if (hidden.dim() != 3) throw Error(src + ": tensor 'hidden_states' must be (batch, tokens, hidden)");
  const int64_t B = keys.size(0), S = keys.size(2), T = hidden.size(1), d = c.head_dim;
  const int64_t Hq = c.num_attention_heads, Hkv = c.num_key_value_heads;
  check(keys, "keys", {B, Hkv, S, d});
  check(values, "values", {B, Hkv, S, d});
  check(hidden, "hidden_states", {B, T, c.hidden_size});
  if (T > S) throw Error(src + ": hidden_states has more tokens (" + std::to_string(T) + ") than the cache (" + std::to_string(S) + ")");
  auto cos = get("cos", true), sin = get("sin", true), inv_freq = get("inv_freq", true), pos = get("position_ids", true);
  check(cos, "cos", {B, T, d});
  check(sin, "sin", {B, T, d});
  check(inv_freq, "inv_freq", {d / 2});
  check(pos, "position_ids", {B, T});
  auto& w = s->weights;
  w.q_proj = get("q_proj", true);
  w.o_proj = get("o_proj", true);
  w.q_bias = get("q_bias", false);
  w.q_norm = get("q_norm", false);
  check(w.q_proj, "q_proj", {Hq * d, c.hidden_size});
  check(w.o_proj, "o_proj", {c.hidden_size, Hq * d});
  check(w.q_bias, "q_bias", {Hq * d});
  check(w.q_norm, "q_norm", {d});
  if (c.qk_norm && !w.q_norm.defined()) throw Error(src + ": the config has q/k norms but tensor 'q_norm' is missing");
  auto attn = get("attentions", false);
  check(attn, "attentions", {B, Hq, T, S});

  s->cache.keys = keys;
  s->cache.values = values;
  auto& v = s->view;
  v.layer = layer;
  v.phase = Phase::Prefill;
  v.config = &s->config;
  v.weights = &s->weights;
  v.hidden_states = hidden;
  v.position_ids = pos.to(at::kLong);
  v.cos = cos;
  v.sin = sin;
  v.inv_freq = inv_freq.to(at::kFloat);
  v.attentions = attn;
  return s;
}

void save_layer_snapshot(const std::filesystem::path& path, const LayerView& view, const LayerCache& cache,
                         const std::string& config_json) {
  if (cache.ragged() || cache.masked()) throw Error("layer snapshot: only a dense, uncompressed cache can be saved");
  std::map<std::string, at::Tensor> t{{"hidden_states", view.hidden_states}, {"keys", cache.keys},
                                      {"values", cache.values}, {"cos", view.cos}, {"sin", view.sin},
                                      {"inv_freq", view.inv_freq}, {"position_ids", view.position_ids},
                                      {"q_proj", view.weights->q_proj}, {"o_proj", view.weights->o_proj}};
  if (view.weights->q_bias.defined()) t["q_bias"] = view.weights->q_bias;
  if (view.weights->q_norm.defined()) t["q_norm"] = view.weights->q_norm;
  if (view.attentions.defined()) t["attentions"] = view.attentions;
  save_tensors(path, t, {{"kvforge_snapshot", "1"}, {"config", config_json}, {"layer_idx", std::to_string(view.layer)}});
}

}  // namespace kvf
