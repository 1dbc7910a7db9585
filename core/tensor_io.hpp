#pragma once
// Bridge between safetensors files and libtorch tensors (copies; nothing keeps the mapping alive).
#include <filesystem>
#include <map>
#include <string>

#include <ATen/Tensor.h>

#include "core/safetensors.hpp"

namespace kvf {

at::ScalarType torch_dtype(DType t);  // throws kvf::Error for types torch lacks
DType safetensors_dtype(at::ScalarType t);
at::Tensor tensor_from_view(const TensorView& v);  // an owning copy
std::map<std::string, at::Tensor> load_tensors(const std::filesystem::path& path);
// Atomic (temp file + rename); tensors are made contiguous on the CPU first.
void save_tensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace kvf
