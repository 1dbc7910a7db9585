// Built with OpenMP's flags and without the torch PCH (kernels/CMakeLists.txt): ATen's parallel_for is inlined
// here, and only with _OPENMP defined does it spread the range over the pool. Before this file existed the
// runner lived in a TU without -fopenmp and every fused CPU executor ran on one thread.
#include "kernels/aten_pool.hpp"

#include <ATen/Parallel.h>

#include <algorithm>

namespace kvf {

#ifdef _OPENMP
namespace {
// The executors' threads come from ATen's pool (compose/parallel.hpp says why); --threads bounds them.
void aten_pool(int workers, void* ctx, void (*body)(void*, int)) {
  const int k = std::max(1, std::min(workers, at::get_num_threads()));
  if (k == 1 || at::in_parallel_region()) {
    body(ctx, 0);
    return;
  }
  at::parallel_for(0, k, 1, [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; ++w) body(ctx, static_cast<int>(w));
  });
}
}  // namespace

PoolRunner aten_pool_runner() { return &aten_pool; }
#else
PoolRunner aten_pool_runner() { return nullptr; }
#endif

}  // namespace kvf
