// Configs with kvpress's keys, the kvpress press-name table, run directories, atomic files, the JSONL store.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/error.hpp"
#include "experiments/eval/eval.hpp"

namespace kvf::eval {
namespace fs = std::filesystem;
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// A YAML scalar -> JSON value: null/~, true/false, numbers, quoted or bare strings.
nlohmann::json yaml_scalar(std::string v) {
  v = trim(v);
  if (v.empty() || v == "null" || v == "~" || v == "None") return nullptr;
  if (v == "true" || v == "True") return true;
  if (v == "false" || v == "False") return false;
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) return v.substr(1, v.size() - 2);
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(v.c_str(), &end, 10);
  if (errno == 0 && end && *end == '\0') return static_cast<int64_t>(i);
  const double d = std::strtod(v.c_str(), &end);
  if (end && *end == '\0') return d;
  return v;
}

std::string sys_err(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

void fsync_dir(const std::string& path) {
  const fs::path dir = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

template <class T>
T get_as(const nlohmann::json& v, const std::string& key, const char* type) {
  try {
    return v.get<T>();
  } catch (const std::exception&) {
    throw Error("config key '" + key + "' must be " + type + " (got " + v.dump() + ")");
  }
}

}  // namespace

const std::vector<std::string>& config_keys() {
  static const std::vector<std::string> k = {
      "dataset", "data_dir", "model", "device", "press_name", "compression_ratio", "key_channel_compression_ratio",
      "fraction", "max_new_tokens", "max_context_length", "query_aware", "needle_depth", "output_dir", "seed",
      "log_level", "model_kwargs", "num_samples", "tasks", "dtype", "threads", "cache_mode", "backend", "press_spec",
      "press_init_command", "head_compression_ratio", "threshold"};
  return k;
}

nlohmann::json read_config_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read config file '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  const std::string t = trim(text);
  if (!t.empty() && t.front() == '{') {
    try {
      return nlohmann::json::parse(t);
    } catch (const std::exception& e) {
      throw Error("config file '" + path + "' is not valid JSON: " + e.what());
    }
  }
  nlohmann::json j = nlohmann::json::object();
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (auto h = line.find(" #"); h != std::string::npos) line = line.substr(0, h);
    if (trim(line).empty() || trim(line)[0] == '#') continue;
    if (line[0] == ' ' || line[0] == '\t') {
      // nested mappings (model_kwargs: ...) are accepted and ignored
      continue;
    }
    const auto c = line.find(':');
    if (c == std::string::npos)
      throw Error("config file '" + path + "' line " + std::to_string(lineno) + ": expected 'key: value', got '" +
                  trim(line) + "'");
    const std::string key = trim(line.substr(0, c));
    const std::string val = trim(line.substr(c + 1));
    if (!val.empty() && val.front() == '[') {
      if (val.back() != ']')
        throw Error("config file '" + path + "' line " + std::to_string(lineno) + ": unterminated list");
      nlohmann::json arr = nlohmann::json::array();
      std::istringstream items(val.substr(1, val.size() - 2));
      std::string it;
      while (std::getline(items, it, ','))
        if (!trim(it).empty()) arr.push_back(yaml_scalar(it));
      j[key] = arr;
    } else {
      j[key] = yaml_scalar(val);
    }
  }
  return j;
}

nlohmann::json parse_flag_value(const std::string& key, const std::string& text) {
  std::string t = trim(text);
  const bool list_key = key == "tasks" || key == "needle_depth";
  if (!t.empty() && t.front() == '[' && t.back() == ']') t = t.substr(1, t.size() - 2);
  else if (!list_key) return yaml_scalar(t);
  nlohmann::json arr = nlohmann::json::array();
  std::istringstream items(t);
  std::string it;
  while (std::getline(items, it, ','))
    if (!trim(it).empty()) arr.push_back(yaml_scalar(it));
  return arr;
}

void apply_config(EvalConfig& c, const nlohmann::json& j) {
  if (!j.is_object()) throw Error("a config must be a mapping of keys to values");
  const auto& keys = config_keys();
  for (const auto& [k, v] : j.items()) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) {
      std::string all;
      for (auto& x : keys) all += (all.empty() ? "" : ", ") + x;
      throw Error("unknown config key '" + k + "'. Known keys: " + all);
    }
    auto str = [&] { return v.is_null() ? std::string() : v.is_string() ? v.get<std::string>() : v.dump(); };
    if (k == "dataset") c.dataset = str();
    else if (k == "data_dir") c.data_dir = str();
    else if (k == "model") c.model = str();
    else if (k == "device") c.device = str();
    else if (k == "press_name") c.press_name = str();
    else if (k == "compression_ratio") c.compression_ratio = v.is_null() ? 0.0 : get_as<double>(v, k, "a number");
    else if (k == "key_channel_compression_ratio") {
      if (v.is_null()) c.key_channel_compression_ratio.reset();
      else c.key_channel_compression_ratio = get_as<double>(v, k, "a number");
    } else if (k == "fraction") c.fraction = get_as<double>(v, k, "a number");
    else if (k == "max_new_tokens") {
      if (v.is_null()) c.max_new_tokens.reset();
      else c.max_new_tokens = get_as<int64_t>(v, k, "an integer");
    } else if (k == "max_context_length") {
      if (v.is_null()) c.max_context_length.reset();
      else c.max_context_length = get_as<int64_t>(v, k, "an integer");
    } else if (k == "query_aware") c.query_aware = !v.is_null() && get_as<bool>(v, k, "true or false");
    else if (k == "needle_depth") {
      c.needle_depth.clear();
      if (v.is_array()) for (auto& x : v) c.needle_depth.push_back(get_as<int64_t>(x, k, "an integer or a list of integers"));
      else if (!v.is_null()) c.needle_depth.push_back(get_as<int64_t>(v, k, "an integer or a list of integers"));
    } else if (k == "output_dir") c.output_dir = str();
    else if (k == "seed") c.seed = get_as<int64_t>(v, k, "an integer");
    else if (k == "num_samples") c.num_samples = get_as<int64_t>(v, k, "an integer");
    else if (k == "tasks") {
      c.tasks.clear();
      if (v.is_array()) for (auto& x : v) c.tasks.push_back(get_as<std::string>(x, k, "a list of task names"));
      else if (v.is_string()) {
        std::istringstream in(v.get<std::string>());
        std::string t;
        while (std::getline(in, t, ',')) if (!trim(t).empty()) c.tasks.push_back(trim(t));
      } else if (!v.is_null()) throw Error("config key 'tasks' must be a list of task names");
    } else if (k == "dtype") c.dtype = str();
    else if (k == "threads") c.threads = get_as<int64_t>(v, k, "an integer");
    else if (k == "cache_mode") c.cache_mode = str();
    else if (k == "backend") c.backend = str();
    else if (k == "press_spec") c.press_spec = str();
    else if (k == "head_compression_ratio" || k == "threshold") {
      if (!v.is_null()) throw Error("config key '" + k + "' is not supported: kvforge has no DuoAttention/DMS press");
    }
    // log_level, model_kwargs, press_init_command: accepted, not used.
  }
}

nlohmann::json config_to_json(const EvalConfig& c) {
  nlohmann::json j;
  j["dataset"] = c.dataset;
  j["data_dir"] = c.data_dir.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.data_dir);
  j["model"] = c.model;
  j["device"] = c.device.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.device);
  j["press_name"] = c.press_name;
  j["compression_ratio"] = c.compression_ratio;
  j["key_channel_compression_ratio"] =
      c.key_channel_compression_ratio ? nlohmann::json(*c.key_channel_compression_ratio) : nlohmann::json(nullptr);
  j["fraction"] = c.fraction;
  j["max_new_tokens"] = c.max_new_tokens ? nlohmann::json(*c.max_new_tokens) : nlohmann::json(nullptr);
  j["max_context_length"] = c.max_context_length ? nlohmann::json(*c.max_context_length) : nlohmann::json(nullptr);
  j["query_aware"] = c.query_aware;
  j["needle_depth"] = c.needle_depth;
  j["output_dir"] = c.output_dir;
  j["seed"] = c.seed;
  j["num_samples"] = c.num_samples;
  j["tasks"] = c.tasks;
  j["dtype"] = c.dtype;
  j["threads"] = c.threads;
  j["cache_mode"] = c.cache_mode;
  j["backend"] = c.backend;
  j["press_spec"] = c.press_spec;
  return j;
}

const std::vector<std::pair<std::string, std::string>>& press_name_table() {
  // kvpress's PRESS_REGISTRY entries (evaluation/evaluate_registry.py) that kvforge has registered.
  // {kccr} is replaced by key_channel_compression_ratio.
  static const std::vector<std::pair<std::string, std::string>> t = {
      {"no_press", ""},
      {"knorm", "knorm"},
      {"random", "random"},
      {"streaming_llm", "streaming_llm"},
      {"snapkv", "snapkv"},
      {"tova", "tova"},
      {"observed_attention", "observed_attention"},
      {"expected_attention", "adakv(expected_attention(epsilon=0.01))"},
      {"adakv_expected_attention", "adakv(expected_attention(epsilon=0.01))"},
      {"adakv_snapkv", "adakv(snapkv)"},
      {"keydiff", "keydiff"},
      {"lagkv", "lagkv"},
      {"pyramidkv", "pyramidkv"},
      {"chunkkv", "chunkkv(snapkv, chunk_length=20)"},
      {"block_keydiff", "block(keydiff, block_size=128)"},
      {"snap_think", "think(snapkv, key_channel_compression_ratio={kccr})"},
  };
  return t;
}

PressChoice resolve_press(const std::string& name, double cr, std::optional<double> kccr) {
  for (const auto& [n, spec] : press_name_table()) {
    if (n != name) continue;
    PressChoice pc;
    pc.spec = spec;
    pc.compression_ratio = spec.empty() ? 0.0 : cr;
    if (const auto p = pc.spec.find("{kccr}"); p != std::string::npos) {
      if (!kccr)
        throw Error("press '" + name + "' needs key_channel_compression_ratio (kvpress's ThinK requirement)");
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", *kccr);
      pc.spec.replace(p, 6, buf);
    }
    return pc;
  }
  std::string all;
  for (const auto& [n, spec] : press_name_table()) all += (all.empty() ? "" : ", ") + n;
  if (name == "think")
    throw Error("press_name 'think' (ThinK alone) is not supported: kvforge registers ThinK only composed with a token "
                "press (snap_think), and at compression_ratio 0 the executor skips post-ops. Supported: " + all);
  throw Error("unknown press_name '" + name + "'. kvpress names kvforge supports: " + all +
              " (or set press_spec to any kvforge spec, see `kvforge presses`)");
}

void finalize_config(EvalConfig& c) {
  if (c.dataset != "ruler" && c.dataset != "needle_in_haystack") {
    std::string all;
    for (auto& t : ruler_tasks()) all += (all.empty() ? "" : ", ") + t;
    throw Error("unknown dataset '" + c.dataset + "'. Offline datasets: ruler (data_dir = context length in tokens; "
                "tasks: " + all + "), needle_in_haystack (max_context_length, needle_depth)");
  }
  if (c.dataset == "ruler") {
    if (c.data_dir.empty()) c.data_dir = "1024";
    char* end = nullptr;
    const long long n = std::strtoll(c.data_dir.c_str(), &end, 10);
    if (!end || *end != '\0' || n <= 0)
      throw Error("data_dir for ruler is the context length in tokens (e.g. 1024), got '" + c.data_dir + "'");
  } else if (!c.max_context_length) {
    throw Error("needle_in_haystack needs max_context_length (the haystack length in tokens), as in kvpress");
  }
  if (!(c.fraction > 0.0 && c.fraction <= 1.0)) throw Error("fraction must be in (0, 1]");
  if (c.key_channel_compression_ratio &&
      !(*c.key_channel_compression_ratio >= 0.0 && *c.key_channel_compression_ratio <= 1.0))
    throw Error("key_channel_compression_ratio must be in [0, 1]");
  if (c.num_samples <= 0) throw Error("num_samples must be positive");
  if (c.cache_mode != "compact" && c.cache_mode != "masked") throw Error("cache_mode must be compact or masked");
  if (c.backend != "fused" && c.backend != "reference") throw Error("backend must be fused or reference");
  if (c.press_name == "no_press") c.compression_ratio = 0.0;
  if (c.press_spec.empty() || c.press_name != "custom") {
    if (c.press_name == "custom") throw Error("press_name 'custom' needs press_spec");
    if (!c.press_spec.empty() && c.press_name != "custom")
      throw Error("set press_name to 'custom' when giving press_spec");
    const auto pc = resolve_press(c.press_name, c.compression_ratio, c.key_channel_compression_ratio);
    c.press_spec = pc.spec;
    c.compression_ratio = pc.compression_ratio;
  }
  if (!c.press_spec.empty() && !(c.compression_ratio >= 0.0 && c.compression_ratio < 1.0))
    throw Error("compression_ratio must be in [0, 1) (kvpress's default 1.0 would remove the whole cache), got " +
                std::to_string(c.compression_ratio));
}

std::string run_name(const EvalConfig& c) {
  std::string model = c.model;
  std::replace(model.begin(), model.end(), '/', '-');
  std::string model2;
  for (size_t i = 0; i < model.size(); ++i) model2 += model[i];
  char buf[64];
  std::vector<std::string> parts = {c.dataset, c.data_dir, fs::path(c.model).filename().string(), c.press_name};
  std::snprintf(buf, sizeof buf, "%.2f", c.compression_ratio);
  parts.push_back(buf);
  if (c.fraction < 1.0) {
    std::snprintf(buf, sizeof buf, "fraction%.3f", c.fraction);
    parts.push_back(buf);
  }
  if (c.max_context_length) parts.push_back("max_context" + std::to_string(*c.max_context_length));
  if (c.query_aware) parts.push_back("query_aware");
  if (c.key_channel_compression_ratio) {
    std::snprintf(buf, sizeof buf, "key_channel_cr%.2f", *c.key_channel_compression_ratio);
    parts.push_back(buf);
  }
  std::string name;
  for (const auto& p : parts)
    if (!p.empty()) name += (name.empty() ? "" : "__") + p;
  return name;
}

void write_file_atomic(const std::string& path, const std::string& data) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(sys_err("cannot create", tmp));
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      throw Error(sys_err("cannot write", tmp));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) throw Error(sys_err("cannot sync", tmp));
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw Error(sys_err("cannot rename onto", path));
  fsync_dir(path);
}

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char ch : s) o += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return o + "\"";
}

// ------------------------------------------------------------------------------------------------- store

ResultStore::ResultStore(std::string path) : path_(std::move(path)) {
  if (const auto dir = fs::path(path_).parent_path(); !dir.empty()) fs::create_directories(dir);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(sys_err("cannot open results file", path_));
  std::string data;
  {
    std::ifstream f(path_, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    data = ss.str();
  }
  size_t pos = 0, good_end = 0;
  int lineno = 0;
  while (pos < data.size()) {
    const size_t nl = data.find('\n', pos);
    ++lineno;
    const bool last = nl == std::string::npos || nl + 1 >= data.size();
    const std::string line = data.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    nlohmann::json j;
    bool ok = nl != std::string::npos;  // a line without its newline was torn
    if (ok) {
      try {
        j = nlohmann::json::parse(line);
        ok = j.is_object() && j.contains("key") && j["key"].is_string();
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok) {
      if (line.empty() && nl != std::string::npos) {  // blank line
        pos = nl + 1;
        good_end = pos;
        continue;
      }
      if (!last)
        throw Error("results file '" + path_ + "' line " + std::to_string(lineno) +
                    " is not a result row (only a torn LAST line is repaired)");
      break;
    }
    keys_[j["key"].get<std::string>()] += 1;
    pos = nl + 1;
    good_end = pos;
  }
  if (good_end < data.size()) {
    repaired_ = data.size() - good_end;
    if (::ftruncate(fd_, static_cast<off_t>(good_end)) != 0) throw Error(sys_err("cannot repair", path_));
    ::fsync(fd_);
  }
  if (::lseek(fd_, 0, SEEK_END) < 0) throw Error(sys_err("cannot seek", path_));
}

ResultStore::~ResultStore() {
  if (fd_ >= 0) ::close(fd_);
}

void ResultStore::append(const nlohmann::json& row) {
  const std::string key = row.at("key").get<std::string>();
  const std::string line = row.dump() + "\n";
  size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(sys_err("cannot append to", path_));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd_) != 0) throw Error(sys_err("cannot sync", path_));
  keys_[key] += 1;
}

std::vector<nlohmann::json> read_results(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read results file '" + path + "'");
  std::vector<nlohmann::json> rows;
  std::string line;
  int lineno = 0;
  std::vector<std::string> lines;
  while (std::getline(f, line)) lines.push_back(line);
  const bool ends_nl = [&] {
    std::ifstream g(path, std::ios::binary | std::ios::ate);
    const auto sz = static_cast<long long>(g.tellg());
    if (sz <= 0) return true;
    g.seekg(sz - 1);
    return g.get() == '\n';
  }();
  for (size_t i = 0; i < lines.size(); ++i) {
    ++lineno;
    if (trim(lines[i]).empty()) continue;
    const bool last = i + 1 == lines.size();
    try {
      if (last && !ends_nl) throw std::runtime_error("torn");
      auto j = nlohmann::json::parse(lines[i]);
      if (!j.is_object() || !j.contains("key")) throw std::runtime_error("no key");
      rows.push_back(std::move(j));
    } catch (const std::exception&) {
      if (last) break;  // a torn last line
      throw Error("results file '" + path + "' line " + std::to_string(lineno) + " is not a result row");
    }
  }
  return rows;
}

size_t merge_results(const std::vector<std::string>& inputs, const std::string& out, std::vector<std::string>* conflicts) {
  std::map<std::string, nlohmann::json> by_key;
  for (const auto& in : inputs)
    for (auto& r : read_results(in)) {
      const std::string k = r["key"].get<std::string>();
      auto [it, fresh] = by_key.emplace(k, r);
      if (!fresh && conflicts) {
        auto a = it->second, b = r;
        // timings differ between runs; a conflict is a different score or prediction
        if (a.value("score", nlohmann::json()) != b.value("score", nlohmann::json()) ||
            a.value("predictions", nlohmann::json()) != b.value("predictions", nlohmann::json()))
          conflicts->push_back(k);
      }
    }
  std::string data;
  for (const auto& [k, r] : by_key) data += r.dump() + "\n";
  if (const auto dir = fs::path(out).parent_path(); !dir.empty()) fs::create_directories(dir);
  write_file_atomic(out, data);
  return by_key.size();
}

namespace {
int64_t status_kb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, n, field) == 0) return std::strtoll(line.c_str() + n, nullptr, 10);
  return 0;
}
}  // namespace

int64_t rss_bytes() { return status_kb("VmRSS:") * 1024; }
int64_t peak_rss_bytes() { return status_kb("VmHWM:") * 1024; }

}  // namespace kvf::eval
