// kvforge sweep: presses x ratios x tasks x lengths, one JSONL row per finished cell (fsynced), resumable after any
// kill, shardable (--shard i/n), mergeable (--merge). docs/eval.md. Each context is prefilled once per (task, length)
// group and replayed under every press (--no-share-prefill to turn off): docs/sweep-prefill-sharing.md.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <memory>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>

#include "core/error.hpp"
#include "experiments/eval/eval.hpp"

namespace kvf::cli {

void add_config_flags(CLI::App& app, std::map<std::string, std::string>& values);

namespace {

struct SweepOptions {
  std::string config_file, out, shard;
  std::vector<std::string> presses, tasks, merge;
  std::vector<double> ratios;
  std::vector<int64_t> lengths;
  std::string summary, csv;
  std::map<std::string, std::string> values;
  bool no_share_prefill = false;
  int64_t prefill_cache_mb = 4096;
};

struct Cell {
  std::string key, press_name, task;
  double ratio = 0;
  int64_t length = 0;
};

std::string fmt2(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", x);
  return b;
}

std::pair<int64_t, int64_t> parse_shard(const std::string& s) {
  const auto slash = s.find('/');
  try {
    if (slash == std::string::npos) throw 0;
    size_t p1 = 0, p2 = 0;
    const int64_t i = std::stoll(s.substr(0, slash), &p1), n = std::stoll(s.substr(slash + 1), &p2);
    if (p1 != slash || p2 != s.size() - slash - 1 || n <= 0 || i < 0 || i >= n) throw 0;
    return {i, n};
  } catch (...) {
    throw Error("--shard must be i/n with 0 <= i < n (e.g. 0/4), got '" + s + "'");
  }
}

std::string iso_now() {
  char b[32];
  const std::time_t t = std::time(nullptr);
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return b;
}

// One CSV row per cell (the figures' input): identity, score, achieved compression, timings, tokens, memory.
void write_csv(const std::string& path, const std::string& out) {
  static const char* cols[] = {"key", "dataset", "press_name", "press_spec", "compression_ratio", "task", "length",
                               "num_samples", "score", "achieved_compression", "context_tokens", "question_tokens",
                               "answer_tokens", "prefill_s", "compression_s", "decode_s", "decode_tokens_per_s",
                               "wall_s", "kv_bytes_before", "kv_bytes_after", "rss_bytes", "peak_rss_bytes"};
  std::string csv;
  for (const char* c : cols) csv += std::string(csv.empty() ? "" : ",") + c;
  csv += "\n";
  for (const auto& r : eval::read_results(path)) {
    std::string line;
    for (const char* c : cols) {
      const auto& v = r.contains(c) ? r[c] : nlohmann::json(nullptr);
      line += (line.empty() ? "" : ",") + eval::csv_escape(v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump());
    }
    csv += line + "\n";
  }
  eval::write_file_atomic(out, csv);
}

void run_summary(const std::string& path) {
  // press x ratio rows, task columns (mean over lengths), plus the average: a markdown table on stdout.
  std::map<std::string, std::map<std::string, std::pair<double, int>>> t;
  std::set<std::string> tasks;
  for (const auto& r : eval::read_results(path)) {
    const std::string row = r["press_name"].get<std::string>() + " " + fmt2(r["compression_ratio"].get<double>());
    const std::string task = r["task"].get<std::string>() + "@" + std::to_string(r["length"].get<int64_t>());
    tasks.insert(task);
    auto& c = t[row][task];
    c.first += r["score"].get<double>();
    c.second += 1;
  }
  std::printf("| press | ratio |");
  for (auto& k : tasks) std::printf(" %s |", k.c_str());
  std::printf(" average |\n|---|---|");
  for (size_t i = 0; i <= tasks.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (auto& [row, cols] : t) {
    const auto sp = row.find(' ');
    std::printf("| %s | %s |", row.substr(0, sp).c_str(), row.substr(sp + 1).c_str());
    double sum = 0;
    int n = 0;
    for (auto& k : tasks) {
      auto it = cols.find(k);
      if (it == cols.end()) {
        std::printf(" – |");
        continue;
      }
      const double v = it->second.first / it->second.second;
      sum += v;
      ++n;
      std::printf(" %.1f |", v);
    }
    std::printf(" %.1f |\n", n ? sum / n : 0.0);
  }
}

void run_sweep(CLI::App& app, SweepOptions& o) {
  if (!o.summary.empty()) {
    if (!o.csv.empty()) write_csv(o.summary, o.csv);
    return run_summary(o.summary);
  }
  if (o.out.empty()) throw Error("--out is required (the JSONL results file)");
  if (!o.merge.empty()) {
    std::vector<std::string> conflicts;
    const size_t n = eval::merge_results(o.merge, o.out, &conflicts);
    for (auto& k : conflicts) std::fprintf(stderr, "[sweep] warning: cell %s differs between inputs; kept the first\n", k.c_str());
    std::fprintf(stderr, "[sweep] merged %zu files: %zu cells -> %s\n", o.merge.size(), n, o.out.c_str());
    return;
  }
  // Base config: defaults <- file (sweep keys taken out) <- flags.
  eval::EvalConfig base;
  if (!o.config_file.empty()) {
    auto j = eval::read_config_file(o.config_file);
    auto take = [&](const char* k, auto& dst) {
      if (j.contains(k)) {
        if (dst.empty()) j[k].get_to(dst);
        j.erase(k);
      }
    };
    take("presses", o.presses);
    take("ratios", o.ratios);
    take("lengths", o.lengths);
    eval::apply_config(base, j);
  }
  nlohmann::json flags = nlohmann::json::object();
  for (const auto& [k, v] : o.values)
    if (app.count("--" + k) > 0) flags[k] = eval::parse_flag_value(k, v);
  eval::apply_config(base, flags);
  if (!o.tasks.empty()) base.tasks = o.tasks;
  if (o.presses.empty()) o.presses = {"no_press", "knorm"};
  if (o.ratios.empty()) o.ratios = {0.25, 0.5, 0.75};
  if (o.lengths.empty()) o.lengths = {1024};
  const bool needle = base.dataset == "needle_in_haystack";
  std::vector<std::string> tasks = base.tasks.empty() ? eval::ruler_tasks() : base.tasks;
  if (needle) {
    tasks.clear();
    auto depths = base.needle_depth;
    if (depths.empty())
      for (int64_t d = 0; d <= 100; d += 10) depths.push_back(d);
    for (auto d : depths) tasks.push_back("depth" + std::to_string(d));
  }
  // Validate every press and task before doing any work.
  for (const auto& p : o.presses) {
    eval::EvalConfig c = base;
    c.press_name = p;
    c.compression_ratio = 0.5;
    c.data_dir = std::to_string(o.lengths[0]);
    if (needle) c.max_context_length = o.lengths[0];
    eval::finalize_config(c);
  }
  if (!needle)
    for (const auto& t : tasks)
      if (std::find(eval::ruler_tasks().begin(), eval::ruler_tasks().end(), t) == eval::ruler_tasks().end())
        eval::make_ruler_task(t, 1, 0, 0, {});  // throws the list of tasks
  for (auto r : o.ratios)
    if (!(r >= 0.0 && r < 1.0)) throw Error("ratios must be in [0, 1), got " + std::to_string(r));

  // Cells in a fixed order; shard i/n takes cells k with k % n == i.
  std::vector<Cell> cells;
  for (auto len : o.lengths)
    for (const auto& t : tasks)
      for (const auto& p : o.presses) {
        const bool none = p == "no_press";
        for (size_t ri = 0; ri < (none ? 1 : o.ratios.size()); ++ri) {
          Cell c{"", p, t, none ? 0.0 : o.ratios[ri], len};
          c.key = (needle ? "needle|" : "ruler|") + p + "|" + fmt2(c.ratio) + "|" + t + "|" + std::to_string(len);
          cells.push_back(c);
        }
      }
  int64_t si = 0, sn = 1;
  if (!o.shard.empty()) std::tie(si, sn) = parse_shard(o.shard);
  std::vector<Cell> mine;
  for (size_t k = 0; k < cells.size(); ++k)
    if (static_cast<int64_t>(k % static_cast<size_t>(sn)) == si) mine.push_back(cells[k]);

  eval::ResultStore store(o.out);
  if (store.repaired_bytes())
    std::fprintf(stderr, "[sweep] %s: cut a torn last line (%zu bytes) left by an interrupted run\n", o.out.c_str(),
                 store.repaired_bytes());
  size_t todo = 0;
  for (auto& c : mine) todo += store.has(c.key) ? 0 : 1;
  std::fprintf(stderr, "[sweep] %zu cells in all, %zu in shard %lld/%lld, %zu already done, %zu to run\n", cells.size(),
               mine.size(), static_cast<long long>(si), static_cast<long long>(sn), mine.size() - todo, todo);
  if (todo == 0) return;
  eval::Runner runner(base.model, base.dtype, base.threads);
  if (!needle) {  // every (task, length) must fit its template: fail before the first cell, not in the middle
    std::set<std::pair<std::string, int64_t>> seen;
    for (const auto& c : mine)
      if (!store.has(c.key) && seen.insert({c.task, c.length}).second)
        eval::make_ruler_task(c.task, c.length, 1, static_cast<uint64_t>(base.seed), runner.counter());
  }
  if (o.prefill_cache_mb < 0) throw Error("--prefill-cache-mb must be >= 0");
  const int64_t budget = o.prefill_cache_mb * 1024 * 1024;
  size_t done = 0;
  const auto t_start = std::chrono::steady_clock::now();
  auto cell_config = [&](const Cell& c) {
    eval::EvalConfig cfg = base;
    cfg.press_name = c.press_name;
    cfg.compression_ratio = c.ratio;
    cfg.data_dir = std::to_string(c.length);
    if (needle) cfg.max_context_length = c.length + 64;  // the template fits in `length`; no truncation
    eval::finalize_config(cfg);
    return cfg;
  };
  // Cells come in (length, task) groups (consecutive in `mine`, whatever the shard): the group's rows are generated
  // once and, unless --no-share-prefill, each context is prefilled once and every press of the group replays that
  // prefill (core/pipeline.hpp: bit-identical to prefilling per press; docs/sweep-prefill-sharing.md).
  for (size_t g0 = 0; g0 < mine.size();) {
    size_t g1 = g0;
    while (g1 < mine.size() && mine[g1].task == mine[g0].task && mine[g1].length == mine[g0].length) ++g1;
    std::vector<const Cell*> pending;
    for (size_t k = g0; k < g1; ++k)
      if (!store.has(mine[k].key)) pending.push_back(&mine[k]);
    g0 = g1;
    if (pending.empty()) continue;
    const std::string group = pending[0]->task + "@" + std::to_string(pending[0]->length);
    // Rows depend on (task, length, num_samples, seed) only: the same for every press.
    const eval::EvalConfig gcfg = cell_config(*pending[0]);
    const auto tg = std::chrono::steady_clock::now();
    const std::vector<eval::Sample> rows =
        needle ? eval::make_needle_grid(pending[0]->length, {std::stoll(pending[0]->task.substr(5))},
                                        gcfg.num_samples, static_cast<uint64_t>(gcfg.seed), runner.counter())
               : eval::make_ruler_task(pending[0]->task, pending[0]->length, gcfg.num_samples,
                                       static_cast<uint64_t>(gcfg.seed), runner.counter());
    const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - tg).count();
    // Share when at least two pending cells can replay a recorded prefill (observed_attention cannot: it needs
    // attention weights, which are not recorded; it prefills per cell as before).
    std::vector<bool> can_share;
    size_t n_share = 0;
    for (const Cell* c : pending) {
      const auto cfg = cell_config(*c);
      can_share.push_back(!o.no_share_prefill && runner.can_share_prefill(cfg.press_spec, cfg.compression_ratio));
      n_share += can_share.back() ? 1 : 0;
    }
    std::shared_ptr<const eval::SharedPrefill> shared;
    if (n_share >= 2) {
      const auto tp = std::chrono::steady_clock::now();
      shared = runner.prefill(rows, gcfg, budget, [&](size_t i, size_t n) {
        std::fprintf(stderr, "\r[sweep] %s: shared prefill %zu/%zu contexts (%.1f s)   ", group.c_str(), i, n,
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count());
      });
      const auto in = eval::Runner::info(*shared);
      std::fprintf(stderr, "\n[sweep] %s: %zu of %zu contexts prefilled once for %zu cells (%.1f s, %.1f MiB held",
                   group.c_str(), in.recorded, in.contexts, n_share, in.seconds, in.bytes / 1048576.0);
      if (in.recorded < in.contexts)
        std::fprintf(stderr, "; %zu over --prefill-cache-mb %lld: prefilled per cell", in.contexts - in.recorded,
                     static_cast<long long>(o.prefill_cache_mb));
      std::fprintf(stderr, ")\n");
    }
    for (size_t ci = 0; ci < pending.size(); ++ci) {
      const Cell& c = *pending[ci];
      const eval::EvalConfig cfg = cell_config(c);
      const auto t0 = std::chrono::steady_clock::now();
      const auto res =
          runner.run(rows, cfg.press_spec, cfg.compression_ratio, cfg, {}, can_share[ci] ? shared.get() : nullptr);
      nlohmann::json preds = nlohmann::json::array(), scores = nlohmann::json::array();
      double sum = 0, prefill = 0, comp = 0, decode = 0, achieved = 0;
      int64_t ctx = 0, qtok = 0, atok = 0, kvb = 0, kva = 0, shared_rows = 0;
      for (size_t i = 0; i < rows.size(); ++i) {
        const double s = eval::string_match_all(eval::ruler_postprocess(res[i].prediction), rows[i].answers);
        sum += s;
        preds.push_back(res[i].prediction);
        scores.push_back(s);
        prefill += res[i].prefill_s;
        comp += res[i].compression_s;
        decode += res[i].decode_s;
        achieved += res[i].achieved_compression;
        ctx += res[i].context_tokens;
        qtok += res[i].question_tokens;
        atok += res[i].answer_tokens;
        kvb = std::max(kvb, res[i].kv_bytes_before);
        kva = std::max(kva, res[i].kv_bytes_after);
        shared_rows += res[i].prefill_shared ? 1 : 0;
      }
      const double n = static_cast<double>(rows.size());
      nlohmann::json row = {
          {"key", c.key},
          {"dataset", needle ? "needle_in_haystack" : "ruler"},
          {"press_name", c.press_name},
          {"press_spec", cfg.press_spec},
          {"compression_ratio", c.ratio},
          {"task", c.task},
          {"length", c.length},
          {"model", base.model},
          {"seed", base.seed},
          {"num_samples", rows.size()},
          {"max_new_tokens", base.max_new_tokens ? nlohmann::json(*base.max_new_tokens) : nlohmann::json(nullptr)},
          {"cache_mode", cfg.cache_mode},
          {"score", eval::round2(100.0 * sum / n)},
          {"scores", scores},
          {"predictions", preds},
          {"answers", [&] {
             nlohmann::json a = nlohmann::json::array();
             for (auto& r : rows) a.push_back(r.answers);
             return a;
           }()},
          {"achieved_compression", achieved / n},
          {"context_tokens", ctx},
          {"question_tokens", qtok},
          {"answer_tokens", atok},
          // prefill_s: the measured context prefills; with prefill_shared, a row's prefill was measured once and
          // is the same figure in every cell of its (task, length) group (prefill_shared_rows of the rows).
          {"prefill_s", prefill},
          {"prefill_shared", shared_rows > 0},
          {"prefill_shared_rows", shared_rows},
          {"compression_s", comp},
          {"decode_s", decode},
          {"decode_tokens_per_s", decode > 0 ? static_cast<double>(atok) / decode : 0.0},
          {"generate_s", gen_s},  // the group's dataset generation, done once for all its cells
          // this cell's own time (its prefills unless shared, press, decoding); not the group's generation nor
          // its shared prefill
          {"wall_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
          {"kv_bytes_before", kvb},
          {"kv_bytes_after", kva},
          {"rss_bytes", eval::rss_bytes()},
          {"peak_rss_bytes", eval::peak_rss_bytes()},
          {"finished_at", iso_now()},
      };
      store.append(row);
      ++done;
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      std::fprintf(stderr, "[sweep] %zu/%zu %s: score %.2f (%.1f s%s; ~%.0f s left)\n", done, todo, c.key.c_str(),
                   row["score"].get<double>(), row["wall_s"].get<double>(),
                   shared_rows > 0 ? ", shared prefill" : "",
                   el / static_cast<double>(done) * static_cast<double>(todo - done));
    }
  }
}

}  // namespace

void add_sweep_command(CLI::App& app) {
  auto o = std::make_shared<SweepOptions>();
  auto* cmd = app.add_subcommand("sweep", "presses x ratios x tasks x lengths into a resumable JSONL file (docs/eval.md)");
  cmd->add_option("--out", o->out, "JSONL results file (appended; finished cells are skipped on a rerun)");
  cmd->add_option("--presses", o->presses, "kvpress press names (no_press runs once, at ratio 0)")->delimiter(',');
  cmd->add_option("--ratios", o->ratios, "compression ratios")->delimiter(',');
  cmd->add_option("--lengths", o->lengths, "context lengths in tokens")->delimiter(',');
  cmd->add_option("--task-list", o->tasks, "RULER tasks (default: all; same as the tasks key)")->delimiter(',');
  cmd->add_option("--shard", o->shard, "i/n: run only cells k with k % n == i (0-based; e.g. $SLURM_ARRAY_TASK_ID/n)");
  cmd->add_option("--merge", o->merge, "merge these JSONL files into --out (one row per cell) and exit");
  cmd->add_option("--summary", o->summary, "print a markdown table (press x ratio by task@length) of a JSONL file");
  cmd->add_option("--csv", o->csv, "with --summary: also write one CSV row per cell to this file");
  cmd->add_option("--config_file,--config-file,--config", o->config_file,
                  "YAML/JSON config: the eval keys plus presses, ratios, lengths");
  cmd->add_flag("--no-share-prefill", o->no_share_prefill,
               "prefill every context once per cell (default: once per (task, length) group, every press replaying "
               "it; results are identical, docs/sweep-prefill-sharing.md)");
  cmd->add_option("--prefill-cache-mb", o->prefill_cache_mb,
                  "memory for a group's recorded prefills (hidden states + uncompressed cache per layer); contexts "
                  "past it are prefilled per cell (default 4096)");
  add_config_flags(*cmd, o->values);
  cmd->callback([cmd, o] { run_sweep(*cmd, *o); });
}

}  // namespace kvf::cli
