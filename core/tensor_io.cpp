#include "core/tensor_io.hpp"

#include <ATen/ATen.h>

#include <vector>

#include "core/error.hpp"

namespace kvf {

at::ScalarType torch_dtype(DType t) {
  switch (t) {
    case DType::F64: return at::kDouble;
    case DType::F32: return at::kFloat;
    case DType::F16: return at::kHalf;
    case DType::BF16: return at::kBFloat16;
    case DType::I64: return at::kLong;
    case DType::I32: return at::kInt;
    case DType::I16: return at::kShort;
    case DType::I8: return at::kChar;
    case DType::U8: return at::kByte;
    case DType::BOOL: return at::kBool;
  }
  throw Error("unsupported safetensors dtype");
}

DType safetensors_dtype(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return DType::F64;
    case at::kFloat: return DType::F32;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kLong: return DType::I64;
    case at::kInt: return DType::I32;
    case at::kShort: return DType::I16;
    case at::kChar: return DType::I8;
    case at::kByte: return DType::U8;
    case at::kBool: return DType::BOOL;
    default: throw Error(std::string("cannot store torch dtype ") + c10::toString(t) + " in safetensors");
  }
}

at::Tensor tensor_from_view(const TensorView& v) {
  // from_blob over the read-only mapping, then clone: the result owns its memory and is writable.
  return at::from_blob(const_cast<uint8_t*>(v.data), v.shape, at::TensorOptions().dtype(torch_dtype(v.dtype))).clone();
}

std::map<std::string, at::Tensor> load_tensors(const std::filesystem::path& path) {
  SafetensorsFile f(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& v : f.tensors()) out.emplace(v.name, tensor_from_view(v));
  return out;
}

void save_tensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                  const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;  // holds the contiguous CPU copies alive until written
  std::vector<TensorToWrite> items;
  for (const auto& [name, t] : tensors) {
    keep.push_back(t.detach().to(at::kCPU).contiguous());
    const auto& c = keep.back();
    items.push_back({name, safetensors_dtype(c.scalar_type()), c.sizes().vec(), c.data_ptr()});
  }
  write_safetensors(path, items, metadata);
}

}  // namespace kvf
