#pragma once
// GGUF reader (versions 2 and 3): metadata key/values, tensor infos, alignment, mmap'd data.
// Every string length, array length, tensor dimension, type and offset is checked against the
// file size; violations throw kvf::Error naming the file, the key or tensor, and the value.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/mapped_file.hpp"

namespace kvf {

// ggml tensor types (values as in ggml.h). Only some are dequantised (see gguf_dequant.hpp).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};
std::string_view ggml_type_name(GgmlType t);  // "Q4_1", ...; "unknown" for others
// Block layout of every type in GgmlType (elements per block, bytes per block), as in ggml's type traits.
// Returns false for values outside the enum (the reader rejects such tensors).
bool ggml_type_layout(GgmlType t, int64_t& block_size, size_t& type_size);

struct GgufValue;
using GgufArray = std::vector<GgufValue>;
struct GgufValue {
  // Integers of every width are widened to int64/uint64, floats to double.
  std::variant<uint64_t, int64_t, double, bool, std::string, GgufArray> v;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the fastest-varying (row length)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;      // relative to the data section
  size_t nbytes = 0;
  const uint8_t* data = nullptr;
  int64_t numel() const;
};

class GgufFile {
 public:
  explicit GgufFile(const std::filesystem::path& path);
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  const std::filesystem::path& path() const { return file_.path(); }

  const std::map<std::string, GgufValue, std::less<>>& metadata() const { return metadata_; }
  bool has(std::string_view key) const;
  // Typed getters: throw kvf::Error naming the file and key when absent or of another type.
  std::string get_string(std::string_view key) const;
  int64_t get_int(std::string_view key) const;     // any integer type
  double get_float(std::string_view key) const;    // float or integer
  bool get_bool(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  std::vector<double> get_float_array(std::string_view key) const;
  std::optional<int64_t> find_int(std::string_view key) const;
  std::optional<double> find_float(std::string_view key) const;
  std::optional<std::string> find_string(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  MappedFile file_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensorInfo> tensors_;
};

}  // namespace kvf
