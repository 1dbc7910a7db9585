#include "core/kv_cache.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace kvf {
namespace {
int64_t nbytes(const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }
}  // namespace

int64_t LayerCache::length() const {
  if (!ragged()) return keys.defined() ? keys.size(2) : 0;
  int64_t n = 0;
  for (const auto& k : head_keys) n = std::max<int64_t>(n, k.size(0));
  return n;
}

int64_t LayerCache::head_length(int64_t b, int64_t h) const {
  if (!ragged()) return length();
  return head_keys.at(static_cast<size_t>(b * ragged_heads + h)).size(0);
}

int64_t LayerCache::bytes() const {
  int64_t n = nbytes(keys) + nbytes(values) + nbytes(keep_mask);
  for (size_t i = 0; i < head_keys.size(); ++i) n += nbytes(head_keys[i]) + nbytes(head_values[i]);
  return n;
}

void LayerCache::append(const at::Tensor& k, const at::Tensor& v) {
  const int64_t B = k.size(0), H = k.size(1), T = k.size(2);
  if (ragged()) {
    if (static_cast<int64_t>(head_keys.size()) != B * H) throw Error("cache: ragged layout has a different shape");
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        auto& hk = head_keys[static_cast<size_t>(b * H + h)];
        auto& hv = head_values[static_cast<size_t>(b * H + h)];
        hk = at::cat({hk, k[b][h]}, 0);
        hv = at::cat({hv, v[b][h]}, 0);
      }
    return;
  }
  if (!keys.defined() || keys.size(2) == 0) {
    keys = k.contiguous();
    values = v.contiguous();
  } else {
    keys = at::cat({keys, k}, 2);
    values = at::cat({values, v}, 2);
  }
  if (masked()) keep_mask = at::cat({keep_mask, at::ones({B, H, T}, keep_mask.options())}, 2);
}

void LayerCache::truncate(int64_t n) {
  if (n <= 0) return;
  if (ragged()) {
    for (size_t i = 0; i < head_keys.size(); ++i) {
      const int64_t len = head_keys[i].size(0);
      if (n > len) throw Error("cache: cannot drop " + std::to_string(n) + " entries from a head of " + std::to_string(len));
      head_keys[i] = head_keys[i].narrow(0, 0, len - n).clone();
      head_values[i] = head_values[i].narrow(0, 0, len - n).clone();
    }
    return;
  }
  const int64_t S = length();
  if (n > S) throw Error("cache: cannot drop " + std::to_string(n) + " entries from " + std::to_string(S));
  keys = keys.narrow(2, 0, S - n).contiguous();
  values = values.narrow(2, 0, S - n).contiguous();
  if (masked()) keep_mask = keep_mask.narrow(2, 0, S - n).contiguous();
}

void LayerCache::set_ragged(const at::Tensor& keys_packed, const at::Tensor& values_packed,
                            const std::vector<int64_t>& counts, int64_t heads) {
  head_keys.clear();
  head_values.clear();
  int64_t off = 0;
  for (int64_t c : counts) {
    head_keys.push_back(keys_packed.narrow(0, off, c).clone());
    head_values.push_back(values_packed.narrow(0, off, c).clone());
    off += c;
  }
  ragged_heads = heads;
  keys = at::Tensor();
  values = at::Tensor();
  keep_mask = at::Tensor();
}

int64_t KVCache::bytes() const {
  int64_t n = 0;
  for (const auto& l : layers) n += l.bytes();
  return n;
}

void KVCache::truncate(int64_t n) {
  for (auto& l : layers) l.truncate(n);
  seen_tokens -= n;
}

KVCache KVCache::clone() const {
  KVCache c(static_cast<int64_t>(layers.size()));
  c.seen_tokens = seen_tokens;
  auto cl = [](const at::Tensor& t) { return t.defined() ? t.clone() : t; };
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& s = layers[i];
    auto& d = c.layers[i];
    d.keys = cl(s.keys);
    d.values = cl(s.values);
    d.keep_mask = cl(s.keep_mask);
    d.ragged_heads = s.ragged_heads;
    for (size_t j = 0; j < s.head_keys.size(); ++j) {
      d.head_keys.push_back(s.head_keys[j].clone());
      d.head_values.push_back(s.head_values[j].clone());
    }
  }
  return c;
}

}  // namespace kvf
