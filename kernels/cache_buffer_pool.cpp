#include "kernels/cache_buffer_pool.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <deque>
#include <mutex>
#include <new>
#include <string>

namespace kvf {
namespace {

constexpr size_t kHuge = size_t{2} << 20;

#ifdef MADV_POPULATE_WRITE
constexpr int kMadvPopulateWrite = MADV_POPULATE_WRITE;
#else
constexpr int kMadvPopulateWrite = 23;  // Linux 5.14's value; older headers lack the name
#endif

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

size_t default_limit() {
  if (kSanitized) return 0;
  if (const char* env = std::getenv("KVF_CACHE_POOL_MIB")) {
    try {
      return static_cast<size_t>(std::stoull(env)) << 20;
    } catch (...) {
      // a malformed value keeps the default rather than failing an allocation
    }
  }
  return size_t{1024} << 20;
}

struct Pool {
  std::mutex mu;
  std::deque<std::pair<size_t, void*>> free;  // oldest first
  CacheBufferPoolStats stats{0, default_limit(), 0, 0};

  // Caller holds mu.
  void evict_to(size_t budget) {
    while (stats.pooled_bytes > budget && !free.empty()) {
      stats.pooled_bytes -= free.front().first;
      std::free(free.front().second);
      free.pop_front();
    }
  }
};

// Leaked on purpose: tensors freed during static destruction still return their buffers here.
Pool& pool() {
  static Pool* p = new Pool;
  return *p;
}

}  // namespace

void* acquire_cache_buffer(size_t bytes, size_t* granted) {
  const size_t want = (bytes + kHuge - 1) / kHuge * kHuge;
  Pool& P = pool();
  {
    std::lock_guard<std::mutex> g(P.mu);
    auto best = P.free.end();
    for (auto it = P.free.begin(); it != P.free.end(); ++it)
      if (it->first >= want && it->first <= want + want / 8 && (best == P.free.end() || it->first < best->first))
        best = it;
    if (best != P.free.end()) {
      void* p = best->second;
      *granted = best->first;
      P.stats.pooled_bytes -= best->first;
      P.free.erase(best);
      ++P.stats.reused;
      return p;
    }
    ++P.stats.fresh;
  }
  void* p = std::aligned_alloc(kHuge, want);
  if (!p) throw std::bad_alloc();
  (void)madvise(p, want, MADV_HUGEPAGE);  // advice only: without THP this is an ordinary buffer
  // Fault the pages in here, once, before the executor's threads write them: two threads faulting huge pages
  // into one buffer contend in the kernel's page allocator (knorm at S = 32768 on 2 threads: 57 ms with faults
  // during the gather, 29 ms populated first). Advice only: an older kernel (< 5.14) returns EINVAL.
  (void)madvise(p, want, kMadvPopulateWrite);
  *granted = want;
  return p;
}

void release_cache_buffer(void* p, size_t granted) {
  if (!p) return;
  Pool& P = pool();
  std::lock_guard<std::mutex> g(P.mu);
  if (granted > P.stats.limit_bytes) {
    std::free(p);
    return;
  }
  P.evict_to(P.stats.limit_bytes - granted);
  P.free.emplace_back(granted, p);
  P.stats.pooled_bytes += granted;
}

void trim_cache_buffer_pool() {
  Pool& P = pool();
  std::lock_guard<std::mutex> g(P.mu);
  P.evict_to(0);
}

void set_cache_buffer_pool_limit(size_t bytes) {
  Pool& P = pool();
  std::lock_guard<std::mutex> g(P.mu);
  P.stats.limit_bytes = kSanitized ? 0 : bytes;
  P.evict_to(bytes);
}

CacheBufferPoolStats cache_buffer_pool_stats() {
  Pool& P = pool();
  std::lock_guard<std::mutex> g(P.mu);
  return P.stats;
}

}  // namespace kvf
