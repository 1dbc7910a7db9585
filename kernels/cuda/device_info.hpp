#pragma once
// Which CUDA devices this process can use. Torch-free; the GPU tests use it to decide whether to skip.
#include <string>

namespace kvf::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no GPU (never throws).
int device_count();
// Why there is no device, e.g. "cudaGetDeviceCount: no CUDA-capable device is detected"; "" if there is one.
std::string no_device_reason();

}  // namespace kvf::cuda
