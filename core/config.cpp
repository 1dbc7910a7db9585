#include "core/config.hpp"

#include <fstream>
#include <iterator>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace kvf {

namespace {

using nlohmann::json;

// Field readers: absent or null -> default/error; wrong type -> error naming the field and its value.
int64_t req_int(const json& j, const char* field, const std::string& src) {
  if (!j.contains(field) || j[field].is_null()) throw Error(src + ": missing required field '" + field + "'");
  const auto& v = j[field];
  if (!v.is_number_integer() ||
      (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())))
    throw Error(src + ": field '" + field + "' must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

int64_t req_positive(const json& j, const char* field, const std::string& src) {
  const int64_t v = req_int(j, field, src);
  if (v <= 0) throw Error(src + ": field '" + field + "' must be positive, got " + std::to_string(v));
  return v;
}

std::optional<int64_t> opt_int(const json& j, const char* field, const std::string& src) {
  if (!j.contains(field) || j[field].is_null()) return std::nullopt;
  return req_int(j, field, src);
}

std::optional<double> opt_num(const json& j, const char* field, const std::string& src) {
  if (!j.contains(field) || j[field].is_null()) return std::nullopt;
  if (!j[field].is_number()) throw Error(src + ": field '" + field + "' must be a number, got " + j[field].dump());
  return j[field].get<double>();
}

double req_num(const json& j, const char* field, const std::string& src) {
  auto v = opt_num(j, field, src);
  if (!v) throw Error(src + ": missing required field '" + field + "'");
  return *v;
}

std::optional<bool> opt_bool(const json& j, const char* field, const std::string& src) {
  if (!j.contains(field) || j[field].is_null()) return std::nullopt;
  if (!j[field].is_boolean()) throw Error(src + ": field '" + field + "' must be a boolean, got " + j[field].dump());
  return j[field].get<bool>();
}

RopeScaling parse_rope_scaling(const json& r, const std::string& src, const std::string& where) {
  RopeScaling s;
  const std::string ctx = src + ": " + where;
  if (!r.is_object()) throw Error(ctx + " must be an object, got " + r.dump());
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    if (r.contains(key) && !r[key].is_null()) {
      if (!r[key].is_string()) throw Error(ctx + "." + key + " must be a string, got " + r[key].dump());
      type = r[key].get<std::string>();
      break;
    }
  }
  s.rope_type = type;
  if (type == "default") return s;
  if (type == "linear") {
    s.factor = req_num(r, "factor", ctx);
    return s;
  }
  if (type == "llama3") {
    s.factor = req_num(r, "factor", ctx);
    s.low_freq_factor = req_num(r, "low_freq_factor", ctx);
    s.high_freq_factor = req_num(r, "high_freq_factor", ctx);
    s.original_max_position_embeddings = req_positive(r, "original_max_position_embeddings", ctx);
    return s;
  }
  throw Error(ctx + " rope type '" + type + "' is not supported (supported: default, linear, llama3)");
}

}  // namespace

ModelConfig parse_config_json(const json& j, const std::string& source) {
  const std::string& src = source;
  if (!j.is_object()) throw Error(src + ": config is not a JSON object");
  if (!j.contains("model_type") || !j["model_type"].is_string())
    throw Error(src + ": missing string field 'model_type' (supported: llama, mistral, qwen2, qwen3)");
  ModelConfig c;
  c.model_type = j["model_type"].get<std::string>();
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2" && c.model_type != "qwen3")
    throw Error(src + ": model_type '" + c.model_type + "' is not supported (supported: llama, mistral, qwen2, qwen3)");

  c.vocab_size = req_positive(j, "vocab_size", src);
  c.hidden_size = req_positive(j, "hidden_size", src);
  c.intermediate_size = req_positive(j, "intermediate_size", src);
  c.num_hidden_layers = req_positive(j, "num_hidden_layers", src);
  c.num_attention_heads = req_positive(j, "num_attention_heads", src);
  c.num_key_value_heads = opt_int(j, "num_key_value_heads", src).value_or(c.num_attention_heads);
  if (c.num_key_value_heads <= 0 || c.num_attention_heads % c.num_key_value_heads != 0)
    throw Error(src + ": num_key_value_heads " + std::to_string(c.num_key_value_heads) +
                " must be positive and divide num_attention_heads " + std::to_string(c.num_attention_heads));
  if (auto hd = opt_int(j, "head_dim", src)) {
    c.head_dim = *hd;
    if (c.head_dim <= 0) throw Error(src + ": field 'head_dim' must be positive, got " + std::to_string(c.head_dim));
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      throw Error(src + ": hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of num_attention_heads " +
                  std::to_string(c.num_attention_heads) + " and head_dim is not given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) throw Error(src + ": head_dim " + std::to_string(c.head_dim) + " must be even for RoPE");
  // transformers' defaults when the field is absent.
  const int64_t default_max_pos = c.model_type == "llama" ? 2048 : c.model_type == "mistral" ? 4096 * 32 : 32768;
  c.max_position_embeddings = opt_int(j, "max_position_embeddings", src).value_or(default_max_pos);

  // Newer transformers moved rope_theta and rope_scaling into "rope_parameters"; accept both spellings.
  const json* rope_params = nullptr;
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) {
    rope_params = &j["rope_parameters"];
    if (!rope_params->is_object()) throw Error(src + ": field 'rope_parameters' must be an object");
  }
  if (auto t = opt_num(j, "rope_theta", src)) c.rope_theta = *t;
  else if (rope_params) c.rope_theta = opt_num(*rope_params, "rope_theta", src + ": rope_parameters").value_or(10000.0);
  if (c.rope_theta <= 0) throw Error(src + ": rope_theta must be positive");
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    c.rope_scaling = parse_rope_scaling(j["rope_scaling"], src, "rope_scaling");
  else if (rope_params)
    c.rope_scaling = parse_rope_scaling(*rope_params, src, "rope_parameters");

  c.rms_norm_eps = opt_num(j, "rms_norm_eps", src).value_or(1e-6);
  // Absent means false: the transformers default for all four config classes.
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", src).value_or(false);
  // Qwen2 always has q/k/v biases (no config field); llama and qwen3 read attention_bias; mistral has none.
  c.attention_bias = c.model_type == "qwen2" || opt_bool(j, "attention_bias", src).value_or(false);
  c.qk_norm = c.model_type == "qwen3";

  if (j.contains("hidden_act") && !j["hidden_act"].is_null()) {
    if (!j["hidden_act"].is_string() || j["hidden_act"].get<std::string>() != "silu")
      throw Error(src + ": hidden_act " + j["hidden_act"].dump() + " is not supported (only \"silu\")");
  }

  if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    const auto& e = j["eos_token_id"];
    if (e.is_number_integer()) {
      c.eos_token_ids = {e.get<int64_t>()};
    } else if (e.is_array()) {
      for (const auto& x : e) {
        if (!x.is_number_integer()) throw Error(src + ": eos_token_id list holds a non-integer: " + x.dump());
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else {
      throw Error(src + ": field 'eos_token_id' must be an integer or a list of integers, got " + e.dump());
    }
  }
  c.bos_token_id = opt_int(j, "bos_token_id", src).value_or(-1);
  // Sliding-window attention (mistral v0.1; qwen2/3 only with use_sliding_window) is not implemented: remember the
  // window so the runtime can refuse sequences longer than it instead of silently attending further.
  const bool sliding = c.model_type == "mistral" || opt_bool(j, "use_sliding_window", src).value_or(false);
  if (sliding) c.sliding_window = opt_int(j, "sliding_window", src).value_or(0);
  c.name = source;
  return c;
}

ModelConfig load_config_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot read config");
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(path.string() + ": not valid JSON: " + e.what());
  }
  ModelConfig c = parse_config_json(j, path.string());
  const auto folder = path.parent_path().filename();
  c.name = folder.empty() ? path.string() : folder.string();
  return c;
}

}  // namespace kvf
