#pragma once
// kvfigures, data side (no Qt): reading `kvforge sweep` JSONL results and `kvforge bench speed-memory` CSV files,
// and turning them into what each figure plots (and writes as CSV). Every input error names the file, the line
// and the field.
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvviz::figures {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ------------------------------------------------------------------------------------------------ sweep JSONL
// One finished cell of a `kvforge sweep` results file (experiments/cmd_sweep.cpp writes the rows; the fields
// used here).
struct SweepCell {
  std::string file;
  int line = 0;
  std::string key, dataset, press, task, model;
  double ratio = 0;
  int64_t length = 0;
  double score = 0;
  int64_t num_samples = 0;
  int depth = -1;  // needle grid (dataset needle_in_haystack, task "depth<d>"), else -1
};

// Reads results files (a torn last line, as an interrupted sweep leaves, is skipped with a warning; any other
// malformed line or a missing/mistyped field is an InputError). A key present in several files is kept once (the
// first; a different score is reported in `warnings`).
std::vector<SweepCell> read_sweep(const std::vector<std::string>& paths, std::vector<std::string>* warnings);

// Presses in plotting order: no_press first, then by first appearance.
std::vector<std::string> press_order(const std::vector<SweepCell>& cells);

// Score vs compression ratio, one figure per context length.
struct CurvePoint {
  std::string press;
  double ratio = 0;
  std::string task;  // a task name, or "average"
  int64_t length = 0;
  double score = 0;
};
struct RatioFigure {
  int64_t length = 0;
  std::vector<std::string> tasks;    // panels (the average panel is added when there are >= 2 tasks)
  std::vector<std::string> presses;  // no_press first
  std::vector<CurvePoint> points;    // per task, then the "average" points; sorted by press order, ratio
  std::string models;                // "default" or "a, b"
  int64_t min_samples = 0, max_samples = 0;
  bool has_average() const { return tasks.size() >= 2; }
};
// Needle-grid cells enter as one task, "needle_in_haystack" (mean over depths). `tasks` empty = all;
// `length` unset = every length present. No matching rows -> InputError naming the files and what is present.
std::vector<RatioFigure> ratio_figures(const std::vector<SweepCell>& cells, const std::vector<std::string>& paths,
                                       const std::vector<std::string>& tasks, std::optional<int64_t> length,
                                       std::vector<std::string>* warnings);
std::string ratio_csv(const RatioFigure& f);  // press,ratio,task,length,score

// Needle in a haystack: score by context length x needle depth, one panel per (press, ratio).
struct NeedlePanel {
  std::string press;
  double ratio = 0;
  std::map<std::pair<int64_t, int>, double> score;  // (length, depth) -> score
};
struct NeedleFigure {
  std::vector<int64_t> lengths;
  std::vector<int> depths;
  std::vector<NeedlePanel> panels;
  std::string models;
  int64_t min_samples = 0, max_samples = 0;
};
NeedleFigure needle_figure(const std::vector<SweepCell>& cells, const std::vector<std::string>& paths,
                           std::optional<std::string> press, std::optional<double> ratio);
std::string needle_csv(const NeedleFigure& f);  // press,ratio,length,depth,score

// ------------------------------------------------------------------------------------------------ bench CSV
// One row of `kvforge bench speed-memory` (experiments/eval/eval_bench.cpp).
struct BenchRow {
  std::string file;
  int line = 0;
  std::string model, dtype, press, press_spec;
  int64_t layers = 0;
  double ratio = 0;
  int64_t context_tokens = 0;
  double prefill_s = 0, compression_s = 0, decode_s = 0, decode_tokens_per_s = 0;
  int64_t decode_tokens = 0, kv_bytes_before = 0, kv_bytes_after = 0, weight_bytes = 0, rss_before_bytes = 0,
          peak_rss_bytes = 0;
};
// RFC 4180 fields of one line (quotes, doubled quotes); an unterminated quote -> false.
bool split_csv_line(const std::string& line, std::vector<std::string>* fields);
std::vector<BenchRow> read_bench(const std::vector<std::string>& paths, std::vector<std::string>* warnings);

struct SpeedSeries {
  std::string label;  // "ratio 0.50" (or "knorm 0.50" when several presses)
  std::string press;
  double ratio = 0;
  std::vector<BenchRow> rows;  // by context length
};
struct SpeedFigure {
  std::vector<SpeedSeries> series;
  std::vector<int64_t> lengths;
  std::map<int64_t, int64_t> kv_bytes_before;  // uncompressed cache per length
  std::string title;                           // "smollm2-135m · 2 layers · bfloat16 · knorm"
};
SpeedFigure speed_figure(const std::vector<BenchRow>& rows, const std::vector<std::string>& paths,
                         std::vector<std::string>* warnings);
// press,ratio,context_tokens,peak_rss_mib,kv_mib_before,kv_mib_after,prefill_s,compression_s,decode_tokens_per_s
std::string speed_csv(const SpeedFigure& f);

std::string fmt_ratio(double r);  // "%.2f"
std::string join(const std::vector<std::string>& v, const std::string& sep = ", ");

}  // namespace kvviz::figures
