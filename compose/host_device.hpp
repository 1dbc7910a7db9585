#pragma once
// KVF_HOST_DEVICE marks policy math that compiles for the CPU executor and, unchanged, for CUDA kernels.
#if defined(__CUDACC__)
#define KVF_HOST_DEVICE __host__ __device__
#else
#define KVF_HOST_DEVICE
#endif
