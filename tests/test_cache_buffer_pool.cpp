// The pool of freed compressed-cache buffers (kernels/cache_buffer_pool.hpp): reuse, the slack rule that keeps a
// compressed cache from sitting in a much larger buffer, the limit, and tensors returning their buffers.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>

#include <cstring>
#include <thread>
#include <vector>

#include "kernels/cache_buffer_pool.hpp"
#include "kernels/press_inputs.hpp"

namespace {

constexpr size_t MiB = size_t{1} << 20;

// Sets the pool's limit for one test and restores it (emptying the pool) afterwards.
struct PoolLimit {
  size_t saved;
  explicit PoolLimit(size_t bytes) : saved(kvf::cache_buffer_pool_stats().limit_bytes) {
    kvf::trim_cache_buffer_pool();
    kvf::set_cache_buffer_pool_limit(bytes);
  }
  ~PoolLimit() {
    kvf::trim_cache_buffer_pool();
    kvf::set_cache_buffer_pool_limit(saved);
  }
  bool on() const { return kvf::cache_buffer_pool_stats().limit_bytes > 0; }
};

}  // namespace

TEST_CASE("a released cache buffer is reused for a request it fits with at most 1/8 slack", "[cache-pool]") {
  PoolLimit limit(256 * MiB);
  if (!limit.on()) {
    WARN("skipped: this build has AddressSanitizer, which keeps the pool off so use-after-free stays visible");
    return;
  }
  size_t g = 0;
  void* p = kvf::acquire_cache_buffer(16 * MiB - 5, &g);
  CHECK(g == 16 * MiB);  // rounded up to 2 MiB pages
  std::memset(p, 1, g);
  kvf::release_cache_buffer(p, g);
  CHECK(kvf::cache_buffer_pool_stats().pooled_bytes == 16 * MiB);

  auto before = kvf::cache_buffer_pool_stats();
  size_t g2 = 0;
  void* q = kvf::acquire_cache_buffer(15 * MiB, &g2);  // wants 16 MiB after rounding: exact fit
  CHECK(q == p);
  CHECK(g2 == 16 * MiB);
  CHECK(kvf::cache_buffer_pool_stats().reused == before.reused + 1);
  CHECK(kvf::cache_buffer_pool_stats().pooled_bytes == 0);
  kvf::release_cache_buffer(q, g2);

  // 16 MiB for a 14 MiB request is 1/7 slack: too much, a fresh buffer.
  size_t g3 = 0;
  void* r = kvf::acquire_cache_buffer(14 * MiB, &g3);
  CHECK(r != p);
  CHECK(g3 == 14 * MiB);
  CHECK(kvf::cache_buffer_pool_stats().fresh == before.fresh + 1);
  kvf::release_cache_buffer(r, g3);
  // Both now pooled; a 14 MiB request takes the 14 MiB one, not the larger.
  size_t g4 = 0;
  CHECK(kvf::acquire_cache_buffer(13 * MiB, &g4) == r);
  kvf::release_cache_buffer(r, g4);
}

TEST_CASE("the pool keeps at most its limit and frees the oldest buffers first", "[cache-pool]") {
  PoolLimit limit(40 * MiB);
  if (!limit.on()) {
    WARN("skipped: this build has AddressSanitizer, which keeps the pool off so use-after-free stays visible");
    return;
  }
  size_t ga = 0, gb = 0, gc = 0, gd = 0;
  void* a = kvf::acquire_cache_buffer(16 * MiB, &ga);
  void* b = kvf::acquire_cache_buffer(18 * MiB, &gb);
  void* c = kvf::acquire_cache_buffer(20 * MiB, &gc);
  void* d = kvf::acquire_cache_buffer(64 * MiB, &gd);
  kvf::release_cache_buffer(a, ga);
  kvf::release_cache_buffer(b, gb);
  CHECK(kvf::cache_buffer_pool_stats().pooled_bytes == 34 * MiB);
  kvf::release_cache_buffer(c, gc);  // 54 MiB > 40: the oldest (a) goes
  CHECK(kvf::cache_buffer_pool_stats().pooled_bytes == 38 * MiB);
  kvf::release_cache_buffer(d, gd);  // larger than the limit: freed at once
  CHECK(kvf::cache_buffer_pool_stats().pooled_bytes == 38 * MiB);
  size_t g = 0;
  void* e = kvf::acquire_cache_buffer(16 * MiB, &g);  // a is gone; b (18 MiB, 1/8 slack) serves it
  CHECK(e == b);
  CHECK(g == 18 * MiB);
  kvf::release_cache_buffer(e, g);

  kvf::set_cache_buffer_pool_limit(0);  // disables and empties
  CHECK(kvf::cache_buffer_pool_stats().pooled_bytes == 0);
  void* f = kvf::acquire_cache_buffer(16 * MiB, &g);
  kvf::release_cache_buffer(f, g);
  CHECK(kvf::cache_buffer_pool_stats().pooled_bytes == 0);
}

TEST_CASE("compressed-cache tensors return their buffers to the pool when freed", "[cache-pool]") {
  PoolLimit limit(256 * MiB);
  if (!limit.on()) {
    WARN("skipped: this build has AddressSanitizer, which keeps the pool off so use-after-free stays visible");
    return;
  }
  void* first = nullptr;
  {
    at::Tensor t = kvf::empty_cache_buffer(32768, 128);  // 16 MiB: a pooled buffer
    REQUIRE(t.sizes() == at::IntArrayRef({32768, 128}));
    t.fill_(2.0f);
    first = t.data_ptr();
  }
  CHECK(kvf::cache_buffer_pool_stats().pooled_bytes == 16 * MiB);
  at::Tensor u = kvf::empty_cache_buffer(32000, 128);
  CHECK(u.data_ptr() == first);
  u.fill_(3.0f);
  CHECK(u.sum().item<double>() == 3.0 * 32000 * 128);
  at::Tensor small = kvf::empty_cache_buffer(16, 128);  // below 8 MiB: at::empty, never pooled
  CHECK(small.numel() == 16 * 128);
}

TEST_CASE("the pool serves two threads at once", "[cache-pool]") {
  PoolLimit limit(64 * MiB);
  const auto before = kvf::cache_buffer_pool_stats();
  constexpr int kRounds = 100;
  auto work = [](int seed) {
    for (int i = 0; i < kRounds; ++i) {
      size_t g = 0;
      const size_t want = (8 + 2 * ((i + seed) % 3)) * MiB;
      auto* p = static_cast<unsigned char*>(kvf::acquire_cache_buffer(want, &g));
      p[0] = static_cast<unsigned char>(i);
      p[want - 1] = static_cast<unsigned char>(seed);
      kvf::release_cache_buffer(p, g);
    }
  };
  std::thread t1(work, 0), t2(work, 1);
  t1.join();
  t2.join();
  const auto after = kvf::cache_buffer_pool_stats();
  CHECK(after.reused + after.fresh - before.reused - before.fresh == 2 * kRounds);
  CHECK(after.pooled_bytes <= after.limit_bytes);
}
