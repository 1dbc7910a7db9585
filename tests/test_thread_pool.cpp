// The fused CPU executors thread across heads through compose/parallel.hpp's parallel_for, which the torch bridge
// points at ATen's pool (kernels/aten_pool.cpp). That file must be built with OpenMP: at::parallel_for is a header
// template, and without _OPENMP it runs the whole range on the calling thread. It did, unnoticed, for a while
// (every executor single-threaded); this test pins it.
#include <ATen/Parallel.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "compose/parallel.hpp"
#include "kernels/aten_pool.hpp"
#include "kernels/press_inputs.hpp"

namespace {

// Thread ids that ran at least one of n work items of ~1 ms each.
std::set<std::thread::id> threads_used(int64_t n, int workers) {
  std::set<std::thread::id> ids;
  std::mutex m;
  kvf::parallel_for(n, workers, [&](int64_t, int) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(m);
    ids.insert(std::this_thread::get_id());
  });
  return ids;
}

}  // namespace

TEST_CASE("parallel_for spreads work over ATen's threads (the executors are not silently serial)", "[parallel]") {
  // Without OpenMP (CMake says so) there is no ATen runner and parallel_for starts std::threads: still 2 threads.
  if (kvf::aten_pool_runner() == nullptr) WARN("this build has no OpenMP: parallel_for starts its own threads");
  REQUIRE(kvf::pool_runner().load() == kvf::aten_pool_runner());  // installed by the torch bridge
  const int saved = at::get_num_threads();
  at::set_num_threads(2);
  const auto ids = threads_used(64, 2);
  at::set_num_threads(saved);
  // 64 items of >= 1 ms on a shared counter: a second pool thread that does not take one within 64 ms is broken.
  CHECK(ids.size() == 2);
}

TEST_CASE("parallel_for honours at::set_num_threads(1) and nested regions", "[parallel]") {
  if (kvf::aten_pool_runner() == nullptr) {
    WARN("skipped: this build has no OpenMP, so parallel_for does not use ATen's pool or its thread count");
    return;
  }
  const int saved = at::get_num_threads();
  at::set_num_threads(1);
  CHECK(threads_used(16, 2).size() == 1);
  at::set_num_threads(2);
  std::vector<std::pair<std::thread::id, std::set<std::thread::id>>> calls;  // (caller, threads its work ran on)
  std::mutex m;
  // A parallel_for inside a pool worker (a policy that calls one per head) must not start a second team: its
  // body runs on the calling thread.
  kvf::parallel_for(2, 2, [&](int64_t, int) {
    const auto outer = std::this_thread::get_id();
    const auto ids = threads_used(4, 2);
    std::lock_guard<std::mutex> lock(m);
    calls.emplace_back(outer, ids);
  });
  at::set_num_threads(saved);
  REQUIRE(calls.size() == 2);
  for (const auto& [outer, ids] : calls) CHECK(ids == std::set<std::thread::id>{outer});  // Catch asserts here only
}
