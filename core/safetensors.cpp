#include "core/safetensors.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace kvf {

namespace {

constexpr uint64_t kMaxHeader = 100'000'000;  // same limit as the reference (Rust) implementation

struct DTypeInfo {
  DType t;
  std::string_view name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

const DTypeInfo& info(DType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return d;
  throw Error("invalid DType value " + std::to_string(static_cast<int>(t)));
}

uint64_t read_u64le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// numel * elem_size with overflow detection; nullopt on overflow. Dims must be >= 0.
bool checked_nbytes(const std::vector<int64_t>& shape, size_t elem, uint64_t& out) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    const auto ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<uint64_t>::max() / ud) return false;
    n *= ud;
  }
  if (n > std::numeric_limits<uint64_t>::max() / elem) return false;
  out = n * elem;
  return true;
}

// nlohmann's parser recurses per nesting level: refuse deep nesting before parsing so a hostile header
// ("[[[[...") cannot overflow the stack.
void check_json_depth(const char* b, const char* e, const std::string& what) {
  constexpr int kMaxDepth = 64;
  int depth = 0;
  bool in_str = false, esc = false;
  for (const char* p = b; p != e; ++p) {
    const char c = *p;
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) throw Error(what + ": JSON nested deeper than " + std::to_string(kMaxDepth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

}  // namespace

size_t dtype_size(DType t) { return info(t).size; }
std::string_view dtype_name(DType t) { return info(t).name; }

DType parse_dtype(std::string_view name, const std::string& context) {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.t;
  throw Error(context + ": unknown dtype '" + std::string(name) +
              "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : file_(path) {
  const std::string fname = path.string();
  const size_t size = file_.size();
  if (size < 8)
    throw Error(fname + ": not a safetensors file (" + std::to_string(size) + " bytes, shorter than the 8-byte header length)");
  const uint64_t hlen = read_u64le(file_.data());
  if (hlen > kMaxHeader)
    throw Error(fname + ": safetensors header length " + std::to_string(hlen) + " exceeds the 100 MB limit");
  if (hlen > size - 8)
    throw Error(fname + ": safetensors header length " + std::to_string(hlen) + " is past the end of the file (" +
                std::to_string(size) + " bytes)");
  const auto* hbegin = reinterpret_cast<const char*>(file_.data() + 8);
  check_json_depth(hbegin, hbegin + hlen, fname + ": safetensors header");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hbegin, hbegin + hlen);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fname + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw Error(fname + ": safetensors header is not a JSON object");

  const uint8_t* region = file_.data() + 8 + hlen;
  const uint64_t region_size = size - 8 - hlen;
  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    const std::string ctx = fname + ": tensor '" + name + "'";
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(fname + ": __metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) throw Error(fname + ": __metadata__ value for '" + k + "' is not a string: " + v.dump());
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object()) throw Error(ctx + ": entry is not an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(field)) throw Error(ctx + ": missing '" + field + "'");
    const auto& jd = entry["dtype"];
    if (!jd.is_string()) throw Error(ctx + ": dtype is not a string: " + jd.dump());
    TensorView v;
    v.name = name;
    v.dtype = parse_dtype(jd.get<std::string>(), ctx);
    const auto& js = entry["shape"];
    if (!js.is_array()) throw Error(ctx + ": shape is not an array: " + js.dump());
    for (const auto& d : js) {
      if (!d.is_number_integer()) throw Error(ctx + ": shape entry is not an integer: " + d.dump());
      if (d.is_number_unsigned() && d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        throw Error(ctx + ": dimension " + d.dump() + " is too large");
      const int64_t dim = d.get<int64_t>();
      if (dim < 0) throw Error(ctx + ": negative dimension " + std::to_string(dim));
      v.shape.push_back(dim);
    }
    uint64_t expected = 0;
    if (!checked_nbytes(v.shape, dtype_size(v.dtype), expected))
      throw Error(ctx + ": shape " + shape_str(v.shape) + " overflows the byte size");
    const auto& jo = entry["data_offsets"];
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      throw Error(ctx + ": data_offsets must be [begin, end] with non-negative integers, got " + jo.dump());
    const auto b = jo[0].get<uint64_t>(), e = jo[1].get<uint64_t>();
    if (b > e) throw Error(ctx + ": data_offsets begin " + std::to_string(b) + " > end " + std::to_string(e));
    if (e > region_size)
      throw Error(ctx + ": data_offsets end " + std::to_string(e) + " is past the data region (" +
                  std::to_string(region_size) + " bytes)");
    if (e - b != expected)
      throw Error(ctx + ": data_offsets span " + std::to_string(e - b) + " bytes but shape " + shape_str(v.shape) +
                  " of " + std::string(dtype_name(v.dtype)) + " needs " + std::to_string(expected));
    v.data = region + b;
    v.nbytes = static_cast<size_t>(expected);
    spans.push_back({b, e, tensors_.size()});
    tensors_.push_back(std::move(v));
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].begin < spans[i - 1].end)
      throw Error(fname + ": tensors '" + tensors_[spans[i - 1].index].name + "' and '" + tensors_[spans[i].index].name +
                  "' overlap");
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

const TensorView& SafetensorsFile::at(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  throw Error(path().string() + ": no tensor '" + std::string(name) + "'");
}

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::filesystem::path& dir) : dir_(dir) {
  namespace fs = std::filesystem;
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path single = dir / "model.safetensors";
  auto add_file = [&](const fs::path& p) -> SafetensorsFile& {
    files_.push_back(std::make_unique<SafetensorsFile>(p));
    return *files_.back();
  };
  if (fs::is_regular_file(dir)) {  // a lone .safetensors file is accepted too
    for (const auto& t : add_file(dir).tensors()) index_[t.name] = &t;
    return;
  }
  if (fs::exists(index)) {
    nlohmann::json j;
    {
      std::ifstream in(index, std::ios::binary);
      if (!in) throw Error(index.string() + ": cannot read");
      const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      check_json_depth(text.data(), text.data() + text.size(), index.string());
      try {
        j = nlohmann::json::parse(text);
      } catch (const nlohmann::json::exception& e) {
        throw Error(index.string() + ": not valid JSON: " + e.what());
      }
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error(index.string() + ": missing object 'weight_map'");
    std::map<std::string, SafetensorsFile*> shards;
    for (const auto& [name, shard_j] : j["weight_map"].items()) {
      if (!shard_j.is_string()) throw Error(index.string() + ": weight_map entry for '" + name + "' is not a string");
      const auto shard = shard_j.get<std::string>();
      const fs::path rel(shard);
      // Shards are plain file names next to the index; refuse paths that leave the folder.
      if (shard.empty() || rel.is_absolute() || rel.filename() != rel)
        throw Error(index.string() + ": weight_map shard '" + shard + "' for '" + name + "' is not a file name");
      auto it = shards.find(shard);
      if (it == shards.end()) it = shards.emplace(shard, &add_file(dir / rel)).first;
      const TensorView* tv = it->second->find(name);
      if (!tv) throw Error(index.string() + ": tensor '" + name + "' is listed in shard '" + shard + "' but not in it");
      index_[name] = tv;
    }
    return;
  }
  if (fs::exists(single)) {
    for (const auto& t : add_file(single).tensors()) index_[t.name] = &t;
    return;
  }
  throw Error(dir.string() + ": no model.safetensors or model.safetensors.index.json");
}

const TensorView* SafetensorsCheckpoint::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

const TensorView& SafetensorsCheckpoint::at(std::string_view name) const {
  if (const auto* t = find(name)) return *t;
  throw Error(dir_.string() + ": checkpoint has no tensor '" + std::string(name) + "'");
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> r;
  r.reserve(index_.size());
  for (const auto& [k, v] : index_) r.push_back(k);
  return r;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string fname = path.string();
  nlohmann::json header = nlohmann::json::object();
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::string ctx = fname + ": tensor '" + t.name + "'";
    if (t.name.empty() || t.name == "__metadata__") throw Error(ctx + ": invalid tensor name");
    if (header.contains(t.name)) throw Error(ctx + ": duplicate tensor name");
    for (int64_t d : t.shape)
      if (d < 0) throw Error(ctx + ": negative dimension " + std::to_string(d));
    uint64_t nbytes = 0;
    if (!checked_nbytes(t.shape, dtype_size(t.dtype), nbytes)) throw Error(ctx + ": shape overflows the byte size");
    if (nbytes > 0 && !t.data) throw Error(ctx + ": null data");
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    sizes.push_back(nbytes);
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string hjson = header.dump();
  hjson.append((8 - hjson.size() % 8) % 8, ' ');  // pad so the data region is 8-byte aligned, as safetensors does

  const std::filesystem::path tmp = fname + ".tmp." + std::to_string(::getpid());
  try {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(tmp.string() + ": cannot create");
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t(hjson.size()) >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(hjson.data(), static_cast<std::streamsize>(hjson.size()));
    for (size_t i = 0; i < tensors.size(); ++i)
      if (sizes[i]) out.write(static_cast<const char*>(tensors[i].data), static_cast<std::streamsize>(sizes[i]));
    out.close();
    if (!out) throw Error(tmp.string() + ": write failed");
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error(fname + ": cannot rename " + tmp.string() + ": " + ec.message());
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace kvf
