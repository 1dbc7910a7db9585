#pragma once
// Small kernels that pin kvf_cuda_emu's model (tests/test_cuda_emu.cpp): results of the warp collectives, and the
// faults the emulator must report. Written as ordinary CUDA; built only through the emulator.
#include <cstdint>

#include <cuda_runtime.h>

namespace kvf::cuda_emu_selftest {

// out[t] for each of `threads` threads (one block): shfl from lane 3, xor 1, down 1, up 2, match_any on t % 3,
// ballot of t odd, warp sum by xor-shuffles (5 int64 per thread).
cudaError_t warp_ops(int threads, int64_t* out);
// out[t] = in[t] + in[(t + 1) % n] over one block through shared memory; with_barrier == false drops the
// __syncthreads between the write and the read (a race).
cudaError_t neighbour_sum(const int* in, int n, bool with_barrier, int* out);
// A full-mask __shfl_sync after the odd lanes returned (undefined on a GPU): the emulator must throw.
cudaError_t shfl_after_exit(int* out);
// __syncthreads inside `if (threadIdx.x < 16)` while lanes 16..31 wait in a full-mask __shfl_sync that names
// lanes 0..15 (a deadlock on a GPU): the emulator must throw.
cudaError_t divergent_barrier(int* out);
// A block scan whose TempStorage is reused for a second scan without __syncthreads (with_barrier == false):
// out[t] = exclusive prefix of 1s (= t) + exclusive prefix of t.
cudaError_t scan_twice(int threads, bool with_barrier, int64_t* out);
// Launch with `smem` bytes of dynamic shared memory, with or without the opt-in attribute.
cudaError_t big_shared(size_t smem, bool opt_in, float* out);

}  // namespace kvf::cuda_emu_selftest
