#pragma once
// A kvforge trace (docs/formats.md, "Trace"): for one run, per layer and kv head the scores the press selected on
// and the kept mask, plus the context tokens and a description of the run. Plain C++ (no Qt): read with
// load_trace, which validates everything and throws TraceError with a message naming the file and the fault —
// truncated, corrupted, wrong version, or tensors that disagree with the metadata.
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvviz {

struct TraceError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline constexpr int kTraceVersion = 1;  // the version this reader understands

struct Trace {
  std::string path;
  int version = kTraceVersion;
  int64_t layers = 0, heads = 0, seq = 0;  // heads = kv heads
  std::string press, backend, model_name, model_path, context_file, created_utc;
  double compression_ratio = 0;
  bool scores_available = true;         // false at ratio 0 (the press scored nothing; scores are 0)
  std::vector<float> scores;            // (L, H, S) row-major; may hold ±inf for protected slots
  std::vector<uint8_t> kept;            // (L, H, S) 0/1
  std::vector<int32_t> token_ids;       // (S)
  std::vector<std::string> tokens;      // (S) text pieces (U+FFFD where a token holds part of a character)
  std::vector<std::string> questions, answers;
  std::string metadata_json;            // the full JSON metadata, as stored

  size_t index(int64_t l, int64_t h, int64_t s) const { return static_cast<size_t>((l * heads + h) * seq + s); }
  float score(int64_t l, int64_t h, int64_t s) const { return scores[index(l, h, s)]; }
  bool is_kept(int64_t l, int64_t h, int64_t s) const { return kept[index(l, h, s)] != 0; }
  std::span<const float> layer_scores(int64_t l) const { return {scores.data() + index(l, 0, 0), size_t(heads * seq)}; }
  std::span<const uint8_t> layer_kept(int64_t l) const { return {kept.data() + index(l, 0, 0), size_t(heads * seq)}; }
  // "snapkv(window_size=16) @ 0.5" — for titles and legends.
  std::string label() const;
};

// Throws TraceError; never crashes on bad input.
Trace load_trace(const std::filesystem::path& path);

// Writes a trace (used by tests and by kvviz's live mode). Validates sizes first; atomic (temp + rename).
void save_trace(const std::filesystem::path& path, const Trace& t);

}  // namespace kvviz
