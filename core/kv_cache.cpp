#include "core/kv_cache.hpp"

#include <ATen/ATen.h>

namespace kvf {

int64_t LayerCache::bytes() const {
  return (keys.defined() ? static_cast<int64_t>(keys.nbytes()) : 0) +
         (values.defined() ? static_cast<int64_t>(values.nbytes()) : 0);
}

int64_t KVCache::bytes() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.bytes();
  return n;
}

KVCache KVCache::clone() const {
  KVCache c(static_cast<int64_t>(layers.size()));
  c.seen_tokens = seen_tokens;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].keys.defined()) c.layers[i].keys = layers[i].keys.clone();
    if (layers[i].values.defined()) c.layers[i].values = layers[i].values.clone();
  }
  return c;
}

}  // namespace kvf
