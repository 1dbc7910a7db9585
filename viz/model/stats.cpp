#include "viz/model/stats.hpp"

#include <algorithm>
#include <cmath>

namespace kvviz {

std::vector<double> kept_fraction_per_layer(const Trace& t) {
  std::vector<double> out(static_cast<size_t>(t.layers), 0.0);
  for (int64_t l = 0; l < t.layers; ++l) {
    int64_t n = 0;
    for (uint8_t k : t.layer_kept(l)) n += k;
    out[static_cast<size_t>(l)] = static_cast<double>(n) / static_cast<double>(t.heads * t.seq);
  }
  return out;
}

std::vector<double> kept_fraction_per_head(const Trace& t) {
  std::vector<double> out(static_cast<size_t>(t.layers * t.heads), 0.0);
  for (int64_t l = 0; l < t.layers; ++l)
    for (int64_t h = 0; h < t.heads; ++h) {
      int64_t n = 0;
      for (int64_t s = 0; s < t.seq; ++s) n += t.kept[t.index(l, h, s)];
      out[static_cast<size_t>(l * t.heads + h)] = static_cast<double>(n) / static_cast<double>(t.seq);
    }
  return out;
}

double kept_fraction(const Trace& t) {
  int64_t n = 0;
  for (uint8_t k : t.kept) n += k;
  return t.kept.empty() ? 0.0 : static_cast<double>(n) / static_cast<double>(t.kept.size());
}

Range score_range(const Trace& t, int64_t layer) {
  double lo = INFINITY, hi = -INFINITY;
  const int64_t l0 = layer == kAll ? 0 : layer, l1 = layer == kAll ? t.layers : layer + 1;
  for (int64_t l = l0; l < l1; ++l)
    for (float v : t.layer_scores(l))
      if (std::isfinite(v)) {
        lo = std::min<double>(lo, v);
        hi = std::max<double>(hi, v);
      }
  if (!(lo <= hi)) return {};
  if (lo == hi) return {lo, lo + 1};
  return {lo, hi};
}

Range display_range(const Trace& t, int64_t layer, bool* trimmed) {
  if (trimmed) *trimmed = false;
  const Range full = score_range(t, layer);
  const int64_t l0 = layer == kAll ? 0 : layer, l1 = layer == kAll ? t.layers : layer + 1;
  int64_t at_top = 0, n = 0;
  double below = -INFINITY;
  for (int64_t l = l0; l < l1; ++l)
    for (float v : t.layer_scores(l)) {
      if (!std::isfinite(v)) continue;
      ++n;
      if (v >= full.hi) ++at_top;
      else below = std::max<double>(below, v);
    }
  if (at_top >= std::max<int64_t>(2, n / 100) && below > full.lo) {
    if (trimmed) *trimmed = true;
    return {full.lo, below};
  }
  return full;
}

std::vector<double> token_values(const Trace& t, TokenValue what, int64_t layer, int64_t head) {
  std::vector<double> out(static_cast<size_t>(t.seq), 0.0);
  const int64_t l0 = layer == kAll ? 0 : layer, l1 = layer == kAll ? t.layers : layer + 1;
  const int64_t h0 = head == kAll ? 0 : head, h1 = head == kAll ? t.heads : head + 1;
  for (int64_t l = l0; l < l1; ++l) {
    const Range r = what == TokenValue::Score ? display_range(t, l) : Range{};
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t s = 0; s < t.seq; ++s) {
        double v;
        if (what == TokenValue::Kept) {
          v = t.kept[t.index(l, h, s)];
        } else {
          const double x = std::clamp<double>(t.score(l, h, s), r.lo, r.hi);  // ±inf -> the range's ends
          v = (x - r.lo) / (r.hi - r.lo);
        }
        out[static_cast<size_t>(s)] += v;
      }
  }
  const double n = static_cast<double>((l1 - l0) * (h1 - h0));
  for (double& v : out) v /= n;
  return out;
}

void check_comparable(const Trace& a, const Trace& b) {
  if (a.layers != b.layers || a.heads != b.heads)
    throw TraceError("cannot compare: '" + a.path + "' has " + std::to_string(a.layers) + " layers x " +
                     std::to_string(a.heads) + " heads, '" + b.path + "' has " + std::to_string(b.layers) + " x " +
                     std::to_string(b.heads) + " (different models?)");
  if (a.seq != b.seq || a.token_ids != b.token_ids)
    throw TraceError("cannot compare: '" + a.path + "' and '" + b.path + "' do not trace the same context tokens (" +
                     std::to_string(a.seq) + " vs " + std::to_string(b.seq) + " tokens)");
}

std::vector<double> jaccard_per_head(const Trace& a, const Trace& b) {
  check_comparable(a, b);
  std::vector<double> out(static_cast<size_t>(a.layers * a.heads), 1.0);
  for (int64_t l = 0; l < a.layers; ++l)
    for (int64_t h = 0; h < a.heads; ++h) {
      int64_t inter = 0, uni = 0;
      for (int64_t s = 0; s < a.seq; ++s) {
        const bool x = a.is_kept(l, h, s), y = b.is_kept(l, h, s);
        inter += x && y;
        uni += x || y;
      }
      if (uni) out[static_cast<size_t>(l * a.heads + h)] = static_cast<double>(inter) / static_cast<double>(uni);
    }
  return out;
}

std::vector<uint8_t> difference_map(const Trace& a, const Trace& b, int64_t layer) {
  check_comparable(a, b);
  if (layer < 0 || layer >= a.layers) throw TraceError("difference_map: layer out of range");
  std::vector<uint8_t> out(static_cast<size_t>(a.heads * a.seq));
  for (int64_t h = 0; h < a.heads; ++h)
    for (int64_t s = 0; s < a.seq; ++s) {
      const bool x = a.is_kept(layer, h, s), y = b.is_kept(layer, h, s);
      out[static_cast<size_t>(h * a.seq + s)] = x && y ? kBothKept : x ? kOnlyA : y ? kOnlyB : kBothEvicted;
    }
  return out;
}

}  // namespace kvviz
