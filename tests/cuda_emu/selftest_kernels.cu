#include "tests/cuda_emu/selftest_kernels.cuh"

#include <cub/block/block_scan.cuh>

namespace kvf::cuda_emu_selftest {
namespace {

__global__ void warp_ops_kernel(int64_t* out) {
  const int t = threadIdx.x;
  int64_t* o = out + 7 * t;
  o[0] = __shfl_sync(0xffffffffu, t, 3);
  o[1] = __shfl_xor_sync(0xffffffffu, t, 1);
  o[2] = __shfl_down_sync(0xffffffffu, t, 1);
  o[3] = __shfl_up_sync(0xffffffffu, t, 2);
  o[4] = __match_any_sync(0xffffffffu, t % 3);
  o[5] = __ballot_sync(0xffffffffu, t % 2);
  int64_t s = t;
  for (int k = 16; k > 0; k >>= 1) s += __shfl_xor_sync(0xffffffffu, s, k);
  o[6] = s;
}

__global__ void neighbour_kernel(const int* in, int n, bool with_barrier, int* out) {
  __shared__ int buf[1024];
  const int t = threadIdx.x;
  buf[t] = in[t];
  if (with_barrier) __syncthreads();
  out[t] = buf[t] + buf[(t + 1) % n];
}

__global__ void shfl_after_exit_kernel(int* out) {
  if (threadIdx.x % 2) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 0);
}

__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
    out[threadIdx.x] = 1;
  } else {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, static_cast<int>(threadIdx.x), 16);  // names lanes 0..15
  }
}

template <int T>
__global__ void scan_twice_kernel(bool with_barrier, int64_t* out) {
  using Scan = cub::BlockScan<int64_t, T>;
  __shared__ typename Scan::TempStorage tmp;
  int64_t a, b;
  Scan(tmp).ExclusiveSum(int64_t{1}, a);
  if (with_barrier) __syncthreads();
  Scan(tmp).ExclusiveSum(static_cast<int64_t>(threadIdx.x), b);
  out[threadIdx.x] = a + b;
}

__global__ void big_shared_kernel(float* out) {
  extern __shared__ float big[];
  big[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = big[(threadIdx.x + 1) % blockDim.x];
}

}  // namespace

cudaError_t warp_ops(int threads, int64_t* out) {
  warp_ops_kernel<<<1, threads>>>(out);
  return cudaGetLastError();
}
cudaError_t neighbour_sum(const int* in, int n, bool with_barrier, int* out) {
  neighbour_kernel<<<1, n>>>(in, n, with_barrier, out);
  return cudaGetLastError();
}
cudaError_t shfl_after_exit(int* out) {
  shfl_after_exit_kernel<<<1, 32>>>(out);
  return cudaGetLastError();
}
cudaError_t divergent_barrier(int* out) {
  divergent_barrier_kernel<<<1, 32>>>(out);
  return cudaGetLastError();
}
cudaError_t scan_twice(int threads, bool with_barrier, int64_t* out) {
  if (threads != 128) return cudaErrorInvalidValue;
  scan_twice_kernel<128><<<1, 128>>>(with_barrier, out);
  return cudaGetLastError();
}
cudaError_t big_shared(size_t smem, bool opt_in, float* out) {
  if (opt_in) {
    const cudaError_t e = cudaFuncSetAttribute(big_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  big_shared_kernel<<<1, 64, smem>>>(out);
  return cudaGetLastError();
}

}  // namespace kvf::cuda_emu_selftest
