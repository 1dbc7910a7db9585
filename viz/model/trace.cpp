#include "viz/model/trace.hpp"

#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/safetensors.hpp"

namespace kvviz {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw TraceError("cannot open trace '" + path + "': " + what);
}

int64_t get_count(const json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || !j[key].is_number_integer()) fail(path, std::string("metadata field '") + key + "' is missing or not an integer");
  const int64_t v = j[key].get<int64_t>();
  if (v <= 0 || v > (int64_t{1} << 31)) fail(path, std::string("metadata field '") + key + "' = " + std::to_string(v) + " is out of range");
  return v;
}

std::string get_string(const json& j, const char* key, const std::string& path, bool required = true) {
  if (!j.contains(key)) {
    if (required) fail(path, std::string("metadata field '") + key + "' is missing");
    return {};
  }
  if (!j[key].is_string()) fail(path, std::string("metadata field '") + key + "' is not a string");
  return j[key].get<std::string>();
}

std::vector<std::string> get_strings(const json& j, const char* key, const std::string& path) {
  std::vector<std::string> out;
  if (!j.contains(key)) return out;
  if (!j[key].is_array()) fail(path, std::string("metadata field '") + key + "' is not a list");
  for (const auto& e : j[key]) {
    if (!e.is_string()) fail(path, std::string("metadata field '") + key + "' holds a non-string");
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + ")";
}

const kvf::TensorView& tensor(const kvf::SafetensorsFile& f, const char* name, kvf::DType dtype,
                              const std::vector<int64_t>& shape, const std::string& path) {
  const auto* v = f.find(name);
  if (!v) fail(path, std::string("tensor '") + name + "' is missing");
  if (v->dtype != dtype)
    fail(path, std::string("tensor '") + name + "' has dtype " + std::string(kvf::dtype_name(v->dtype)) + ", expected " +
                   std::string(kvf::dtype_name(dtype)));
  if (v->shape != shape)
    fail(path, std::string("tensor '") + name + "' has shape " + shape_text(v->shape) + " but the metadata says " +
                   shape_text(shape));
  return *v;
}

}  // namespace

std::string Trace::label() const {
  char r[32];
  std::snprintf(r, sizeof r, "%g", compression_ratio);
  return press + " @ " + r;
}

Trace load_trace(const std::filesystem::path& p) {
  const std::string path = p.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(p, ec)) fail(path, std::filesystem::exists(p, ec) ? "not a regular file" : "no such file");
  std::unique_ptr<kvf::SafetensorsFile> file;
  try {
    file = std::make_unique<kvf::SafetensorsFile>(p);
  } catch (const kvf::Error& e) {
    throw TraceError("cannot open trace '" + path + "': not a valid safetensors file (truncated or corrupted?): " + e.what());
  } catch (const std::exception& e) {
    throw TraceError("cannot open trace '" + path + "': " + e.what());
  }
  const auto& md = file->metadata();
  auto vit = md.find("kvforge_trace");
  if (vit == md.end()) fail(path, "not a kvforge trace (no 'kvforge_trace' entry in the metadata)");
  int version = 0;
  try {
    size_t used = 0;
    version = std::stoi(vit->second, &used);
    if (used != vit->second.size()) version = -1;
  } catch (...) {
    version = -1;
  }
  if (version != kTraceVersion)
    fail(path, "trace format version '" + vit->second + "' is not supported (this kvviz reads version " +
                   std::to_string(kTraceVersion) + ")");
  auto mit = md.find("trace");
  if (mit == md.end()) fail(path, "the 'trace' metadata entry is missing");
  json j;
  try {
    j = json::parse(mit->second);
  } catch (const std::exception& e) {
    fail(path, std::string("the 'trace' metadata is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) fail(path, "the 'trace' metadata is not a JSON object");
  if (!j.contains("version") || !j["version"].is_number_integer() || j["version"].get<int64_t>() != version)
    fail(path, "the metadata 'version' disagrees with 'kvforge_trace'");

  Trace t;
  t.path = path;
  t.version = version;
  t.metadata_json = mit->second;
  t.layers = get_count(j, "layers", path);
  t.heads = get_count(j, "kv_heads", path);
  t.seq = get_count(j, "seq", path);
  if (t.layers * t.heads > std::numeric_limits<int32_t>::max() / t.seq) fail(path, "layers x heads x seq is too large");
  t.press = get_string(j, "press", path);
  t.backend = get_string(j, "backend", path, false);
  t.context_file = get_string(j, "context_file", path, false);
  t.created_utc = get_string(j, "created_utc", path, false);
  if (!j.contains("compression_ratio") || !j["compression_ratio"].is_number())
    fail(path, "metadata field 'compression_ratio' is missing or not a number");
  t.compression_ratio = j["compression_ratio"].get<double>();
  if (!(t.compression_ratio >= 0 && t.compression_ratio < 1))
    fail(path, "compression_ratio " + std::to_string(t.compression_ratio) + " is outside [0, 1)");
  if (j.contains("scores_available")) {
    if (!j["scores_available"].is_boolean()) fail(path, "metadata field 'scores_available' is not a boolean");
    t.scores_available = j["scores_available"].get<bool>();
  }
  if (j.contains("model") && j["model"].is_object()) {
    t.model_name = get_string(j["model"], "name", path, false);
    t.model_path = get_string(j["model"], "path", path, false);
  }
  t.tokens = get_strings(j, "tokens", path);
  if (static_cast<int64_t>(t.tokens.size()) != t.seq)
    fail(path, "the metadata lists " + std::to_string(t.tokens.size()) + " token pieces but seq = " + std::to_string(t.seq));
  t.questions = get_strings(j, "questions", path);
  t.answers = get_strings(j, "answers", path);

  const std::vector<int64_t> lhs{t.layers, t.heads, t.seq};
  const auto& sc = tensor(*file, "scores", kvf::DType::F32, lhs, path);
  const auto& kp = tensor(*file, "kept", kvf::DType::U8, lhs, path);
  const auto& ids = tensor(*file, "token_ids", kvf::DType::I32, {t.seq}, path);
  const size_t n = static_cast<size_t>(t.layers * t.heads * t.seq);
  t.scores.resize(n);
  std::memcpy(t.scores.data(), sc.data, n * sizeof(float));
  t.kept.assign(kp.data, kp.data + n);
  t.token_ids.resize(static_cast<size_t>(t.seq));
  std::memcpy(t.token_ids.data(), ids.data, static_cast<size_t>(t.seq) * sizeof(int32_t));
  for (size_t i = 0; i < n; ++i)
    if (t.kept[i] > 1) fail(path, "tensor 'kept' holds the value " + std::to_string(t.kept[i]) + " (expected 0 or 1)");
  for (size_t i = 0; i < n; ++i)
    if (std::isnan(t.scores[i])) fail(path, "tensor 'scores' holds NaN");
  return t;
}

void save_trace(const std::filesystem::path& path, const Trace& t) {
  const size_t n = static_cast<size_t>(t.layers * t.heads * t.seq);
  if (t.layers <= 0 || t.heads <= 0 || t.seq <= 0) throw TraceError("save_trace: empty trace");
  if (t.scores.size() != n || t.kept.size() != n || t.token_ids.size() != size_t(t.seq) || t.tokens.size() != size_t(t.seq))
    throw TraceError("save_trace: tensor sizes disagree with layers x heads x seq");
  json j = json::object();
  if (!t.metadata_json.empty()) {
    try {
      j = json::parse(t.metadata_json);
    } catch (...) {
      j = json::object();
    }
  }
  j["format"] = "kvforge-trace";
  j["version"] = kTraceVersion;
  j["layers"] = t.layers;
  j["kv_heads"] = t.heads;
  j["seq"] = t.seq;
  j["press"] = t.press;
  j["compression_ratio"] = t.compression_ratio;
  j["backend"] = t.backend;
  j["scores_available"] = t.scores_available;
  if (!j.contains("model") || !j["model"].is_object()) j["model"] = json::object();
  j["model"]["name"] = t.model_name;
  j["model"]["path"] = t.model_path;
  j["context_file"] = t.context_file;
  j["questions"] = t.questions;
  j["answers"] = t.answers;
  j["tokens"] = t.tokens;
  j["created_utc"] = t.created_utc;
  const std::string meta = j.dump(-1, ' ', false, json::error_handler_t::replace);
  try {
    kvf::write_safetensors(path,
                           {{"scores", kvf::DType::F32, {t.layers, t.heads, t.seq}, t.scores.data()},
                            {"kept", kvf::DType::U8, {t.layers, t.heads, t.seq}, t.kept.data()},
                            {"token_ids", kvf::DType::I32, {t.seq}, t.token_ids.data()}},
                           {{"kvforge_trace", std::to_string(kTraceVersion)}, {"trace", meta}});
  } catch (const kvf::Error& e) {
    throw TraceError(std::string("cannot write trace: ") + e.what());
  }
}

}  // namespace kvviz
