#pragma once
// kvf_cuda_emu's CUB block collectives (tests/cuda_emu/kvf_cuda_emu.hpp): the subset of cub::BlockLoad,
// BlockRadixSort, BlockScan and BlockReduce that kvforge's kernels use, with CUB's documented results. Each one
// passes its data through the caller's TempStorage between two barriers, as CUB does, so a kernel that reuses a
// storage without the __syncthreads CUB asks for reads another collective's data here as it could on a GPU.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "kvf_cuda_emu.hpp"

namespace cub {

struct NullType {};

namespace emu {
inline int linear_tid() {
  const auto& c = ::kvf_emu::current();
  return static_cast<int>(c.thread_idx.x + c.block_dim.x * (c.thread_idx.y + c.block_dim.y * c.thread_idx.z));
}
inline int block_threads() {
  const auto& c = ::kvf_emu::current();
  return static_cast<int>(c.block_dim.x * c.block_dim.y * c.block_dim.z);
}
template <int BX, int BY, int BZ>
void check_block() {
  if (block_threads() != BX * BY * BZ)
    throw std::logic_error("cub collective declared for " + std::to_string(BX * BY * BZ) + " threads used by a block of " +
                           std::to_string(block_threads()));
}
// A value no correct kernel reads: what CUB leaves unspecified (BlockReduce's result outside thread 0).
template <class T>
T poison() {
  if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::quiet_NaN();
  else if constexpr (std::is_integral_v<T>) return static_cast<T>(0x5A5A5A5A5A5A5A5Aull);
  else return T{};
}
}  // namespace emu

}  // namespace cub
