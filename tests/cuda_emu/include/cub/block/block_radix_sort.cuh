#pragma once
#include "cub/emu_collectives.hpp"

namespace cub {

// A stable sort of the block's BX*BY*BZ*ITEMS keys (and values) by bits [begin_bit, end_bit), blocked in and
// blocked (or striped) out. Unsigned keys order as numbers; float keys as CUB's radix twiddle orders them (-0 < +0,
// NaNs by bits). Thread 0 sorts the tile in TempStorage between two barriers.
template <class K, int BX, int ITEMS, class V = NullType, int RADIX_BITS = 4, bool MEMOIZE = true, int SCAN = 0,
          int SMEM = 0, int BY = 1, int BZ = 1>
class BlockRadixSort {
  static constexpr int N = BX * BY * BZ * ITEMS;
  static constexpr bool kValues = !std::is_same_v<V, NullType>;
  using VS = std::conditional_t<kValues, V, char>;

 public:
  struct TempStorage {
    K keys[N];
    VS values[kValues ? N : 1];
  };
  explicit BlockRadixSort(TempStorage& t) : tmp_(&t) {}

  void Sort(K (&keys)[ITEMS], int begin_bit = 0, int end_bit = sizeof(K) * 8) {
    run(keys, nullptr, begin_bit, end_bit, false, false);
  }
  void SortDescending(K (&keys)[ITEMS], int begin_bit = 0, int end_bit = sizeof(K) * 8) {
    run(keys, nullptr, begin_bit, end_bit, true, false);
  }
  void Sort(K (&keys)[ITEMS], VS (&values)[ITEMS], int begin_bit = 0, int end_bit = sizeof(K) * 8) {
    run(keys, &values, begin_bit, end_bit, false, false);
  }
  void SortDescending(K (&keys)[ITEMS], VS (&values)[ITEMS], int begin_bit = 0, int end_bit = sizeof(K) * 8) {
    run(keys, &values, begin_bit, end_bit, true, false);
  }
  void SortBlockedToStriped(K (&keys)[ITEMS], int begin_bit = 0, int end_bit = sizeof(K) * 8) {
    run(keys, nullptr, begin_bit, end_bit, false, true);
  }
  void SortDescendingBlockedToStriped(K (&keys)[ITEMS], int begin_bit = 0, int end_bit = sizeof(K) * 8) {
    run(keys, nullptr, begin_bit, end_bit, true, true);
  }

 private:
  static uint64_t radix_bits(K k, int begin_bit, int end_bit) {
    uint64_t u = 0;
    if constexpr (std::is_same_v<K, float>) {
      uint32_t b;
      std::memcpy(&b, &k, 4);
      u = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    } else if constexpr (std::is_same_v<K, double>) {
      uint64_t b;
      std::memcpy(&b, &k, 8);
      u = (b >> 63) ? ~b : (b | (1ull << 63));
    } else {
      static_assert(std::is_integral_v<K> && std::is_unsigned_v<K>, "kvf_cuda_emu: unsigned or float keys only");
      u = static_cast<uint64_t>(k);
    }
    const int width = end_bit - begin_bit;
    u >>= begin_bit;
    return width >= 64 ? u : (u & ((1ull << width) - 1));
  }
  void run(K (&keys)[ITEMS], VS (*values)[ITEMS], int begin_bit, int end_bit, bool descending, bool striped_out) {
    emu::check_block<BX, BY, BZ>();
    const int t = emu::linear_tid(), threads = BX * BY * BZ;
    for (int j = 0; j < ITEMS; ++j) {
      tmp_->keys[t * ITEMS + j] = keys[j];
      if constexpr (kValues) tmp_->values[t * ITEMS + j] = (*values)[j];
    }
    __syncthreads();
    if (t == 0) {
      std::vector<int> order(N);
      std::iota(order.begin(), order.end(), 0);
      std::vector<uint64_t> bits(N);
      for (int i = 0; i < N; ++i) bits[i] = radix_bits(tmp_->keys[i], begin_bit, end_bit);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
        return descending ? bits[a] > bits[b] : bits[a] < bits[b];
      });
      std::vector<K> k(N);
      std::vector<VS> v(kValues ? N : 0);
      for (int i = 0; i < N; ++i) {
        k[i] = tmp_->keys[order[i]];
        if constexpr (kValues) v[i] = tmp_->values[order[i]];
      }
      for (int i = 0; i < N; ++i) {
        tmp_->keys[i] = k[i];
        if constexpr (kValues) tmp_->values[i] = v[i];
      }
    }
    __syncthreads();
    for (int j = 0; j < ITEMS; ++j) {
      const int i = striped_out ? j * threads + t : t * ITEMS + j;
      keys[j] = tmp_->keys[i];
      if constexpr (kValues) (*values)[j] = tmp_->values[i];
    }
  }
  TempStorage* tmp_;
};

}  // namespace cub
