#include "core/device.hpp"

#include <ATen/Context.h>
#include <ATen/DeviceAccelerator.h>

#include "core/error.hpp"

namespace kvf {

at::Device parse_device(const std::string& spec) {
  if (spec == "cpu") return at::Device(at::kCPU);
  if (spec.rfind("cuda", 0) != 0)
    throw Error("--device: unknown device '" + spec + "' (use cpu, cuda or cuda:N)");
  at::Device d(at::kCUDA);
  try {
    d = at::Device(spec);
  } catch (const std::exception&) {
    throw Error("--device: cannot parse '" + spec + "' (use cpu, cuda or cuda:N)");
  }
  if (!at::hasCUDA())
    throw Error("--device " + spec + ": this kvforge sees no CUDA device (no GPU, no driver, or a build without "
                "CUDA: kvforge is built with CUDA when nvcc is found)");
  const int64_t n = at::accelerator::deviceCount();
  if (d.has_index() && d.index() >= n)
    throw Error("--device " + spec + ": only " + std::to_string(n) + " CUDA device(s) exist");
  if (!d.has_index()) d = at::Device(at::kCUDA, 0);
  return d;
}

void synchronize(const at::Device& device) {
  if (device.is_cpu()) return;
  at::accelerator::synchronizeDevice(device.index());
}

int64_t device_peak_bytes(const at::Device& device) {
  if (device.is_cpu()) return -1;
  const auto stats = at::accelerator::getDeviceStats(device.index());
  return stats.allocated_bytes[0].peak;  // [0]: StatType::AGGREGATE
}

void reset_device_peak(const at::Device& device) {
  if (device.is_cpu()) return;
  at::accelerator::resetPeakStats(device.index());
}

}  // namespace kvf
