#pragma once
#include "cub/emu_collectives.hpp"

namespace cub {

enum BlockScanAlgorithm { BLOCK_SCAN_RAKING, BLOCK_SCAN_RAKING_MEMOIZE, BLOCK_SCAN_WARP_SCANS };

// Prefix sums over the block in thread order (and, within a thread, item order). Each thread's total goes through
// TempStorage between two barriers; every thread then sums the totals before it.
template <class T, int BX, BlockScanAlgorithm ALGO = BLOCK_SCAN_RAKING, int BY = 1, int BZ = 1>
class BlockScan {
  static constexpr int kThreads = BX * BY * BZ;

 public:
  struct TempStorage {
    T totals[kThreads];
  };
  explicit BlockScan(TempStorage& t) : tmp_(&t) {}

  void ExclusiveSum(T in, T& out) {
    T agg;
    ExclusiveSum(in, out, agg);
  }
  void ExclusiveSum(T in, T& out, T& aggregate) {
    T before;
    exchange(in, before, aggregate);
    out = before;
  }
  void InclusiveSum(T in, T& out) {
    T agg;
    InclusiveSum(in, out, agg);
  }
  void InclusiveSum(T in, T& out, T& aggregate) {
    T before;
    exchange(in, before, aggregate);
    out = static_cast<T>(before + in);
  }
  template <int I>
  void ExclusiveSum(const T (&in)[I], T (&out)[I]) {
    T agg;
    ExclusiveSum(in, out, agg);
  }
  template <int I>
  void ExclusiveSum(const T (&in)[I], T (&out)[I], T& aggregate) {
    T copy[I], mine = T{};
    for (int j = 0; j < I; ++j) copy[j] = in[j], mine = static_cast<T>(mine + in[j]);
    T before;
    exchange(mine, before, aggregate);
    for (int j = 0; j < I; ++j) {
      out[j] = before;
      before = static_cast<T>(before + copy[j]);
    }
  }
  template <int I>
  void InclusiveSum(const T (&in)[I], T (&out)[I]) {
    T agg;
    InclusiveSum(in, out, agg);
  }
  template <int I>
  void InclusiveSum(const T (&in)[I], T (&out)[I], T& aggregate) {
    T copy[I], mine = T{};
    for (int j = 0; j < I; ++j) copy[j] = in[j], mine = static_cast<T>(mine + in[j]);
    T before;
    exchange(mine, before, aggregate);
    for (int j = 0; j < I; ++j) {
      before = static_cast<T>(before + copy[j]);
      out[j] = before;
    }
  }

 private:
  void exchange(T mine, T& before, T& aggregate) {
    emu::check_block<BX, BY, BZ>();
    const int t = emu::linear_tid();
    tmp_->totals[t] = mine;  // no barrier before: reusing the storage needs the caller's __syncthreads (CUB's rule)
    __syncthreads();
    before = T{};
    aggregate = T{};
    for (int i = 0; i < kThreads; ++i) {
      if (i == t) before = aggregate;
      aggregate = static_cast<T>(aggregate + tmp_->totals[i]);
    }
  }
  TempStorage* tmp_;
};

}  // namespace cub
