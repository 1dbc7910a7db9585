#pragma once
// Derived quantities kvviz plots: kept fractions, per-token values for the text view, score ranges, and the
// comparison of two traces of the same context (per-head Jaccard overlap, difference map). Plain C++, no Qt.
#include <cstdint>
#include <vector>

#include "viz/model/trace.hpp"

namespace kvviz {

inline constexpr int64_t kAll = -1;  // "every layer" / "every head"

std::vector<double> kept_fraction_per_layer(const Trace& t);                // (L)
std::vector<double> kept_fraction_per_head(const Trace& t);                 // (L, H) row-major
double kept_fraction(const Trace& t);

// Finite score range of one layer (or of all layers with kAll): {lo, hi}; {0, 1} when nothing is finite.
struct Range {
  double lo = 0, hi = 1;
};
Range score_range(const Trace& t, int64_t layer);

// Colour range for display: the finite range, except that a value shared by many slots at the very top (kvpress
// fills protected slots, e.g. snapkv's window, with the maximum score) is left out, so those slots saturate
// instead of flattening every other score into one colour. `trimmed` says whether that happened.
Range display_range(const Trace& t, int64_t layer, bool* trimmed = nullptr);

enum class TokenValue { Score, Kept };
// Per-token value for the text view: the score (clamped into the layer's display_range, then scaled to [0, 1]
// per layer) or kept (0/1), averaged over heads and/or layers when `layer` / `head` is kAll.
std::vector<double> token_values(const Trace& t, TokenValue what, int64_t layer, int64_t head);

// Two traces of the same context: same layers, heads, seq and token ids; throws TraceError saying what differs.
void check_comparable(const Trace& a, const Trace& b);
// |A ∩ B| / |A ∪ B| of the kept sets per (layer, head); 1 when both keep nothing. (L, H) row-major.
std::vector<double> jaccard_per_head(const Trace& a, const Trace& b);
// Difference map of one layer, (H, S) row-major: 0 both evicted, 1 both kept, 2 kept only by A, 3 only by B.
enum DiffCode : uint8_t { kBothEvicted = 0, kBothKept = 1, kOnlyA = 2, kOnlyB = 3 };
std::vector<uint8_t> difference_map(const Trace& a, const Trace& b, int64_t layer);

}  // namespace kvviz
