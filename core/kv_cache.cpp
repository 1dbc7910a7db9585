#include "core/kv_cache.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "core/error.hpp"

namespace kvf {
namespace {
int64_t nbytes(const at::Tensor& t) { return t.defined() ? static_cast<int64_t>(t.nbytes()) : 0; }

// A dense cache's bytes: its store (with the room) when the view lives in it, else the view itself.
int64_t dense_bytes(const at::Tensor& view, const at::Tensor& store) {
  if (store.defined() && view.defined() && store.data_ptr() == view.data_ptr()) return nbytes(store);
  return nbytes(view);
}
}  // namespace

int64_t LayerCache::length() const {
  if (!ragged()) return keys.defined() ? keys.size(2) : 0;
  int64_t n = 0;
  for (int64_t l : head_len) n = std::max(n, l);
  return n;
}

int64_t LayerCache::head_length(int64_t b, int64_t h) const {
  if (!ragged()) return length();
  return head_len.at(static_cast<size_t>(b * ragged_heads + h));
}

at::Tensor LayerCache::head_keys(int64_t i) const {
  return packed_keys.narrow(0, head_start.at(static_cast<size_t>(i)), head_len.at(static_cast<size_t>(i)));
}
at::Tensor LayerCache::head_values(int64_t i) const {
  return packed_values.narrow(0, head_start.at(static_cast<size_t>(i)), head_len.at(static_cast<size_t>(i)));
}

int64_t LayerCache::bytes() const {
  return dense_bytes(keys, key_store) + dense_bytes(values, value_store) + nbytes(keep_mask) + nbytes(packed_keys) +
         nbytes(packed_values);
}

namespace {
// Row indices (on `dev`) of rows [from[i], from[i] + n) of every head i, head after head.
at::Tensor head_rows(const std::vector<int64_t>& from, int64_t n, const at::Device& dev) {
  auto idx = at::empty({static_cast<int64_t>(from.size()) * n}, at::kLong);
  int64_t* p = idx.data_ptr<int64_t>();
  for (size_t i = 0; i < from.size(); ++i)
    for (int64_t t = 0; t < n; ++t) *p++ = from[i] + t;
  return idx.to(dev);
}
// Whether `store` may be written in place: no copied LayerCache holds the same handle.
bool sole_owner(const at::Tensor& store) { return store.defined() && store.use_count() == 1; }

// Appends (B, H, T, D) to a dense cache view: in place into the room behind it when it owns the storage, else
// into a new (B, H, cap, D) storage with room for max(T, 256, S / 16) more positions (amortised O(1) per token
// instead of transformers' re-concatenation of the whole cache at every step).
void dense_append(at::Tensor& cache, at::Tensor& store, const at::Tensor& x) {
  const int64_t S = cache.size(2), T = x.size(2);
  if (sole_owner(store) && store.data_ptr() == cache.data_ptr() && S + T <= store.size(2)) {
    store.narrow(2, S, T).copy_(x);
  } else {
    const int64_t B = cache.size(0), H = cache.size(1), D = cache.size(3);
    store = at::empty({B, H, S + T + std::max<int64_t>({T, 256, S / 16}), D}, cache.options());
    store.narrow(2, 0, S).copy_(cache);
    store.narrow(2, S, T).copy_(x);
  }
  cache = store.narrow(2, 0, S + T);
}

}  // namespace

void LayerCache::append(const at::Tensor& k, const at::Tensor& v) {
  // As in Model::forward: views then do not pin their base (autograd view tracking would), so a store's handle
  // count says exactly whether another LayerCache shares it.
  c10::InferenceMode inference;
  const int64_t B = k.size(0), H = k.size(1), T = k.size(2);
  if (ragged()) {
    const size_t heads = head_len.size();
    if (static_cast<int64_t>(heads) != B * H) throw Error("cache: ragged layout has a different shape");
    // In place only into storage this cache alone holds: a copied LayerCache (tensor handles, as the pipeline's
    // prefill recording makes) must never see its rows change, so a shared one is regrown (copied) first.
    bool fits = sole_owner(packed_keys) && sole_owner(packed_values);
    for (size_t i = 0; i < heads; ++i) fits = fits && head_len[i] + T <= head_cap[i];
    if (!fits) {
      // Regrow every head with room for its next max(T, 64, len / 16) rows: amortised O(1) per appended row,
      // and at most ~6 % (or 64 rows per head) of the cache held in reserve.
      std::vector<int64_t> start(heads), cap(heads);
      int64_t rows = 0;
      for (size_t i = 0; i < heads; ++i) {
        start[i] = rows;
        cap[i] = head_len[i] + std::max<int64_t>({T, 64, head_len[i] / 16});
        rows += cap[i];
      }
      const int64_t D = packed_keys.size(1);
      auto nk = at::empty({rows, D}, packed_keys.options()), nv = at::empty({rows, D}, packed_values.options());
      for (size_t i = 0; i < heads; ++i) {  // one copy per head at a regrow, not per token
        nk.narrow(0, start[i], head_len[i]).copy_(head_keys(static_cast<int64_t>(i)));
        nv.narrow(0, start[i], head_len[i]).copy_(head_values(static_cast<int64_t>(i)));
      }
      packed_keys = nk, packed_values = nv;
      head_start = std::move(start), head_cap = std::move(cap);
    }
    std::vector<int64_t> at_end(heads);
    for (size_t i = 0; i < heads; ++i) at_end[i] = head_start[i] + head_len[i];
    const auto rows = head_rows(at_end, T, packed_keys.device());
    const int64_t D = packed_keys.size(1);
    packed_keys.index_copy_(0, rows, k.reshape({B * H * T, D}).to(packed_keys.scalar_type()));
    packed_values.index_copy_(0, rows, v.reshape({B * H * T, D}).to(packed_values.scalar_type()));
    for (auto& l : head_len) l += T;
    return;
  }
  if (!keys.defined() || keys.size(2) == 0) {
    keys = k.contiguous();  // a prefill: exactly its size (room comes with the first decoding step)
    values = v.contiguous();
  } else {
    dense_append(keys, key_store, k.to(keys.scalar_type()));
    dense_append(values, value_store, v.to(values.scalar_type()));
  }
  if (masked()) keep_mask = at::cat({keep_mask, at::ones({B, H, T}, keep_mask.options())}, 2);
}

void LayerCache::truncate(int64_t n) {
  if (n <= 0) return;
  if (ragged()) {  // the rows stay as room for the next append
    for (int64_t len : head_len)
      if (n > len) throw Error("cache: cannot drop " + std::to_string(n) + " entries from a head of " + std::to_string(len));
    for (auto& len : head_len) len -= n;
    return;
  }
  const int64_t S = length();
  if (n > S) throw Error("cache: cannot drop " + std::to_string(n) + " entries from " + std::to_string(S));
  keys = keys.narrow(2, 0, S - n);  // the dropped positions stay as room for the next append
  values = values.narrow(2, 0, S - n);
  if (masked()) keep_mask = keep_mask.narrow(2, 0, S - n).contiguous();
}

void LayerCache::set_dense(const at::Tensor& k, const at::Tensor& v) {
  keys = k, values = v;
  key_store = value_store = keep_mask = packed_keys = packed_values = at::Tensor();
  head_start.clear(), head_len.clear(), head_cap.clear();
  ragged_heads = 0;
}

void LayerCache::set_ragged(const at::Tensor& keys_packed, const at::Tensor& values_packed,
                            const std::vector<int64_t>& counts, int64_t heads) {
  int64_t off = 0;
  head_start.clear(), head_len.clear(), head_cap.clear();
  for (int64_t c : counts) {
    head_start.push_back(off), head_len.push_back(c), head_cap.push_back(c);
    off += c;
  }
  if (off != keys_packed.size(0) || off != values_packed.size(0))
    throw Error("cache: ragged counts add up to " + std::to_string(off) + " rows, the packed tensors have " +
                std::to_string(keys_packed.size(0)));
  packed_keys = keys_packed.contiguous();
  packed_values = values_packed.contiguous();
  ragged_heads = heads;
  keys = values = key_store = value_store = at::Tensor();
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
    d.packed_keys = cl(s.packed_keys);
    d.packed_values = cl(s.packed_values);
    d.head_start = s.head_start, d.head_len = s.head_len, d.head_cap = s.head_cap;
    d.ragged_heads = s.ragged_heads;
  }
  return c;
}

}  // namespace kvf
