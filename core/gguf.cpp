#include "core/gguf.hpp"

#include <bit>
#include <cstring>
#include <limits>
#include <set>

#include "core/error.hpp"

namespace kvf {

namespace {

struct TypeTraits {
  GgmlType t;
  std::string_view name;
  int64_t block;
  size_t bytes;
};
// Sizes as ggml's type_traits (sizeof(block_*)); QK_K = 256.
constexpr TypeTraits kTypes[] = {
    {GgmlType::F32, "F32", 1, 4},       {GgmlType::F16, "F16", 1, 2},       {GgmlType::Q4_0, "Q4_0", 32, 18},
    {GgmlType::Q4_1, "Q4_1", 32, 20},   {GgmlType::Q5_0, "Q5_0", 32, 22},   {GgmlType::Q5_1, "Q5_1", 32, 24},
    {GgmlType::Q8_0, "Q8_0", 32, 34},   {GgmlType::Q8_1, "Q8_1", 32, 36},   {GgmlType::Q2_K, "Q2_K", 256, 84},
    {GgmlType::Q3_K, "Q3_K", 256, 110}, {GgmlType::Q4_K, "Q4_K", 256, 144}, {GgmlType::Q5_K, "Q5_K", 256, 176},
    {GgmlType::Q6_K, "Q6_K", 256, 210}, {GgmlType::Q8_K, "Q8_K", 256, 292}, {GgmlType::I8, "I8", 1, 1},
    {GgmlType::I16, "I16", 1, 2},       {GgmlType::I32, "I32", 1, 4},       {GgmlType::I64, "I64", 1, 8},
    {GgmlType::F64, "F64", 1, 8},       {GgmlType::BF16, "BF16", 1, 2},
};

const TypeTraits* traits(GgmlType t) {
  for (const auto& x : kTypes)
    if (x.t == t) return &x;
  return nullptr;
}

enum ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kString = 8, kArray = 9,
  kU64 = 10, kI64 = 11, kF64 = 12,
};
constexpr int kMaxArrayDepth = 8;

// Smallest encoding of one value of type t (arrays: type + count), used to bound counts before allocating.
uint64_t min_encoded_size(uint32_t t) {
  switch (t) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: case kString: return 8;
    case kArray: return 12;
    default: return 0;
  }
}

// Bounds-checked little-endian cursor over the mapping.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, std::string file) : p_(data), size_(size), file_(std::move(file)) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  const std::string& file() const { return file_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      throw Error(file_ + ": truncated at byte " + std::to_string(pos_) + " reading " + what + " (needs " +
                  std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left)");
  }
  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));  // the host is little-endian (checked below)
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    const auto n = read<uint64_t>("length of " + what);
    if (n > remaining())
      throw Error(file_ + ": " + what + " has length " + std::to_string(n) + ", past the end of the file (" +
                  std::to_string(remaining()) + " bytes left)");
    std::string s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

 private:
  const uint8_t* p_;
  size_t size_;
  size_t pos_ = 0;
  std::string file_;
};
static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

GgufValue read_value(Cursor& c, uint32_t type, const std::string& key, int depth) {
  const std::string what = "value of '" + key + "'";
  switch (type) {
    case kU8: return {uint64_t(c.read<uint8_t>(what))};
    case kI8: return {int64_t(c.read<int8_t>(what))};
    case kU16: return {uint64_t(c.read<uint16_t>(what))};
    case kI16: return {int64_t(c.read<int16_t>(what))};
    case kU32: return {uint64_t(c.read<uint32_t>(what))};
    case kI32: return {int64_t(c.read<int32_t>(what))};
    case kU64: return {c.read<uint64_t>(what)};
    case kI64: return {c.read<int64_t>(what)};
    case kF32: return {double(c.read<float>(what))};
    case kF64: return {c.read<double>(what)};
    case kBool: {
      const auto b = c.read<uint8_t>(what);
      if (b > 1) throw Error(c.file() + ": key '" + key + "': bool value " + std::to_string(b) + " is not 0 or 1");
      return {b == 1};
    }
    case kString: return {c.read_string(what)};
    case kArray: {
      if (depth >= kMaxArrayDepth)
        throw Error(c.file() + ": key '" + key + "': arrays nested deeper than " + std::to_string(kMaxArrayDepth));
      const auto et = c.read<uint32_t>("array type of '" + key + "'");
      const uint64_t min = min_encoded_size(et);
      if (min == 0) throw Error(c.file() + ": key '" + key + "': unknown array element type " + std::to_string(et));
      const auto n = c.read<uint64_t>("array length of '" + key + "'");
      if (n > c.remaining() / min)
        throw Error(c.file() + ": key '" + key + "': array length " + std::to_string(n) + " exceeds the file size (" +
                    std::to_string(c.remaining()) + " bytes left)");
      GgufArray arr;
      arr.reserve(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) arr.push_back(read_value(c, et, key, depth + 1));
      return {std::move(arr)};
    }
    default:
      throw Error(c.file() + ": key '" + key + "': unknown value type " + std::to_string(type));
  }
}

const char* kind_name(const GgufValue& v) {
  switch (v.v.index()) {
    case 0: return "unsigned integer";
    case 1: return "integer";
    case 2: return "float";
    case 3: return "bool";
    case 4: return "string";
    default: return "array";
  }
}

std::optional<int64_t> as_int(const GgufValue& v) {
  if (auto* u = std::get_if<uint64_t>(&v.v)) {
    if (*u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(*u);
  }
  if (auto* i = std::get_if<int64_t>(&v.v)) return *i;
  return std::nullopt;
}

std::optional<double> as_float(const GgufValue& v) {
  if (auto* d = std::get_if<double>(&v.v)) return *d;
  if (auto* u = std::get_if<uint64_t>(&v.v)) return double(*u);
  if (auto* i = std::get_if<int64_t>(&v.v)) return double(*i);
  return std::nullopt;
}

}  // namespace

std::string_view ggml_type_name(GgmlType t) {
  const auto* x = traits(t);
  return x ? x->name : std::string_view("unknown");
}

bool ggml_type_layout(GgmlType t, int64_t& block_size, size_t& type_size) {
  const auto* x = traits(t);
  if (!x) return false;
  block_size = x->block;
  type_size = x->bytes;
  return true;
}

int64_t GgufTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

GgufFile::GgufFile(const std::filesystem::path& path) : file_(path) {
  Cursor c(file_.data(), file_.size(), path.string());
  const std::string& fname = c.file();
  if (file_.size() < 4 || std::memcmp(file_.data(), "GGUF", 4) != 0)
    throw Error(fname + ": not a GGUF file (bad magic)");
  c.read<uint32_t>("magic");
  version_ = c.read<uint32_t>("version");
  if (version_ != 2 && version_ != 3) {
    const uint32_t swapped = __builtin_bswap32(version_);
    if (swapped == 2 || swapped == 3)
      throw Error(fname + ": big-endian GGUF files are not supported");
    throw Error(fname + ": GGUF version " + std::to_string(version_) + " is not supported (only 2 and 3)");
  }
  const auto n_tensors = c.read<uint64_t>("tensor count");
  const auto n_kv = c.read<uint64_t>("metadata count");
  // Each key/value takes at least 13 bytes (key length, type, 1-byte value); each tensor info at least 24.
  if (n_kv > c.remaining() / 13)
    throw Error(fname + ": metadata count " + std::to_string(n_kv) + " exceeds what the file can hold");
  if (n_tensors > c.remaining() / 24)
    throw Error(fname + ": tensor count " + std::to_string(n_tensors) + " exceeds what the file can hold");

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = c.read_string("metadata key #" + std::to_string(i));
    const auto type = c.read<uint32_t>("type of '" + key + "'");
    GgufValue v = read_value(c, type, key, 0);
    if (!metadata_.emplace(key, std::move(v)).second) throw Error(fname + ": duplicate metadata key '" + key + "'");
  }

  if (auto it = metadata_.find("general.alignment"); it != metadata_.end()) {
    const auto a = as_int(it->second);
    if (!a || *a <= 0 || !std::has_single_bit(uint64_t(*a)))
      throw Error(fname + ": general.alignment must be a positive power of two");
    alignment_ = static_cast<size_t>(*a);
  }

  std::set<std::string, std::less<>> names;
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    t.name = c.read_string("name of tensor #" + std::to_string(i));
    const std::string ctx = fname + ": tensor '" + t.name + "'";
    if (!names.insert(t.name).second) throw Error(ctx + ": duplicate tensor name");
    const auto n_dims = c.read<uint32_t>("dimension count of '" + t.name + "'");
    if (n_dims > 4) throw Error(ctx + ": " + std::to_string(n_dims) + " dimensions (at most 4)");
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const auto dim = c.read<uint64_t>("dimensions of '" + t.name + "'");
      if (dim == 0 || dim > uint64_t(std::numeric_limits<int64_t>::max()))
        throw Error(ctx + ": invalid dimension " + std::to_string(dim));
      if (numel > std::numeric_limits<int64_t>::max() / int64_t(dim))
        throw Error(ctx + ": element count overflows (dimension " + std::to_string(dim) + ")");
      numel *= int64_t(dim);
      t.ne.push_back(int64_t(dim));
    }
    const auto type = c.read<uint32_t>("type of '" + t.name + "'");
    t.type = static_cast<GgmlType>(type);
    const auto* tt = traits(t.type);
    if (!tt) throw Error(ctx + ": unknown tensor type " + std::to_string(type));
    const int64_t row = t.ne.empty() ? 1 : t.ne[0];
    if (row % tt->block != 0)
      throw Error(ctx + ": row length " + std::to_string(row) + " is not a multiple of the " + std::string(tt->name) +
                  " block size " + std::to_string(tt->block));
    const uint64_t blocks = uint64_t(numel / tt->block);
    if (blocks > std::numeric_limits<uint64_t>::max() / tt->bytes) throw Error(ctx + ": byte size overflows");
    t.nbytes = static_cast<size_t>(blocks * tt->bytes);
    t.offset = c.read<uint64_t>("offset of '" + t.name + "'");
    if (t.offset % alignment_ != 0)
      throw Error(ctx + ": data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                  std::to_string(alignment_));
    tensors_.push_back(std::move(t));
  }

  const size_t pos = c.pos();
  const uint64_t data_start = pos % alignment_ == 0 ? pos : uint64_t(pos) + (alignment_ - pos % alignment_);
  for (auto& t : tensors_) {
    const uint64_t avail = data_start <= file_.size() ? file_.size() - data_start : 0;
    if (t.offset > avail || t.nbytes > avail - t.offset)
      throw Error(fname + ": tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", +" +
                  std::to_string(t.nbytes) + ") lies past the end of the file (data section holds " +
                  std::to_string(avail) + " bytes)");
    t.data = file_.data() + data_start + t.offset;
  }
}

bool GgufFile::has(std::string_view key) const { return metadata_.find(key) != metadata_.end(); }

namespace {
const GgufValue& lookup(const std::map<std::string, GgufValue, std::less<>>& m, std::string_view key,
                        const std::filesystem::path& path) {
  auto it = m.find(key);
  if (it == m.end()) throw Error(path.string() + ": missing GGUF metadata key '" + std::string(key) + "'");
  return it->second;
}
[[noreturn]] void wrong_type(const std::filesystem::path& path, std::string_view key, const GgufValue& v,
                             const char* expected) {
  throw Error(path.string() + ": GGUF metadata key '" + std::string(key) + "' is a " + kind_name(v) + ", expected " +
              expected);
}
}  // namespace

std::string GgufFile::get_string(std::string_view key) const {
  const auto& v = lookup(metadata_, key, path());
  if (auto* s = std::get_if<std::string>(&v.v)) return *s;
  wrong_type(path(), key, v, "string");
}

int64_t GgufFile::get_int(std::string_view key) const {
  const auto& v = lookup(metadata_, key, path());
  if (auto i = as_int(v)) return *i;
  wrong_type(path(), key, v, "integer (fitting int64)");
}

double GgufFile::get_float(std::string_view key) const {
  const auto& v = lookup(metadata_, key, path());
  if (auto d = as_float(v)) return *d;
  wrong_type(path(), key, v, "number");
}

bool GgufFile::get_bool(std::string_view key) const {
  const auto& v = lookup(metadata_, key, path());
  if (auto* b = std::get_if<bool>(&v.v)) return *b;
  wrong_type(path(), key, v, "bool");
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  const auto& v = lookup(metadata_, key, path());
  const auto* arr = std::get_if<GgufArray>(&v.v);
  if (!arr) wrong_type(path(), key, v, "array of strings");
  std::vector<std::string> r;
  r.reserve(arr->size());
  for (const auto& e : *arr) {
    const auto* s = std::get_if<std::string>(&e.v);
    if (!s) wrong_type(path(), key, e, "string (array element)");
    r.push_back(*s);
  }
  return r;
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const auto& v = lookup(metadata_, key, path());
  const auto* arr = std::get_if<GgufArray>(&v.v);
  if (!arr) wrong_type(path(), key, v, "array of integers");
  std::vector<int64_t> r;
  r.reserve(arr->size());
  for (const auto& e : *arr) {
    auto i = as_int(e);
    if (!i) wrong_type(path(), key, e, "integer (array element)");
    r.push_back(*i);
  }
  return r;
}

std::vector<double> GgufFile::get_float_array(std::string_view key) const {
  const auto& v = lookup(metadata_, key, path());
  const auto* arr = std::get_if<GgufArray>(&v.v);
  if (!arr) wrong_type(path(), key, v, "array of numbers");
  std::vector<double> r;
  r.reserve(arr->size());
  for (const auto& e : *arr) {
    auto d = as_float(e);
    if (!d) wrong_type(path(), key, e, "number (array element)");
    r.push_back(*d);
  }
  return r;
}

std::optional<int64_t> GgufFile::find_int(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_int(key);
}

std::optional<double> GgufFile::find_float(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_float(key);
}

std::optional<std::string> GgufFile::find_string(std::string_view key) const {
  if (!has(key)) return std::nullopt;
  return get_string(key);
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

}  // namespace kvf
