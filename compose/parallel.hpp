#pragma once
// parallel_for over [0, n) on std::threads (torch-free; the executors thread across heads).
// fn(i, worker) — `worker` in [0, workers) indexes per-thread scratch.
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
  std::vector<std::thread> pool;
  for (int w = 1; w < workers; ++w) pool.emplace_back(body, w);
  body(0);
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace kvf
