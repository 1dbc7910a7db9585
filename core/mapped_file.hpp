#pragma once
// MappedFile: a read-only memory map of a whole file (RAII). Empty files map to size 0.
#include <cstddef>
#include <cstdint>
#include <filesystem>

namespace kvf {

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);  // throws kvf::Error naming the file
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kvf
