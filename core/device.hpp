#pragma once
// Devices for the runtime: "cpu", "cuda" or "cuda:N", parsed with a clear error, plus the few device services
// the timers and benchmarks need (synchronise, peak memory). Device-agnostic: CUDA is reached through ATen's
// accelerator API, so this compiles without the CUDA toolkit; a CUDA device then fails at parse time, saying why.
#include <cstdint>
#include <string>

#include <c10/core/Device.h>

namespace kvf {

// Throws kvf::Error naming the value and what exists ("cpu", or "cuda[:N]" when libtorch sees a CUDA device).
at::Device parse_device(const std::string& spec);
// Waits for the device's queued work (no-op on the CPU): timers around GPU work call it first.
void synchronize(const at::Device& device);
// Peak bytes allocated on the device since the last reset (the CUDA caching allocator's statistics); -1 on the CPU.
int64_t device_peak_bytes(const at::Device& device);
void reset_device_peak(const at::Device& device);

}  // namespace kvf
