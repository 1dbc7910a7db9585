// kvforge eval / sweep: offline datasets, RULER metrics, configs, the JSONL store; the CLI end to end (tiny runs,
// SIGKILL + resume, shard + merge). The CLI cases use SmolLM2 (--model default) on ~200-token contexts.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "core/error.hpp"
#include "experiments/eval/eval.hpp"

namespace fs = std::filesystem;
using namespace kvf::eval;

namespace {

// ~1.3 tokens per whitespace word: enough for the torch-free generator tests.
int64_t approx_tokens(const std::string& s) {
  std::istringstream in(s);
  std::string w;
  int64_t n = 0;
  while (in >> w) n += 1 + static_cast<int64_t>(w.size()) / 5;
  return n;
}

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("kvf_test_eval_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Spawns kvforge with args (stdout+stderr to log); returns the pid.
pid_t spawn(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(KVF_CLI));
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(KVF_CLI, argv.data());
    ::_exit(127);
  }
  return pid;
}

int run_cli(const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = spawn(args, log);
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::vector<std::string> sweep_args(const fs::path& out) {
  return {"sweep", "--model", "default", "--presses", "no_press,knorm", "--ratios", "0.25,0.5",
          "--task-list", "niah_single_1,vt", "--lengths", "160", "--num_samples", "1", "--max_new_tokens", "4",
          "--threads", "1", "--out", out.string()};
}

// key -> (score, predictions) of a results file; fails on duplicated keys.
std::map<std::string, std::string> cells_of(const fs::path& p) {
  std::map<std::string, std::string> m;
  std::istringstream in(slurp(p));
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    const std::string k = j["key"];
    INFO("duplicated cell " << k);
    REQUIRE(m.count(k) == 0);
    m[k] = j["score"].dump() + " " + j["predictions"].dump();
  }
  return m;
}

}  // namespace

TEST_CASE("RULER string match: postprocessing, all and part", "[eval]") {
  CHECK(ruler_postprocess("  a\x01 b\n ") == "a b");
  CHECK(string_match_all("The numbers are 123 and 456", {"123", "456"}) == 1.0);
  CHECK(string_match_all("only 123", {"123", "456"}) == 0.5);
  CHECK(string_match_all("ABC", {"abc"}) == 1.0);  // case-insensitive
  CHECK(string_match_part("only 456", {"123", "456"}) == 1.0);
  CHECK(string_match_part("none", {"123", "456"}) == 0.0);
  std::vector<Sample> rows(3);
  rows[0].task = rows[1].task = "vt";
  rows[0].answers = rows[1].answers = {"AAA", "BBB"};
  rows[2].task = "qa_1";
  rows[2].answers = {"x", "y"};
  const auto m = ruler_metrics(rows, {"AAA BBB", "aaa", "y"});
  CHECK(m["vt"]["string_match"].get<double>() == 75.0);
  CHECK(m["qa_1"]["string_match"].get<double>() == 100.0);
}

TEST_CASE("datasets: deterministic, fit the length, needles present", "[eval]") {
  for (const auto& t : ruler_tasks()) {
    const auto a = make_ruler_task(t, 600, 2, 42, approx_tokens);
    const auto b = make_ruler_task(t, 600, 2, 42, approx_tokens);
    REQUIRE(a.size() == 2);
    INFO(t);
    CHECK(a[0].context == b[0].context);
    CHECK(a[0].answers == b[0].answers);
    CHECK(a[0].context != a[1].context);
    CHECK(a[0].prompt_tokens <= 600);
    CHECK(a[0].prompt_tokens > 400);  // the haystack fills most of the budget
    CHECK(!a[0].answers.empty());
    if (t != "cwe" && t != "fwe")
      for (const auto& ans : a[0].answers) CHECK(a[0].context.find(ans) != std::string::npos);
  }
  // a different seed, a different dataset
  CHECK(make_ruler_task("vt", 600, 1, 1, approx_tokens)[0].context !=
        make_ruler_task("vt", 600, 1, 2, approx_tokens)[0].context);
  // the needle grid: same haystack, needle moves with depth
  const auto g = make_needle_grid(500, {0, 50, 100}, 1, 42, approx_tokens);
  REQUIRE(g.size() == 3);
  CHECK(g[0].answers == g[2].answers);
  const auto pos = [&](const Sample& s) { return s.context.find("One of the special magic"); };
  CHECK(pos(g[0]) < pos(g[1]));
  CHECK(pos(g[1]) < pos(g[2]));
  CHECK_THROWS_WITH(make_ruler_task("nosuch", 500, 1, 42, approx_tokens), Catch::Contains("Known tasks: niah_single_1"));
  CHECK_THROWS_WITH(make_ruler_task("vt", 10, 1, 42, approx_tokens), Catch::Contains("too short"));
}

TEST_CASE("configs: kvpress keys, YAML and JSON, clear errors", "[eval]") {
  const auto d = temp_dir("config");
  std::ofstream(d / "c.yaml") << "# kvpress style\ndataset: ruler\ndata_dir: 512\npress_name: snapkv\n"
                                 "compression_ratio: 0.25\nmax_new_tokens: null\ntasks: [vt, cwe]\n"
                                 "model_kwargs:\n  dtype: auto\n";
  EvalConfig c;
  apply_config(c, read_config_file((d / "c.yaml").string()));
  finalize_config(c);
  CHECK(c.data_dir == "512");
  CHECK(c.press_spec == "snapkv");
  CHECK(c.compression_ratio == 0.25);
  CHECK(c.tasks == std::vector<std::string>{"vt", "cwe"});
  CHECK(run_name(c) == "ruler__512__default__snapkv__0.25");
  std::ofstream(d / "c.json") << R"({"press_name": "expected_attention", "compression_ratio": 0.5, "fraction": 0.5})";
  EvalConfig j;
  apply_config(j, read_config_file((d / "c.json").string()));
  finalize_config(j);
  CHECK(j.press_spec == "adakv(expected_attention(epsilon=0.01))");
  EvalConfig e;
  CHECK_THROWS_WITH(apply_config(e, {{"bogus_key", 1}}), Catch::Contains("unknown config key 'bogus_key'. Known keys: dataset"));
  CHECK_THROWS_WITH(apply_config(e, {{"compression_ratio", "half"}}), Catch::Contains("'compression_ratio' must be a number"));
  e.dataset = "longbench";
  CHECK_THROWS_WITH(finalize_config(e), Catch::Contains("unknown dataset 'longbench'. Offline datasets: ruler"));
  EvalConfig p;
  p.press_name = "kvzip";
  p.compression_ratio = 0.5;
  CHECK_THROWS_WITH(finalize_config(p), Catch::Contains("unknown press_name 'kvzip'") && Catch::Contains("snapkv"));
  EvalConfig t;
  t.press_name = "snap_think";
  t.compression_ratio = 0.5;
  CHECK_THROWS_WITH(finalize_config(t), Catch::Contains("needs key_channel_compression_ratio"));
  t.key_channel_compression_ratio = 0.25;
  finalize_config(t);
  CHECK(t.press_spec == "think(snapkv, key_channel_compression_ratio=0.25)");
  EvalConfig n;
  n.press_name = "no_press";
  finalize_config(n);
  CHECK(n.compression_ratio == 0.0);
  CHECK(n.press_spec.empty());
  EvalConfig one;  // kvpress's dataclass default ratio 1.0 would remove everything
  CHECK_THROWS_WITH(finalize_config(one), Catch::Contains("compression_ratio must be in [0, 1)"));
}

TEST_CASE("result store: torn last line repaired, resume keys, merge", "[eval]") {
  const auto d = temp_dir("store");
  const auto p = (d / "r.jsonl").string();
  {
    ResultStore s(p);
    s.append({{"key", "a"}, {"score", 1}});
    s.append({{"key", "b"}, {"score", 2}});
  }
  std::ofstream(p, std::ios::app) << R"({"key": "c", "sco)";  // a kill in the middle of a write
  {
    ResultStore s(p);
    CHECK(s.repaired_bytes() > 0);
    CHECK(s.has("a"));
    CHECK(s.has("b"));
    CHECK_FALSE(s.has("c"));
    s.append({{"key", "c"}, {"score", 3}});
  }
  CHECK(read_results(p).size() == 3);
  std::ofstream(d / "bad.jsonl") << "{\"key\": \"a\"}\nnot json\n{\"key\": \"b\"}\n";
  CHECK_THROWS_WITH(ResultStore((d / "bad.jsonl").string()), Catch::Contains("line 2 is not a result row"));
  std::ofstream(d / "s2.jsonl") << "{\"key\": \"d\", \"score\": 4}\n{\"key\": \"a\", \"score\": 1}\n";
  std::vector<std::string> conflicts;
  CHECK(merge_results({p, (d / "s2.jsonl").string()}, (d / "all.jsonl").string(), &conflicts) == 4);
  CHECK(conflicts.empty());
  const auto rows = read_results((d / "all.jsonl").string());
  REQUIRE(rows.size() == 4);
  CHECK(rows[0]["key"] == "a");
  CHECK(rows[3]["key"] == "d");
}

TEST_CASE("kvforge eval: a tiny run writes predictions.csv, metrics.json, config.yaml", "[eval][cli]") {
  const auto d = temp_dir("eval");
  std::ofstream(d / "cfg.yaml") << "dataset: ruler\ndata_dir: 200\npress_name: knorm\ncompression_ratio: 0.5\n"
                                   "num_samples: 1\ntasks: [niah_single_1, vt]\noutput_dir: " << (d / "out").string() << "\n";
  const auto log = d / "log.txt";
  REQUIRE(run_cli({"eval", "--config_file", (d / "cfg.yaml").string(), "--max_new_tokens", "6", "--threads", "1"},
                  log) == 0);
  const fs::path run = d / "out" / "ruler__200__default__knorm__0.50";
  INFO(slurp(log));
  REQUIRE(fs::exists(run / "predictions.csv"));
  const auto metrics = nlohmann::json::parse(slurp(run / "metrics.json"));
  CHECK(metrics.contains("niah_single_1"));
  CHECK(metrics.contains("vt"));
  CHECK(slurp(run / "predictions.csv").find("predicted_answer") != std::string::npos);
  CHECK(slurp(run / "config.yaml").find("press_spec: \"knorm\"") != std::string::npos);
  // the same run again goes into a numbered sub-directory (kvpress)
  REQUIRE(run_cli({"eval", "--config_file", (d / "cfg.yaml").string(), "--max_new_tokens", "2", "--tasks", "vt", "--threads", "1"}, log) == 0);
  CHECK(fs::exists(run / "1" / "metrics.json"));
  // errors: clear message, non-zero exit, before any model load
  CHECK(run_cli({"eval", "--dataset", "longbench"}, d / "e1.txt") == 1);
  CHECK(slurp(d / "e1.txt").find("unknown dataset 'longbench'") != std::string::npos);
  CHECK(run_cli({"eval", "--press_name", "nosuch", "--compression_ratio", "0.5"}, d / "e2.txt") == 1);
  CHECK(slurp(d / "e2.txt").find("unknown press_name 'nosuch'") != std::string::npos);
  std::ofstream(d / "bad.yaml") << "dataset: ruler\nnot_a_key: 3\n";
  CHECK(run_cli({"eval", "--config", (d / "bad.yaml").string()}, d / "e3.txt") == 1);
  CHECK(slurp(d / "e3.txt").find("unknown config key 'not_a_key'") != std::string::npos);
  fs::remove_all(d);
}

TEST_CASE("kvforge sweep: SIGKILL at random points, resume, shard + merge == unsharded", "[eval][cli]") {
  const auto d = temp_dir("sweep");
  // the reference: one unsharded run
  REQUIRE(run_cli(sweep_args(d / "full.jsonl"), d / "full.log") == 0);
  const auto full = cells_of(d / "full.jsonl");
  INFO(slurp(d / "full.log"));
  REQUIRE(full.size() == 6);  // (no_press + knorm x 2 ratios) x 2 tasks

  // killed twice at random moments, then finished
  const unsigned seed = static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::mt19937 rng(seed);
  for (int k = 0; k < 2; ++k) {
    const int ms = 300 + static_cast<int>(rng() % 3000);
    INFO("seed " << seed << " kill after " << ms << " ms");
    const pid_t pid = spawn(sweep_args(d / "killed.jsonl"), d / "killed.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (fs::exists(d / "killed.jsonl")) cells_of(d / "killed.jsonl");  // no duplicates so far (torn line allowed)
  }
  REQUIRE(run_cli(sweep_args(d / "killed.jsonl"), d / "killed.log") == 0);
  CHECK(cells_of(d / "killed.jsonl") == full);
  // a rerun of a finished sweep does nothing
  const auto before = slurp(d / "killed.jsonl");
  REQUIRE(run_cli(sweep_args(d / "killed.jsonl"), d / "killed.log") == 0);
  CHECK(slurp(d / "killed.jsonl") == before);

  // shards 0/3, 1/3, 2/3 then merge
  std::vector<std::string> merge_args = {"sweep", "--merge"};
  size_t total = 0;
  for (int i = 0; i < 3; ++i) {
    const auto p = d / ("shard" + std::to_string(i) + ".jsonl");
    auto a = sweep_args(p);
    a.push_back("--shard");
    a.push_back(std::to_string(i) + "/3");
    REQUIRE(run_cli(a, d / "shard.log") == 0);
    total += cells_of(p).size();
    merge_args.push_back(p.string());
  }
  CHECK(total == 6);
  merge_args.push_back("--out");
  merge_args.push_back((d / "merged.jsonl").string());
  REQUIRE(run_cli(merge_args, d / "merge.log") == 0);
  CHECK(cells_of(d / "merged.jsonl") == full);
  REQUIRE(run_cli({"sweep", "--summary", (d / "merged.jsonl").string(), "--csv", (d / "cells.csv").string()},
                  d / "summary.log") == 0);
  CHECK(slurp(d / "summary.log").find("| knorm | 0.25 |") != std::string::npos);
  CHECK(slurp(d / "cells.csv").rfind("key,dataset,press_name,press_spec,compression_ratio,task,length", 0) == 0);
  CHECK(run_cli({"sweep", "--out", (d / "x.jsonl").string(), "--shard", "3/3"}, d / "e.log") == 1);
  CHECK(slurp(d / "e.log").find("--shard must be i/n") != std::string::npos);
  // a length too short for a task's template fails before any cell runs
  CHECK(run_cli({"sweep", "--presses", "knorm", "--task-list", "niah_single_1,vt", "--lengths", "100", "--threads", "1",
                 "--out", (d / "short.jsonl").string()}, d / "short.log") == 1);
  CHECK(slurp(d / "short.log").find("too short for task") != std::string::npos);
  CHECK(slurp(d / "short.jsonl").empty());
  CHECK(run_cli({"sweep", "--presses", "nosuch", "--out", (d / "x.jsonl").string()}, d / "p.log") == 1);
  CHECK(slurp(d / "p.log").find("unknown press_name 'nosuch'") != std::string::npos);
  fs::remove_all(d);
}

TEST_CASE("runner: a shared prefill gives the unshared results for every press", "[eval][shared]") {
  Runner runner("default", "float32", 1);
  const auto rows = make_ruler_task("niah_single_1", 160, 2, 42, runner.counter());
  EvalConfig cfg;
  cfg.max_new_tokens = 4;
  const auto shared = runner.prefill(rows, cfg, int64_t{1} << 32);
  const auto in = Runner::info(*shared);
  CHECK(in.contexts == 2);
  CHECK(in.recorded == 2);
  CHECK(in.bytes > 0);
  // a budget for one context: the second is prefilled per press
  const auto half = runner.prefill(rows, cfg, in.bytes / 2 + in.bytes / 8);
  CHECK(Runner::info(*half).recorded == 1);
  auto same = [&](const std::vector<RowResult>& a, const std::vector<RowResult>& b) {
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      INFO("row " << i);
      CHECK(a[i].prediction == b[i].prediction);
      CHECK(a[i].kv_bytes_before == b[i].kv_bytes_before);
      CHECK(a[i].kv_bytes_after == b[i].kv_bytes_after);
      CHECK(a[i].achieved_compression == b[i].achieved_compression);
      CHECK(a[i].context_tokens == b[i].context_tokens);
      CHECK(a[i].question_tokens == b[i].question_tokens);
      CHECK(a[i].answer_tokens == b[i].answer_tokens);
    }
  };
  double shared_prefill_s = -1;
  for (const std::string spec : {"", "knorm", "snapkv", "streaming_llm", "key_rerotation(knorm)", "adakv(snapkv)",
                                 "adakv(expected_attention(epsilon=0.01))", "observed_attention"}) {
    INFO("press '" << spec << "'");
    const bool replayable = spec != "observed_attention";  // needs attention weights: prefills as usual
    CHECK(runner.can_share_prefill(spec, 0.5) == replayable);
    const auto plain = runner.run(rows, spec, 0.5, cfg);
    const auto a = runner.run(rows, spec, 0.5, cfg, {}, shared.get());
    const auto b = runner.run(rows, spec, 0.5, cfg, {}, half.get());
    same(plain, a);
    same(plain, b);
    CHECK(!plain[0].prefill_shared);
    CHECK(a[0].prefill_shared == replayable);
    CHECK(a[1].prefill_shared == replayable);
    CHECK(b[0].prefill_shared == replayable);
    CHECK(!b[1].prefill_shared);
    if (replayable) {  // the recorded prefill's one measured time, whatever the press
      if (shared_prefill_s < 0) shared_prefill_s = a[0].prefill_s;
      CHECK(a[0].prefill_s == shared_prefill_s);
    }
    if (spec == "adakv(snapkv)") CHECK(a[0].kv_bytes_after < a[0].kv_bytes_before);
  }
  // query_aware: the question is part of the recorded context
  cfg.query_aware = true;
  const auto qa = runner.prefill(rows, cfg, int64_t{1} << 32);
  same(runner.run(rows, "snapkv", 0.5, cfg), runner.run(rows, "snapkv", 0.5, cfg, {}, qa.get()));
}

TEST_CASE("kvforge sweep: shared prefill == --no-share-prefill, cell by cell", "[eval][cli][shared]") {
  const auto d = temp_dir("sweep_shared");
  auto args = [&](const fs::path& out) {
    return std::vector<std::string>{"sweep", "--model", "default", "--presses",
                                    "no_press,knorm,snapkv,observed_attention,adakv_snapkv", "--ratios", "0.5",
                                    "--task-list", "niah_single_1", "--lengths", "160", "--num_samples", "2",
                                    "--max_new_tokens", "4", "--threads", "1", "--out", out.string()};
  };
  REQUIRE(run_cli(args(d / "shared.jsonl"), d / "shared.log") == 0);
  INFO(slurp(d / "shared.log"));
  CHECK(slurp(d / "shared.log").find("2 of 2 contexts prefilled once for 4 cells") != std::string::npos);
  auto a = args(d / "plain.jsonl");
  a.push_back("--no-share-prefill");
  REQUIRE(run_cli(a, d / "plain.log") == 0);
  auto b = args(d / "budget.jsonl");  // room for one of the two contexts (~17 MiB each)
  b.insert(b.end(), {"--prefill-cache-mb", "25"});
  REQUIRE(run_cli(b, d / "budget.log") == 0);
  INFO(slurp(d / "budget.log"));
  auto rows = [&](const fs::path& p) {
    std::map<std::string, nlohmann::json> m;
    for (auto& r : read_results(p.string())) m[r["key"].get<std::string>()] = r;
    return m;
  };
  const auto shared = rows(d / "shared.jsonl"), plain = rows(d / "plain.jsonl"), budget = rows(d / "budget.jsonl");
  REQUIRE(shared.size() == 5);
  REQUIRE(plain.size() == 5);
  REQUIRE(budget.size() == 5);
  for (const auto& [key, r] : plain) {
    INFO(key);
    const bool replayable = r["press_name"] != "observed_attention";
    for (const auto* other : {&shared, &budget}) {
      const auto& o = other->at(key);
      for (const char* f : {"score", "predictions", "kv_bytes_before", "kv_bytes_after", "achieved_compression",
                            "context_tokens", "question_tokens", "answer_tokens"}) {
        INFO(f);
        CHECK(o[f] == r[f]);
      }
    }
    CHECK(r["prefill_shared"] == false);
    CHECK(shared.at(key)["prefill_shared"] == replayable);
    CHECK(shared.at(key)["prefill_shared_rows"] == (replayable ? 2 : 0));
    CHECK(budget.at(key)["prefill_shared_rows"] == (replayable ? 1 : 0));
  }
  // the shared prefill is one measurement: the same prefill_s in every cell that replayed it
  CHECK(shared.at("ruler|knorm|0.50|niah_single_1|160")["prefill_s"] ==
        shared.at("ruler|snapkv|0.50|niah_single_1|160")["prefill_s"]);
  fs::remove_all(d);
}

TEST_CASE("kvforge bench speed-memory: random-weight model, CSV rows per length x ratio", "[eval][cli]") {
  const auto d = temp_dir("bench");
  const auto csv = d / "sm.csv";
  REQUIRE(run_cli({"bench", "speed-memory", "--preset", "smollm2-135m", "--num-layers", "2", "--dtype", "bfloat16",
                   "--lengths", "128,160", "--ratios", "0,0.5", "--press_name", "snapkv", "--press_spec", "",
                   "--decode-tokens", "2", "--threads", "1", "--out", csv.string()},
                  d / "log.txt") == 0);
  INFO(slurp(d / "log.txt"));
  std::istringstream in(slurp(csv));
  std::string header, line;
  std::getline(in, header);
  CHECK(header.rfind("model,layers,dtype,press_name,press_spec,compression_ratio,context_tokens,prefill_s", 0) == 0);
  std::vector<std::string> rows;
  while (std::getline(in, line)) rows.push_back(line);
  REQUIRE(rows.size() == 4);
  // smollm2-135m shape, 2 layers, bf16: 2 layers * 2 (k, v) * 3 kv heads * 64 dims * 128 tokens * 2 bytes
  CHECK(rows[1].find(",0.50,128,") != std::string::npos);
  CHECK(rows[1].find(",196608,98304,") != std::string::npos);
  CHECK(run_cli({"bench", "speed-memory", "--preset", "nosuch"}, d / "e.txt") == 1);
  CHECK(slurp(d / "e.txt").find("unknown preset 'nosuch'") != std::string::npos);
  fs::remove_all(d);
}
