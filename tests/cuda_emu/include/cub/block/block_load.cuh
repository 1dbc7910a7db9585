#pragma once
#include "cub/emu_collectives.hpp"

namespace cub {

enum BlockLoadAlgorithm {
  BLOCK_LOAD_DIRECT,
  BLOCK_LOAD_STRIPED,
  BLOCK_LOAD_VECTORIZE,
  BLOCK_LOAD_TRANSPOSE,
  BLOCK_LOAD_WARP_TRANSPOSE,
  BLOCK_LOAD_WARP_TRANSPOSE_TIMESLICED
};

// Blocked arrangement: thread t gets items t*ITEMS .. t*ITEMS + ITEMS - 1 (every algorithm but STRIPED). The
// transposing ones stage the tile in TempStorage: each warp writes its items striped, syncs, reads them blocked.
template <class T, int BX, int ITEMS, BlockLoadAlgorithm ALGO = BLOCK_LOAD_DIRECT, int BY = 1, int BZ = 1>
class BlockLoad {
 public:
  struct TempStorage {
    T items[BX * BY * BZ * ITEMS];
  };
  BlockLoad() : tmp_(&private_storage()) {}
  explicit BlockLoad(TempStorage& t) : tmp_(&t) {}

  template <class It>
  void Load(It in, T (&items)[ITEMS]) {
    load(in, items, BX * BY * BZ * ITEMS, nullptr);
  }
  template <class It>
  void Load(It in, T (&items)[ITEMS], int valid) {
    load(in, items, valid, nullptr);
  }
  template <class It, class D>
  void Load(It in, T (&items)[ITEMS], int valid, D oob) {
    const T d = static_cast<T>(oob);
    load(in, items, valid, &d);
  }

 private:
  static TempStorage& private_storage() {
    static TempStorage s;
    return s;
  }
  template <class It>
  void load(It in, T (&items)[ITEMS], int valid, const T* oob) {
    emu::check_block<BX, BY, BZ>();
    const int t = emu::linear_tid();
    static_assert(ALGO != BLOCK_LOAD_STRIPED, "kvf_cuda_emu: striped BlockLoad is not modelled");
    if constexpr (ALGO == BLOCK_LOAD_WARP_TRANSPOSE || ALGO == BLOCK_LOAD_WARP_TRANSPOSE_TIMESLICED ||
                  ALGO == BLOCK_LOAD_TRANSPOSE) {
      const int warp = t / 32, lane = t % 32, base = warp * 32 * ITEMS;
      for (int j = 0; j < ITEMS; ++j) {  // warp-striped loads into the storage
        const int i = base + j * 32 + lane;
        if (i < valid) tmp_->items[i] = in[i];
        else if (oob) tmp_->items[i] = *oob;
      }
      if constexpr (ALGO == BLOCK_LOAD_TRANSPOSE) __syncthreads();
      else __syncwarp();
      for (int j = 0; j < ITEMS; ++j) {
        const int i = t * ITEMS + j;
        if (i < valid || oob) items[j] = tmp_->items[i];
      }
    } else {
      for (int j = 0; j < ITEMS; ++j) {
        const int i = t * ITEMS + j;
        if (i < valid) items[j] = in[i];
        else if (oob) items[j] = *oob;
      }
    }
  }
  TempStorage* tmp_;
};

}  // namespace cub
