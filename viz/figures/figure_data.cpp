#include "viz/figures/figure_data.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace kvviz::figures {
namespace {

using nlohmann::json;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

std::string where(const std::string& file, int line) { return quoted(file) + " line " + std::to_string(line); }

std::string slurp(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(std::string("cannot read ") + what + " " + quoted(path) + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw InputError(std::string("cannot read ") + what + " " + quoted(path) + ": read error");
  return ss.str();
}

// Lines of `text` with their numbers; `*torn` = the last line has no newline.
std::vector<std::pair<int, std::string>> lines_of(const std::string& text, bool* torn) {
  std::vector<std::pair<int, std::string>> out;
  size_t pos = 0;
  int n = 0;
  *torn = false;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    ++n;
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.emplace_back(n, line);
    if (nl == std::string::npos) {
      *torn = true;
      break;
    }
    pos = nl + 1;
  }
  return out;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; }

const json& field(const json& row, const char* name, const std::string& at) {
  if (!row.contains(name)) throw InputError(at + ": field '" + name + "' is missing (is this a `kvforge sweep` results file?)");
  return row[name];
}

std::string str_field(const json& row, const char* name, const std::string& at) {
  const json& v = field(row, name, at);
  if (!v.is_string()) throw InputError(at + ": field '" + name + "' must be a string (got " + v.dump() + ")");
  return v.get<std::string>();
}

double num_field(const json& row, const char* name, const std::string& at) {
  const json& v = field(row, name, at);
  if (!v.is_number()) throw InputError(at + ": field '" + name + "' must be a number (got " + v.dump() + ")");
  const double d = v.get<double>();
  if (!std::isfinite(d)) throw InputError(at + ": field '" + name + "' is not finite");
  return d;
}

int64_t int_field(const json& row, const char* name, const std::string& at) {
  const json& v = field(row, name, at);
  if (!v.is_number_integer()) throw InputError(at + ": field '" + name + "' must be an integer (got " + v.dump() + ")");
  return v.get<int64_t>();
}

int64_t ratio_key(double r) { return std::llround(r * 1e6); }

std::string files_list(const std::vector<std::string>& paths) {
  std::vector<std::string> q;
  for (const auto& p : paths) q.push_back(quoted(p));
  return join(q);
}

std::string num(double x) {
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", x);
  return b;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

template <class T>
std::string values_list(const std::set<T>& s) {
  std::vector<std::string> v;
  for (const auto& x : s) {
    if constexpr (std::is_same_v<T, std::string>) v.push_back(x);
    else v.push_back(std::to_string(x));
  }
  return v.empty() ? std::string("none") : join(v);
}

std::string models_of(const std::set<std::string>& m) { return m.empty() ? std::string("?") : values_list(m); }

}  // namespace

std::string fmt_ratio(double r) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", r);
  return b;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string o;
  for (const auto& s : v) o += (o.empty() ? "" : sep) + s;
  return o;
}

// ------------------------------------------------------------------------------------------------ sweep JSONL

std::vector<SweepCell> read_sweep(const std::vector<std::string>& paths, std::vector<std::string>* warnings) {
  std::vector<SweepCell> cells;
  std::map<std::string, size_t> seen;  // key -> index in cells
  for (const auto& path : paths) {
    bool torn = false;
    const auto lines = lines_of(slurp(path, "results file"), &torn);
    for (size_t i = 0; i < lines.size(); ++i) {
      const auto& [n, text] = lines[i];
      if (blank(text)) continue;
      const std::string at = where(path, n);
      json row;
      try {
        row = json::parse(text);
      } catch (const std::exception& e) {
        if (i + 1 == lines.size() && torn) {  // what a kill during the append leaves; the sweep reruns that cell
          if (warnings) warnings->push_back(at + ": torn last line (an interrupted sweep?), skipped");
          continue;
        }
        throw InputError(at + ": not a JSON object (" + e.what() + ")");
      }
      if (!row.is_object()) throw InputError(at + ": not a JSON object");
      SweepCell c;
      c.file = path;
      c.line = n;
      c.key = str_field(row, "key", at);
      c.dataset = row.contains("dataset") ? str_field(row, "dataset", at) : std::string("ruler");
      c.press = str_field(row, "press_name", at);
      c.task = str_field(row, "task", at);
      c.ratio = num_field(row, "compression_ratio", at);
      c.length = int_field(row, "length", at);
      c.score = num_field(row, "score", at);
      c.model = row.contains("model") && row["model"].is_string() ? row["model"].get<std::string>() : std::string();
      c.num_samples = row.contains("num_samples") ? int_field(row, "num_samples", at) : 0;
      if (c.press.empty()) throw InputError(at + ": field 'press_name' is empty");
      if (!(c.ratio >= 0.0 && c.ratio < 1.0))
        throw InputError(at + ": field 'compression_ratio' must be in [0, 1) (got " + num(c.ratio) + ")");
      if (!(c.score >= 0.0 && c.score <= 100.0))
        throw InputError(at + ": field 'score' must be in [0, 100] (got " + num(c.score) + ")");
      if (c.length <= 0) throw InputError(at + ": field 'length' must be positive (got " + std::to_string(c.length) + ")");
      if (c.dataset == "needle_in_haystack") {
        char* end = nullptr;
        const long d = c.task.rfind("depth", 0) == 0 ? std::strtol(c.task.c_str() + 5, &end, 10) : -1;
        if (c.task.size() <= 5 || !end || *end != '\0' || d < 0 || d > 100)
          throw InputError(at + ": field 'task' of a needle_in_haystack row must be depth<0..100> (got '" + c.task + "')");
        c.depth = static_cast<int>(d);
      }
      if (auto it = seen.find(c.key); it != seen.end()) {
        const SweepCell& first = cells[it->second];
        if (warnings && first.score != c.score)
          warnings->push_back(at + ": cell " + c.key + " also in " + where(first.file, first.line) +
                              " with another score; kept the first");
        continue;
      }
      seen.emplace(c.key, cells.size());
      cells.push_back(std::move(c));
    }
  }
  return cells;
}

std::vector<std::string> press_order(const std::vector<SweepCell>& cells) {
  std::vector<std::string> out;
  for (const auto& c : cells)
    if (c.press == "no_press") {
      out.push_back("no_press");
      break;
    }
  for (const auto& c : cells)
    if (std::find(out.begin(), out.end(), c.press) == out.end()) out.push_back(c.press);
  return out;
}

std::vector<RatioFigure> ratio_figures(const std::vector<SweepCell>& all, const std::vector<std::string>& paths,
                                       const std::vector<std::string>& want_tasks, std::optional<int64_t> want_length,
                                       std::vector<std::string>* warnings) {
  if (all.empty()) throw InputError(files_list(paths) + ": no result rows");
  auto task_of = [](const SweepCell& c) { return c.depth >= 0 ? std::string("needle_in_haystack") : c.task; };
  std::set<std::string> tasks_present;
  std::set<int64_t> lengths_present;
  for (const auto& c : all) {
    tasks_present.insert(task_of(c));
    lengths_present.insert(c.length);
  }
  for (const auto& t : want_tasks)
    if (!tasks_present.count(t))
      throw InputError(files_list(paths) + ": no rows for task '" + t + "' (tasks present: " + values_list(tasks_present) + ")");
  if (want_length && !lengths_present.count(*want_length))
    throw InputError(files_list(paths) + ": no rows at length " + std::to_string(*want_length) +
                     " (lengths present: " + values_list(lengths_present) + ")");
  std::vector<SweepCell> cells;
  for (const auto& c : all)
    if ((want_tasks.empty() || std::find(want_tasks.begin(), want_tasks.end(), task_of(c)) != want_tasks.end()) &&
        (!want_length || c.length == *want_length))
      cells.push_back(c);
  if (cells.empty())
    throw InputError(files_list(paths) + ": no rows match the task and length given");

  std::vector<RatioFigure> figs;
  std::set<int64_t> lengths;
  for (const auto& c : cells) lengths.insert(c.length);
  for (const int64_t L : lengths) {
    RatioFigure f;
    f.length = L;
    std::vector<SweepCell> at;
    std::set<std::string> models;
    for (const auto& c : cells)
      if (c.length == L) {
        at.push_back(c);
        if (!c.model.empty()) models.insert(c.model);
        if (c.num_samples > 0) {
          f.min_samples = f.min_samples ? std::min(f.min_samples, c.num_samples) : c.num_samples;
          f.max_samples = std::max(f.max_samples, c.num_samples);
        }
        if (std::find(f.tasks.begin(), f.tasks.end(), task_of(c)) == f.tasks.end()) f.tasks.push_back(task_of(c));
      }
    f.models = models_of(models);
    f.presses = press_order(at);
    // (press, ratio, task) -> sum, count (the needle grid: a mean over depths)
    std::map<std::tuple<std::string, int64_t, std::string>, std::pair<double, int>> acc;
    std::map<std::pair<std::string, int64_t>, double> ratio_of;
    for (const auto& c : at) {
      auto& a = acc[{c.press, ratio_key(c.ratio), task_of(c)}];
      a.first += c.score;
      a.second += 1;
      ratio_of[{c.press, ratio_key(c.ratio)}] = c.ratio;
    }
    for (const auto& p : f.presses) {
      for (const auto& [pr, r] : ratio_of) {
        if (pr.first != p) continue;
        double sum = 0;
        std::vector<std::string> missing;
        for (const auto& t : f.tasks) {
          auto it = acc.find({p, pr.second, t});
          if (it == acc.end()) {
            missing.push_back(t);
            continue;
          }
          const double s = it->second.first / it->second.second;
          f.points.push_back({p, r, t, L, s});
          sum += s;
        }
        if (!f.has_average()) continue;
        if (missing.empty()) {
          f.points.push_back({p, r, "average", L, sum / static_cast<double>(f.tasks.size())});
        } else if (warnings) {
          warnings->push_back(p + " at ratio " + fmt_ratio(r) + ", length " + std::to_string(L) + ": no row for " +
                              join(missing) + ", so no point in the average panel");
        }
      }
    }
    figs.push_back(std::move(f));
  }
  return figs;
}

std::string ratio_csv(const RatioFigure& f) {
  std::string o = "press,ratio,task,length,score\n";
  for (const auto& p : f.points)
    o += csv_field(p.press) + "," + fmt_ratio(p.ratio) + "," + csv_field(p.task) + "," + std::to_string(p.length) + "," +
         num(p.score) + "\n";
  return o;
}

NeedleFigure needle_figure(const std::vector<SweepCell>& all, const std::vector<std::string>& paths,
                           std::optional<std::string> press, std::optional<double> ratio) {
  std::vector<SweepCell> cells;
  std::set<std::string> datasets, combos;
  for (const auto& c : all) {
    datasets.insert(c.dataset);
    if (c.depth < 0) continue;
    combos.insert(c.press + " " + fmt_ratio(c.ratio));
    if (press && c.press != *press) continue;
    if (ratio && ratio_key(c.ratio) != ratio_key(*ratio)) continue;
    cells.push_back(c);
  }
  if (combos.empty())
    throw InputError(files_list(paths) + ": no needle_in_haystack rows (datasets present: " + values_list(datasets) +
                     "); make them with `kvforge sweep --dataset needle_in_haystack --needle_depth 0,25,50,75,100 ...`");
  if (cells.empty())
    throw InputError(files_list(paths) + ": no needle_in_haystack rows for" + (press ? " press '" + *press + "'" : "") +
                     (ratio ? " ratio " + fmt_ratio(*ratio) : "") + " (present: " + values_list(combos) + ")");
  NeedleFigure f;
  std::set<int64_t> lengths;
  std::set<int> depths;
  std::set<std::string> models;
  for (const auto& c : cells) {
    lengths.insert(c.length);
    depths.insert(c.depth);
    if (!c.model.empty()) models.insert(c.model);
    if (c.num_samples > 0) {
      f.min_samples = f.min_samples ? std::min(f.min_samples, c.num_samples) : c.num_samples;
      f.max_samples = std::max(f.max_samples, c.num_samples);
    }
  }
  f.lengths.assign(lengths.begin(), lengths.end());
  f.depths.assign(depths.begin(), depths.end());
  f.models = models_of(models);
  for (const auto& p : press_order(cells)) {
    std::map<int64_t, NeedlePanel> by_ratio;
    for (const auto& c : cells) {
      if (c.press != p) continue;
      auto& panel = by_ratio[ratio_key(c.ratio)];
      panel.press = p;
      panel.ratio = c.ratio;
      panel.score[{c.length, c.depth}] = c.score;
    }
    for (auto& [k, panel] : by_ratio) f.panels.push_back(std::move(panel));
  }
  return f;
}

std::string needle_csv(const NeedleFigure& f) {
  std::string o = "press,ratio,length,depth,score\n";
  for (const auto& p : f.panels)
    for (const auto& [ld, s] : p.score)
      o += csv_field(p.press) + "," + fmt_ratio(p.ratio) + "," + std::to_string(ld.first) + "," +
           std::to_string(ld.second) + "," + num(s) + "\n";
  return o;
}

// ------------------------------------------------------------------------------------------------ bench CSV

bool split_csv_line(const std::string& line, std::vector<std::string>* fields) {
  fields->clear();
  std::string cur;
  bool in_quotes = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        cur += c;
      }
    } else if (c == '"') {
      in_quotes = true;
    } else if (c == ',') {
      fields->push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  fields->push_back(cur);
  return !in_quotes;
}

std::vector<BenchRow> read_bench(const std::vector<std::string>& paths, std::vector<std::string>* warnings) {
  (void)warnings;
  static const char* required[] = {"model",          "layers",          "dtype",          "press_name",
                                   "press_spec",     "compression_ratio", "context_tokens", "prefill_s",
                                   "compression_s",  "decode_tokens",   "decode_s",       "decode_tokens_per_s",
                                   "kv_bytes_before", "kv_bytes_after", "weight_bytes",   "rss_before_bytes",
                                   "peak_rss_bytes"};
  std::vector<BenchRow> rows;
  for (const auto& path : paths) {
    bool torn = false;
    const auto lines = lines_of(slurp(path, "bench CSV"), &torn);
    size_t first = 0;
    while (first < lines.size() && blank(lines[first].second)) ++first;
    if (first == lines.size()) throw InputError(quoted(path) + " is empty (expected the CSV of `kvforge bench speed-memory`)");
    std::vector<std::string> header;
    if (!split_csv_line(lines[first].second, &header))
      throw InputError(where(path, lines[first].first) + ": unterminated quote in the header");
    std::map<std::string, size_t> col;
    for (size_t i = 0; i < header.size(); ++i) col[header[i]] = i;
    for (const char* r : required)
      if (!col.count(r))
        throw InputError(where(path, lines[first].first) + ": missing column '" + r +
                         "' (is this the CSV of `kvforge bench speed-memory`?)");
    std::vector<std::string> f;
    for (size_t i = first + 1; i < lines.size(); ++i) {
      const auto& [n, text] = lines[i];
      if (blank(text)) continue;
      const std::string at = where(path, n);
      if (!split_csv_line(text, &f)) throw InputError(at + ": unterminated quote");
      if (f.size() != header.size())
        throw InputError(at + ": " + std::to_string(f.size()) + " fields, the header has " + std::to_string(header.size()));
      auto get = [&](const char* name) -> const std::string& { return f[col.at(name)]; };
      auto dbl = [&](const char* name) {
        const std::string& s = get(name);
        char* end = nullptr;
        errno = 0;
        const double d = std::strtod(s.c_str(), &end);
        if (s.empty() || !end || *end != '\0' || errno == ERANGE || !std::isfinite(d))
          throw InputError(at + ": field '" + name + "' is not a number ('" + s + "')");
        return d;
      };
      auto i64 = [&](const char* name) {
        const std::string& s = get(name);
        char* end = nullptr;
        errno = 0;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || !end || *end != '\0' || errno == ERANGE)
          throw InputError(at + ": field '" + name + "' is not an integer ('" + s + "')");
        return static_cast<int64_t>(v);
      };
      BenchRow r;
      r.file = path;
      r.line = n;
      r.model = get("model");
      r.dtype = get("dtype");
      r.press = get("press_name");
      r.press_spec = get("press_spec");
      r.layers = i64("layers");
      r.ratio = dbl("compression_ratio");
      r.context_tokens = i64("context_tokens");
      r.prefill_s = dbl("prefill_s");
      r.compression_s = dbl("compression_s");
      r.decode_tokens = i64("decode_tokens");
      r.decode_s = dbl("decode_s");
      r.decode_tokens_per_s = dbl("decode_tokens_per_s");
      r.kv_bytes_before = i64("kv_bytes_before");
      r.kv_bytes_after = i64("kv_bytes_after");
      r.weight_bytes = i64("weight_bytes");
      r.rss_before_bytes = i64("rss_before_bytes");
      r.peak_rss_bytes = i64("peak_rss_bytes");
      if (!(r.ratio >= 0.0 && r.ratio < 1.0))
        throw InputError(at + ": field 'compression_ratio' must be in [0, 1) ('" + get("compression_ratio") + "')");
      if (r.context_tokens <= 0) throw InputError(at + ": field 'context_tokens' must be positive");
      rows.push_back(std::move(r));
    }
  }
  return rows;
}

SpeedFigure speed_figure(const std::vector<BenchRow>& rows, const std::vector<std::string>& paths,
                         std::vector<std::string>* warnings) {
  if (rows.empty()) throw InputError(files_list(paths) + ": no rows after the header");
  SpeedFigure f;
  std::set<std::string> models, dtypes, presses;
  std::set<int64_t> layers, lengths, decode_tokens;
  std::vector<std::string> press_seq;
  for (const auto& r : rows) {
    models.insert(r.model);
    dtypes.insert(r.dtype);
    layers.insert(r.layers);
    decode_tokens.insert(r.decode_tokens);
    lengths.insert(r.context_tokens);
    if (presses.insert(r.press).second) press_seq.push_back(r.press);
    auto& kb = f.kv_bytes_before[r.context_tokens];
    kb = std::max(kb, r.kv_bytes_before);
  }
  f.lengths.assign(lengths.begin(), lengths.end());
  std::map<std::pair<size_t, int64_t>, SpeedSeries> by;  // (press index, ratio) -> series
  for (const auto& r : rows) {
    const size_t pi = static_cast<size_t>(std::find(press_seq.begin(), press_seq.end(), r.press) - press_seq.begin());
    auto& s = by[{pi, ratio_key(r.ratio)}];
    s.press = r.press;
    s.ratio = r.ratio;
    auto dup = std::find_if(s.rows.begin(), s.rows.end(), [&](const BenchRow& o) { return o.context_tokens == r.context_tokens; });
    if (dup != s.rows.end()) {
      if (warnings)
        warnings->push_back(where(r.file, r.line) + ": " + r.press + " ratio " + fmt_ratio(r.ratio) + " at " +
                            std::to_string(r.context_tokens) + " tokens also in " + where(dup->file, dup->line) +
                            "; kept the first");
      continue;
    }
    s.rows.push_back(r);
  }
  for (auto& [k, s] : by) {
    std::sort(s.rows.begin(), s.rows.end(),
              [](const BenchRow& a, const BenchRow& b) { return a.context_tokens < b.context_tokens; });
    const std::string r = fmt_ratio(s.ratio) + (s.ratio == 0.0 ? " (none)" : "");
    s.label = presses.size() > 1 ? s.press + " " + r : "ratio " + r;
    f.series.push_back(std::move(s));
  }
  std::vector<std::string> layer_s;
  for (auto l : layers) layer_s.push_back(std::to_string(l));
  f.title = values_list(models) + " · " + join(layer_s) + " layers · " + values_list(dtypes) + " · press " +
            join(press_seq) + " · " + values_list(decode_tokens) + " decoded tokens";
  return f;
}

std::string speed_csv(const SpeedFigure& f) {
  std::string o =
      "press,ratio,context_tokens,peak_rss_mib,kv_mib_before,kv_mib_after,prefill_s,compression_s,decode_tokens_per_s\n";
  const double mib = 1024.0 * 1024.0;
  for (const auto& s : f.series)
    for (const auto& r : s.rows)
      o += csv_field(s.press) + "," + fmt_ratio(s.ratio) + "," + std::to_string(r.context_tokens) + "," +
           num(r.peak_rss_bytes / mib) + "," + num(r.kv_bytes_before / mib) + "," + num(r.kv_bytes_after / mib) + "," +
           num(r.prefill_s) + "," + num(r.compression_s) + "," + num(r.decode_tokens_per_s) + "\n";
  return o;
}

}  // namespace kvviz::figures
