#pragma once
#include "cub/emu_collectives.hpp"

namespace cub {

enum BlockReduceAlgorithm { BLOCK_REDUCE_RAKING_COMMUTATIVE_ONLY, BLOCK_REDUCE_RAKING, BLOCK_REDUCE_WARP_REDUCTIONS };

// A sum over the block, valid in thread 0 only (CUB's contract); the other threads get a poison value.
template <class T, int BX, BlockReduceAlgorithm ALGO = BLOCK_REDUCE_WARP_REDUCTIONS, int BY = 1, int BZ = 1>
class BlockReduce {
  static constexpr int kThreads = BX * BY * BZ;

 public:
  struct TempStorage {
    T values[kThreads];
  };
  explicit BlockReduce(TempStorage& t) : tmp_(&t) {}

  T Sum(T in) { return Sum(in, kThreads); }
  T Sum(T in, int valid) {
    emu::check_block<BX, BY, BZ>();
    const int t = emu::linear_tid();
    tmp_->values[t] = in;
    __syncthreads();
    if (t != 0) return emu::poison<T>();
    T s = T{};
    for (int i = 0; i < std::min(valid, kThreads); ++i) s = static_cast<T>(s + tmp_->values[i]);
    return s;
  }
  template <int I>
  T Sum(const T (&in)[I]) {
    T mine = T{};
    for (int j = 0; j < I; ++j) mine = static_cast<T>(mine + in[j]);
    return Sum(mine);
  }

 private:
  TempStorage* tmp_;
};

}  // namespace cub
