#pragma once
// ATen's intra-op thread pool as the executors' PoolRunner (compose/parallel.hpp).
#include "compose/parallel.hpp"

namespace kvf {

// The runner, or nullptr when this build has no OpenMP (parallel_for then starts its own std::threads).
// at::parallel_for is a header template: in a translation unit compiled without OpenMP it silently runs the whole
// range on the calling thread, so it lives in its own file (kernels/aten_pool.cpp) built with OpenMP's flags.
PoolRunner aten_pool_runner();

}  // namespace kvf
