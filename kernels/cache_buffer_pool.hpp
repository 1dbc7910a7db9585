#pragma once
// A bounded pool of freed compressed-cache buffers (host memory), reused by later compressions.
//
// Why: a fresh multi-MiB buffer costs page faults plus the kernel zeroing every page, and for a token-local press
// that is most of the compression step (knorm at S = 8192 on the 8B shape: 8.4 ms fresh, 4.0 ms reused). glibc
// already recycles freed blocks up to its 32 MiB mmap threshold; this pool does the same for the 2 MiB-aligned
// huge-page buffers kvforge's caches use, at any size. Like a caching allocator it keeps freed memory resident:
// at most the limit (KVF_CACHE_POOL_MIB, default 1024; 0 disables), and trim_cache_buffer_pool() gives it back.
// Built with AddressSanitizer the pool is off, so a use after free stays visible.
#include <cstddef>
#include <cstdint>

namespace kvf {

struct CacheBufferPoolStats {
  size_t pooled_bytes = 0;  // free buffers held now
  size_t limit_bytes = 0;
  uint64_t reused = 0;      // acquisitions served from the pool
  uint64_t fresh = 0;       // acquisitions that allocated
};

// A 2 MiB-aligned buffer of at least `bytes` (rounded up to 2 MiB): a pooled one when one fits with at most 1/8
// slack (a compressed cache must not sit in a much larger buffer, or it saves no memory), else a fresh one
// advised as transparent huge pages and populated. Sets *granted to the buffer's real size; throws
// std::bad_alloc on failure.
void* acquire_cache_buffer(size_t bytes, size_t* granted);
// Returns a buffer from acquire_cache_buffer (with its granted size); frees the oldest pooled ones past the limit.
void release_cache_buffer(void* p, size_t granted);

void trim_cache_buffer_pool();                    // frees every pooled buffer
void set_cache_buffer_pool_limit(size_t bytes);   // 0 disables (and trims); stays 0 under AddressSanitizer
CacheBufferPoolStats cache_buffer_pool_stats();

}  // namespace kvf
