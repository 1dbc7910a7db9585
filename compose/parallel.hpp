#pragma once
// parallel_for over [0, n) (torch-free; the executors thread across heads).
// fn(i, worker) — `worker` in [0, workers) indexes per-thread scratch.
// Threads: an external pool when one is installed (the torch bridge installs ATen's OpenMP pool, so the executor
// shares MKL's threads and honours --threads instead of fighting OpenMP workers that still spin after a GEMM:
// on 2 cores that cost ~3 ms per layer), else fresh std::threads.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kvf {

inline int default_workers() {
  static const int n = std::max(1u, std::thread::hardware_concurrency());
  return n;
}

// Runs body(ctx, w) for some w in [0, workers), at most once each, concurrently; every call to body drains a
// shared work counter, so any number of participants >= 1 finishes the work.
using PoolRunner = void (*)(int workers, void* ctx, void (*body)(void* ctx, int w));
inline std::atomic<PoolRunner>& pool_runner() {
  static std::atomic<PoolRunner> runner{nullptr};
  return runner;
}

template <class Fn>
void parallel_for(int64_t n, int workers, Fn&& fn) {
  workers = static_cast<int>(std::clamp<int64_t>(workers, 1, std::max<int64_t>(n, 1)));
  if (workers == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto body = [&](int w) {
    try {
      for (int64_t i; (i = next.fetch_add(1)) < n;) fn(i, w);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = n;
    }
  };
  if (PoolRunner run = pool_runner().load(std::memory_order_acquire)) {
    run(workers, &body, [](void* ctx, int w) { (*static_cast<decltype(body)*>(ctx))(w); });
  } else {
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(body, w);
    body(0);
    for (auto& t : pool) t.join();
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace kvf
