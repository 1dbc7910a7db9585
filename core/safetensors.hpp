#pragma once
// safetensors reader (mmap, zero-copy views) and writer (temp file + rename).
// Format: u64 little-endian header length N, N bytes of JSON header, then the data region.
// Every header length, offset, dtype and shape is checked; violations throw kvf::Error naming
// the file, the tensor and the offending value.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.hpp"

namespace kvf {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };
size_t dtype_size(DType t);
std::string_view dtype_name(DType t);        // safetensors spelling: "F32", "BF16", ...
DType parse_dtype(std::string_view name, const std::string& context);  // throws naming the value

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into the mapping; valid while the owning file lives
  size_t nbytes = 0;
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  const std::vector<TensorView>& tensors() const { return tensors_; }
  const TensorView* find(std::string_view name) const;  // nullptr if absent
  const TensorView& at(std::string_view name) const;    // throws naming file and tensor
  const std::map<std::string, std::string>& metadata() const { return metadata_; }  // "__metadata__"
  const std::filesystem::path& path() const { return file_.path(); }

 private:
  MappedFile file_;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A Hugging Face checkpoint folder: model.safetensors, or shards listed in
// model.safetensors.index.json ("weight_map": tensor name -> shard file).
class SafetensorsCheckpoint {
 public:
  explicit SafetensorsCheckpoint(const std::filesystem::path& dir);
  const TensorView* find(std::string_view name) const;
  const TensorView& at(std::string_view name) const;
  std::vector<std::string> names() const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*, std::less<>> index_;
  std::filesystem::path dir_;
};

struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // dtype_size(dtype) * prod(shape) bytes, row-major
};

// Writes atomically: a temporary file next to `path`, then rename. Tensors are laid out in the given order.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace kvf
