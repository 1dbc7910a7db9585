// kvfigures end to end: real `kvforge sweep` / `kvforge bench speed-memory` runs (SmolLM2 on 160-token contexts, a
// 2-layer random-weight model) and rows in their exact format, through each subcommand; the PNG (loaded with
// QImage: size, not blank, the series and colour-map colours drawn), the PDF (magic) and the CSV (the plotted values,
// compared with the input rows); bad input (a message naming the file/line/field, non-zero exit, nothing written).
// QT_QPA_PLATFORM is removed from the children's environment: kvfigures must default to offscreen by itself.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <QColor>
#include <QImage>

#include <nlohmann/json.hpp>
#include <qcustomplot.h>

#include "viz/figures/figure_data.hpp"
#include "viz/plot/bars.hpp"
#include "viz/plot/heatmap.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("kvfigures_test_" + std::to_string(::getpid())) / name;
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

void write(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

// Runs `exe args...` with stdout+stderr into `log`, without QT_QPA_PLATFORM; returns the exit status.
int run(const char* exe, const std::vector<std::string>& args, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::unsetenv("QT_QPA_PLATFORM");
    std::vector<char*> argv{const_cast<char*>(exe)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(exe, argv.data());
    ::_exit(127);
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int figures(const std::vector<std::string>& args, const fs::path& log) { return run(KVFIGURES_BIN, args, log); }
int kvforge(const std::vector<std::string>& args, const fs::path& log) { return run(KVF_CLI, args, log); }

std::vector<std::vector<std::string>> read_csv(const fs::path& p, std::string* header) {
  std::istringstream in(slurp(p));
  std::string line;
  std::getline(in, *header);
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> f;
  while (std::getline(in, line)) {
    REQUIRE(kvviz::figures::split_csv_line(line, &f));
    rows.push_back(f);
  }
  return rows;
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::vector<json> rows;
  std::istringstream in(slurp(p));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

std::string fmt2(double x) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f", x);
  return b;
}

// Pixels within `tol` (per channel) of `c`.
int count_near(const QImage& img, QColor c, int tol) {
  int n = 0;
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) {
      const QColor p = img.pixelColor(x, y);
      if (std::abs(p.red() - c.red()) <= tol && std::abs(p.green() - c.green()) <= tol &&
          std::abs(p.blue() - c.blue()) <= tol)
        ++n;
    }
  return n;
}

// The three outputs exist; the PNG loads at `w` x `h` pixels (0: any), is not blank; the PDF has its magic.
QImage check_outputs(const fs::path& prefix, int w = 0, int h = 0) {
  const fs::path png = prefix.string() + ".png", pdf = prefix.string() + ".pdf", csv = prefix.string() + ".csv";
  REQUIRE(fs::exists(png));
  REQUIRE(fs::exists(pdf));
  REQUIRE(fs::exists(csv));
  QImage img(QString::fromStdString(png.string()));
  REQUIRE(!img.isNull());
  if (w) CHECK(img.width() == w);
  if (h) CHECK(img.height() == h);
  CHECK(img.width() >= 600);
  CHECK(img.height() >= 300);
  img = img.convertToFormat(QImage::Format_RGB32);
  std::set<QRgb> colours;
  int64_t ink = 0;
  for (int y = 0; y < img.height(); ++y)
    for (int x = 0; x < img.width(); ++x) {
      const QRgb p = img.pixel(x, y);
      colours.insert(p);
      ink += p != qRgb(255, 255, 255);
    }
  const double frac = static_cast<double>(ink) / (static_cast<double>(img.width()) * img.height());
  INFO(png << ": " << colours.size() << " colours, " << frac << " of the pixels not white");
  CHECK(colours.size() > 50);  // text, antialiased lines, series colours
  CHECK(frac > 0.01);
  CHECK(frac < 0.9);
  CHECK(slurp(pdf).rfind("%PDF", 0) == 0);
  CHECK(slurp(pdf).size() > 1000);
  // nothing left behind under temporary names
  for (const auto& e : fs::directory_iterator(prefix.parent_path()))
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  return img;
}

// One `kvforge sweep` row (copied from a real run), with its identity and score changed.
json sweep_row(const std::string& press, double ratio, const std::string& task, int64_t length, double score,
               bool needle = false) {
  json r = json::parse(
      needle
          ? R"({"achieved_compression":0.0,"answer_tokens":8,"answers":[["5810213"]],"cache_mode":"compact","compression_ratio":0.0,"compression_s":0.0,"context_tokens":145,"dataset":"needle_in_haystack","decode_s":0.875806035,"decode_tokens_per_s":9.1344426508776,"finished_at":"2026-11-23T18:04:38Z","generate_s":0.000904835,"key":"needle|no_press|0.00|depth0|160","kv_bytes_after":6681600,"kv_bytes_before":6681600,"length":160,"max_new_tokens":8,"model":"default","num_samples":1,"peak_rss_bytes":774590464,"predictions":[":\n1. 581"],"prefill_s":0.837454572,"press_name":"no_press","press_spec":"","question_tokens":33,"rss_bytes":697073664,"score":0.0,"scores":[0.0],"seed":42,"task":"depth0","wall_s":1.714413571})"
          : R"({"achieved_compression":0.0,"answer_tokens":4,"answers":[["4169057"]],"cache_mode":"compact","compression_ratio":0.0,"compression_s":0.0,"context_tokens":146,"dataset":"ruler","decode_s":0.387822735,"decode_tokens_per_s":10.313990488463757,"finished_at":"2026-11-23T18:04:20Z","generate_s":0.000273136,"key":"ruler|no_press|0.00|niah_single_1|160","kv_bytes_after":6727680,"kv_bytes_before":6727680,"length":160,"max_new_tokens":4,"model":"default","num_samples":1,"peak_rss_bytes":774766592,"predictions":[": 41"],"prefill_s":0.540095963,"press_name":"no_press","press_spec":"","question_tokens":33,"rss_bytes":695001088,"score":0.0,"scores":[0.0],"seed":42,"task":"niah_single_1","wall_s":0.928767241})");
  r["press_name"] = press;
  r["press_spec"] = press == "no_press" ? "" : press;
  r["compression_ratio"] = ratio;
  r["task"] = task;
  r["length"] = length;
  r["score"] = score;
  r["scores"] = json::array({score / 100.0});
  r["key"] = std::string(needle ? "needle|" : "ruler|") + press + "|" + fmt2(ratio) + "|" + task + "|" + std::to_string(length);
  return r;
}

std::string jsonl(const std::vector<json>& rows) {
  std::string s;
  for (const auto& r : rows) s += r.dump() + "\n";
  return s;
}

// A `kvforge bench speed-memory` CSV (header and row format of experiments/eval/eval_bench.cpp).
std::string bench_csv(const std::vector<std::tuple<double, int64_t, int64_t>>& rows) {
  std::string s =
      "model,layers,dtype,press_name,press_spec,compression_ratio,context_tokens,prefill_s,compression_s,"
      "decode_tokens,decode_s,decode_tokens_per_s,kv_bytes_before,kv_bytes_after,weight_bytes,rss_before_bytes,"
      "peak_rss_bytes\n";
  for (const auto& [r, len, after] : rows) {
    char line[512];
    std::snprintf(line, sizeof line, "smollm2-135m,2,bfloat16,chunkkv,\"chunkkv(snapkv, chunk_length=20)\",%.2f,%lld,0.285594,0.006646,2,0.041270,48.462,%lld,%lld,70784640,207687680,274370560\n",
                  r, static_cast<long long>(len), static_cast<long long>(len * 1536), static_cast<long long>(after));
    s += line;
  }
  return s;
}

}  // namespace

TEST_CASE("kvfigures --help lists the three subcommands", "[figures]") {
  const auto d = temp_dir("help");
  REQUIRE(figures({"--help"}, d / "h.txt") == 0);
  const std::string h = slurp(d / "h.txt");
  for (const char* s : {"ratio-curves", "needle-heatmap", "speed-memory"}) CHECK(h.find(s) != std::string::npos);
  REQUIRE(figures({"ratio-curves", "--help"}, d / "r.txt") == 0);
  CHECK(slurp(d / "r.txt").find("--task") != std::string::npos);
  CHECK(figures({}, d / "none.txt") != 0);
  fs::remove_all(d);
}

TEST_CASE("ratio-curves: a real kvforge sweep, every cell and the average in the CSV, series drawn", "[figures][cli]") {
  const auto d = temp_dir("ratio_real");
  const fs::path res = d / "results.jsonl";
  REQUIRE(kvforge({"sweep", "--model", "default", "--presses", "no_press,knorm,streaming_llm", "--ratios", "0.25,0.5",
                   "--task-list", "niah_single_1,vt", "--lengths", "160", "--num_samples", "1", "--max_new_tokens", "4",
                   "--threads", "1", "--out", res.string()},
                  d / "sweep.log") == 0);
  const auto rows = read_jsonl(res);
  REQUIRE(rows.size() == 10);  // no_press once + 2 presses x 2 ratios, x 2 tasks

  REQUIRE(figures({"ratio-curves", "--in", res.string(), "--out", (d / "fixed").string(), "--width", "1000", "--height",
                   "700"},
                  d / "fixed.log") == 0);
  INFO(slurp(d / "fixed.log"));
  check_outputs(d / "fixed", 2000, 1400);  // points x the default scale 2
  CHECK(slurp(d / "fixed.pdf").find("/MediaBox [0 0 1000.000000 700.000000]") != std::string::npos);  // points

  REQUIRE(figures({"ratio-curves", "--in", res.string(), "--out", (d / "rc").string(), "--scale", "1"}, d / "rc.log") == 0);
  CHECK(slurp(d / "rc.log").find("rc.png") != std::string::npos);
  const QImage img = check_outputs(d / "rc");
  // knorm and streaming_llm in the first two palette colours, no_press dark grey (lines, markers, legend icons)
  CHECK(count_near(img, kvviz::plot::palette_color(0), 10) > 30);
  CHECK(count_near(img, kvviz::plot::palette_color(1), 10) > 30);
  CHECK(count_near(img, QColor(90, 90, 90), 10) > 30);

  std::string header;
  const auto csv = read_csv(d / "rc.csv", &header);
  CHECK(header == "press,ratio,task,length,score");
  REQUIRE(csv.size() == 10 + 5);  // every cell, plus one average point per (press, ratio)
  std::map<std::string, double> got;
  for (const auto& r : csv) {
    REQUIRE(r.size() == 5);
    CHECK(r[3] == "160");
    got[r[0] + "|" + r[1] + "|" + r[2]] = std::stod(r[4]);
  }
  std::map<std::string, double> sum;
  for (const auto& r : rows) {
    const std::string id = r["press_name"].get<std::string>() + "|" + fmt2(r["compression_ratio"].get<double>());
    INFO(id << " " << r["task"]);
    REQUIRE(got.count(id + "|" + r["task"].get<std::string>()));
    CHECK(got[id + "|" + r["task"].get<std::string>()] == Approx(r["score"].get<double>()).margin(1e-4));
    sum[id] += r["score"].get<double>();
  }
  REQUIRE(sum.size() == 5);
  for (const auto& [id, s] : sum) CHECK(got.at(id + "|average") == Approx(s / 2).margin(1e-3));
  fs::remove_all(d);
}

TEST_CASE("ratio-curves: one figure per length, --length, --task, an average only over complete rows", "[figures]") {
  const auto d = temp_dir("ratio_synth");
  std::vector<json> rows;
  for (int64_t len : {160, 320})
    for (const std::string task : {"niah_single_1", "niah_single_2", "vt"}) {
      rows.push_back(sweep_row("no_press", 0, task, len, 100));
      for (double r : {0.25, 0.5, 0.75}) {
        rows.push_back(sweep_row("knorm", r, task, len, 100 * (1 - r)));
        if (!(len == 320 && task == "vt" && r == 0.75)) rows.push_back(sweep_row("snapkv", r, task, len, 50 * (1 - r)));
      }
    }
  // a torn last line (an interrupted sweep): skipped with a warning
  write(d / "a.jsonl", jsonl(rows) + R"({"key":"ruler|knorm|0.25|cwe|160","sco)");
  REQUIRE(figures({"ratio-curves", "--in", (d / "a.jsonl").string(), "--out", (d / "all").string()}, d / "all.log") == 0);
  const std::string log = slurp(d / "all.log");
  INFO(log);
  CHECK(log.find("torn last line") != std::string::npos);
  CHECK(log.find("snapkv at ratio 0.75, length 320: no row for vt") != std::string::npos);
  CHECK(!fs::exists(d / "all.png"));
  for (const char* L : {"all_L160", "all_L320"}) {
    const QImage img = check_outputs(d / L);
    // knorm and snapkv lines in 4 panels (3 tasks + the average), ~3.6 px wide at scale 2; no_press dashed grey
    CHECK(count_near(img, kvviz::plot::palette_color(0), 10) > 1000);
    CHECK(count_near(img, kvviz::plot::palette_color(1), 10) > 1000);
    CHECK(count_near(img, QColor(90, 90, 90), 10) > 300);
  }
  std::string header;
  CHECK(read_csv(d / "all_L160.csv", &header).size() == 7 * 3 + 7);  // 7 (press, ratio) x 3 tasks + 7 averages
  const auto l320 = read_csv(d / "all_L320.csv", &header);
  CHECK(l320.size() == 6 * 3 + 2 + 6);  // snapkv 0.75 has niah_single_1/2 but no vt: no average point
  for (const auto& r : l320) CHECK(!(r[0] == "snapkv" && r[1] == "0.75" && r[2] == "average"));
  for (const auto& r : l320)
    if (r[0] == "knorm" && r[2] == "average") CHECK(std::stod(r[4]) == Approx(100 * (1 - std::stod(r[1]))));

  REQUIRE(figures({"ratio-curves", "--in", (d / "a.jsonl").string(), "--out", (d / "one").string(), "--length", "320",
                   "--task", "vt,niah_single_2"},
                  d / "one.log") == 0);
  check_outputs(d / "one");
  const auto one = read_csv(d / "one.csv", &header);
  std::set<std::string> tasks;
  for (const auto& r : one) {
    tasks.insert(r[2]);
    CHECK(r[3] == "320");
  }
  CHECK(tasks == std::set<std::string>{"vt", "niah_single_2", "average"});

  // a needle grid enters as one task (mean over depths)
  std::vector<json> needle;
  for (int depth : {0, 50, 100}) {
    needle.push_back(sweep_row("no_press", 0, "depth" + std::to_string(depth), 160, depth == 50 ? 0 : 100, true));
    needle.push_back(sweep_row("knorm", 0.5, "depth" + std::to_string(depth), 160, depth == 0 ? 100 : 0, true));
  }
  write(d / "n.jsonl", jsonl(needle));
  REQUIRE(figures({"ratio-curves", "--in", (d / "n.jsonl").string(), "--out", (d / "n").string()}, d / "n.log") == 0);
  check_outputs(d / "n");
  const auto n = read_csv(d / "n.csv", &header);
  REQUIRE(n.size() == 2);
  CHECK(n[0][2] == "needle_in_haystack");
  CHECK(std::stod(n[0][4]) == Approx(200.0 / 3).margin(1e-3));
  CHECK(std::stod(n[1][4]) == Approx(100.0 / 3).margin(1e-3));
  fs::remove_all(d);
}

TEST_CASE("needle-heatmap: a real needle-grid sweep, one panel per press, scores in the CSV", "[figures][cli]") {
  const auto d = temp_dir("needle_real");
  const fs::path res = d / "needle.jsonl";
  REQUIRE(kvforge({"sweep", "--model", "default", "--dataset", "needle_in_haystack", "--needle_depth", "0,50,100",
                   "--presses", "no_press,knorm", "--ratios", "0.5", "--lengths", "160", "--num_samples", "1",
                   "--max_new_tokens", "12", "--threads", "1", "--out", res.string()},
                  d / "sweep.log") == 0);
  const auto rows = read_jsonl(res);
  REQUIRE(rows.size() == 6);
  REQUIRE(figures({"needle-heatmap", "--in", res.string(), "--out", (d / "nh").string()}, d / "nh.log") == 0);
  INFO(slurp(d / "nh.log"));
  const QImage img = check_outputs(d / "nh");
  std::string header;
  const auto csv = read_csv(d / "nh.csv", &header);
  CHECK(header == "press,ratio,length,depth,score");
  REQUIRE(csv.size() == 6);
  std::map<std::string, double> got;
  for (const auto& r : csv) got[r[0] + "|" + r[1] + "|" + r[2] + "|" + r[3]] = std::stod(r[4]);
  QCPColorGradient grad = kvviz::plot::score_gradient();  // color() is not const
  for (const auto& r : rows) {
    const std::string task = r["task"];
    const std::string id = r["press_name"].get<std::string>() + "|" + fmt2(r["compression_ratio"].get<double>()) + "|" +
                           std::to_string(r["length"].get<int64_t>()) + "|" + task.substr(5);
    INFO(id);
    REQUIRE(got.count(id));
    CHECK(got[id] == Approx(r["score"].get<double>()).margin(1e-4));
    // its cell is drawn in the colour of its score
    const QColor c = QColor::fromRgb(grad.color(r["score"].get<double>(), QCPRange(0, 100)));
    CHECK(count_near(img, c, 6) > 5000);  // a cell is ~300 x 80 px; the colour bar alone has far fewer
  }

  REQUIRE(figures({"needle-heatmap", "--in", res.string(), "--out", (d / "knorm").string(), "--press", "knorm", "--ratio",
                   "0.5"},
                  d / "k.log") == 0);
  check_outputs(d / "knorm");
  const auto k = read_csv(d / "knorm.csv", &header);
  REQUIRE(k.size() == 3);
  for (const auto& r : k) CHECK((r[0] == "knorm" && r[1] == "0.50"));
  fs::remove_all(d);
}

TEST_CASE("needle-heatmap: lengths x depths grid, missing cells, colours of 0 and 100", "[figures]") {
  const auto d = temp_dir("needle_synth");
  std::vector<json> rows;
  for (const std::string press : {"no_press", "knorm", "snapkv"})
    for (int64_t len : {1024, 2048, 4096})
      for (int depth : {0, 25, 50, 75, 100}) {
        if (press == "snapkv" && len == 4096 && depth == 100) continue;  // not run: a grey cell
        const double s = press == "no_press" ? 100 : (depth + len / 1024) % 2 == 0 ? 100 : 0;
        rows.push_back(sweep_row(press, press == "no_press" ? 0 : 0.5, "depth" + std::to_string(depth), len, s, true));
      }
  rows.push_back(sweep_row("knorm", 0.25, "niah_single_1", 1024, 50));  // a RULER row: ignored here
  write(d / "grid.jsonl", jsonl(rows));
  REQUIRE(figures({"needle-heatmap", "--in", (d / "grid.jsonl").string(), "--out", (d / "grid").string()}, d / "g.log") == 0);
  INFO(slurp(d / "g.log"));
  const QImage img = check_outputs(d / "grid");
  CHECK(count_near(img, QColor(253, 231, 37), 4) > 20000);  // viridis 100 (a cell: ~180 x 80 px)
  CHECK(count_near(img, QColor(68, 1, 84), 4) > 20000);     // viridis 0
  CHECK(count_near(img, QColor(215, 215, 215), 2) > 5000);  // the cell not run
  std::string header;
  const auto csv = read_csv(d / "grid.csv", &header);
  CHECK(csv.size() == 3 * 15 - 1);
  CHECK(csv.front()[0] == "no_press");  // no_press first
  fs::remove_all(d);
}

TEST_CASE("speed-memory: a real kvforge bench speed-memory CSV, one line per ratio, values in the CSV", "[figures][cli]") {
  const auto d = temp_dir("speed_real");
  const fs::path bench = d / "bench.csv";
  REQUIRE(kvforge({"bench", "speed-memory", "--preset", "smollm2-135m", "--num-layers", "2", "--dtype", "bfloat16",
                   "--lengths", "128,160,256", "--ratios", "0,0.5", "--press_name", "knorm", "--decode-tokens", "2",
                   "--threads", "1", "--out", bench.string()},
                  d / "bench.log") == 0);
  REQUIRE(figures({"speed-memory", "--in", bench.string(), "--out", (d / "sm").string(), "--width", "900", "--height",
                   "600", "--scale", "1.5"},
                  d / "sm.log") == 0);
  INFO(slurp(d / "sm.log"));
  const QImage img = check_outputs(d / "sm", 1350, 900);
  CHECK(count_near(img, kvviz::plot::palette_color(0), 10) > 30);
  CHECK(count_near(img, kvviz::plot::palette_color(1), 10) > 30);
  std::string header;
  const auto in = read_csv(bench, &header);
  const auto csv = read_csv(d / "sm.csv", &header);
  CHECK(header == "press,ratio,context_tokens,peak_rss_mib,kv_mib_before,kv_mib_after,prefill_s,compression_s,"
                  "decode_tokens_per_s");
  REQUIRE(in.size() == 6);
  REQUIRE(csv.size() == 6);
  for (const auto& b : in) {  // bench columns: 5 ratio, 6 tokens, 7 prefill, 11 tok/s, 12 kv before, 13 kv after, 16 peak
    bool found = false;
    for (const auto& c : csv) {
      if (c[1] != b[5] || c[2] != b[6]) continue;
      found = true;
      CHECK(c[0] == "knorm");
      CHECK(std::stod(c[3]) == Approx(std::stod(b[16]) / 1048576.0).epsilon(1e-5));
      CHECK(std::stod(c[4]) == Approx(std::stod(b[12]) / 1048576.0).epsilon(1e-5));
      CHECK(std::stod(c[5]) == Approx(std::stod(b[13]) / 1048576.0).epsilon(1e-5));
      CHECK(std::stod(c[6]) == Approx(std::stod(b[7])).epsilon(1e-5));
      CHECK(std::stod(c[8]) == Approx(std::stod(b[11])).epsilon(1e-5));
    }
    INFO("ratio " << b[5] << " tokens " << b[6]);
    CHECK(found);
  }
  // the compressed cache is half the uncompressed one (2 layers x 2 x 3 kv heads x 64 x 2 bytes per token)
  for (const auto& c : csv)
    if (c[1] == "0.50") CHECK(std::stod(c[5]) * 2 == Approx(std::stod(c[4])).epsilon(0.02));
  fs::remove_all(d);
}

TEST_CASE("speed-memory: quoted press specs, several files and presses", "[figures]") {
  const auto d = temp_dir("speed_synth");
  write(d / "a.csv", bench_csv({{0.0, 512, 512 * 1536}, {0.5, 512, 256 * 1536}, {0.0, 2048, 2048 * 1536}, {0.5, 2048, 1024 * 1536}}));
  std::string other = bench_csv({{0.25, 512, 384 * 1536}, {0.25, 2048, 1536 * 1536}});
  const std::string spec = "chunkkv,\"chunkkv(snapkv, chunk_length=20)\"";
  for (size_t p = 0; (p = other.find(spec, p)) != std::string::npos;) other.replace(p, spec.size(), "knorm,knorm");
  write(d / "b.csv", other);
  REQUIRE(figures({"speed-memory", "--in", (d / "a.csv").string(), "--in", (d / "b.csv").string(), "--out",
                   (d / "two").string()},
                  d / "two.log") == 0);
  INFO(slurp(d / "two.log"));
  check_outputs(d / "two");
  std::string header;
  const auto csv = read_csv(d / "two.csv", &header);
  REQUIRE(csv.size() == 6);
  std::set<std::string> series;
  for (const auto& r : csv) series.insert(r[0] + " " + r[1]);
  CHECK(series == std::set<std::string>{"chunkkv 0.00", "chunkkv 0.50", "knorm 0.25"});
  fs::remove_all(d);
}

TEST_CASE("bad input: a message naming the file, line and field, non-zero exit, nothing (half-)written", "[figures]") {
  const auto d = temp_dir("bad");
  const std::string out = (d / "fig").string();
  // a figure written before: a failing run must leave it as it was
  write(d / "good.jsonl", jsonl({sweep_row("no_press", 0, "vt", 160, 20), sweep_row("knorm", 0.5, "vt", 160, 10)}));
  REQUIRE(figures({"ratio-curves", "--in", (d / "good.jsonl").string(), "--out", out}, d / "good.log") == 0);
  const std::string png_before = slurp(out + ".png"), csv_before = slurp(out + ".csv");

  auto expect_error = [&](const std::vector<std::string>& args, const std::vector<std::string>& needles) {
    const fs::path log = d / "err.log";
    const int rc = figures(args, log);
    const std::string msg = slurp(log);
    INFO("kvfigures " << args[0] << " ...: exit " << rc << ": " << msg);
    CHECK(rc != 0);
    CHECK(msg.find("kvfigures: error: ") != std::string::npos);
    for (const auto& n : needles) CHECK(msg.find(n) != std::string::npos);
    CHECK(slurp(out + ".png") == png_before);
    CHECK(slurp(out + ".csv") == csv_before);
    for (const auto& e : fs::directory_iterator(d)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  };
  const std::string missing = (d / "nonexistent.jsonl").string();
  expect_error({"ratio-curves", "--in", missing, "--out", out}, {"cannot read results file", missing});

  const fs::path mid = d / "middle.jsonl";
  write(mid, jsonl({sweep_row("knorm", 0.5, "vt", 160, 10)}) + "{not json\n" + jsonl({sweep_row("knorm", 0.25, "vt", 160, 10)}));
  expect_error({"ratio-curves", "--in", mid.string(), "--out", out}, {mid.string(), "line 2", "not a JSON object"});

  json no_score = sweep_row("knorm", 0.5, "vt", 160, 10);
  no_score.erase("score");
  write(d / "noscore.jsonl", jsonl({sweep_row("knorm", 0.25, "vt", 160, 10), no_score}));
  expect_error({"ratio-curves", "--in", (d / "noscore.jsonl").string(), "--out", out},
               {"noscore.jsonl' line 2", "field 'score' is missing"});

  json bad_type = sweep_row("knorm", 0.5, "vt", 160, 10);
  bad_type["compression_ratio"] = "half";
  write(d / "type.jsonl", jsonl({bad_type}));
  expect_error({"ratio-curves", "--in", (d / "type.jsonl").string(), "--out", out},
               {"type.jsonl' line 1", "field 'compression_ratio' must be a number (got \"half\")"});

  json bad_depth = sweep_row("knorm", 0.5, "depthX", 160, 10, true);
  write(d / "depth.jsonl", jsonl({bad_depth}));
  expect_error({"needle-heatmap", "--in", (d / "depth.jsonl").string(), "--out", out},
               {"depth.jsonl' line 1", "field 'task'", "depthX"});

  expect_error({"ratio-curves", "--in", (d / "good.jsonl").string(), "--out", out, "--task", "nosuch"},
               {"good.jsonl", "no rows for task 'nosuch'", "tasks present: vt"});
  expect_error({"ratio-curves", "--in", (d / "good.jsonl").string(), "--out", out, "--length", "999"},
               {"good.jsonl", "no rows at length 999", "lengths present: 160"});
  write(d / "empty.jsonl", "");
  expect_error({"ratio-curves", "--in", (d / "empty.jsonl").string(), "--out", out}, {"empty.jsonl", "no result rows"});
  expect_error({"needle-heatmap", "--in", (d / "good.jsonl").string(), "--out", out},
               {"good.jsonl", "no needle_in_haystack rows", "datasets present: ruler"});
  write(d / "needle.jsonl", jsonl({sweep_row("knorm", 0.5, "depth50", 160, 100, true)}));
  expect_error({"needle-heatmap", "--in", (d / "needle.jsonl").string(), "--out", out, "--press", "snapkv"},
               {"needle.jsonl", "press 'snapkv'", "present: knorm 0.50"});

  write(d / "nocol.csv", "model,layers\nx,2\n");
  expect_error({"speed-memory", "--in", (d / "nocol.csv").string(), "--out", out},
               {"nocol.csv' line 1", "missing column 'dtype'"});
  std::string short_row = bench_csv({{0.0, 512, 1}, {0.5, 512, 1}});
  short_row += "smollm2-135m,2,bfloat16\n";
  write(d / "short.csv", short_row);
  expect_error({"speed-memory", "--in", (d / "short.csv").string(), "--out", out},
               {"short.csv' line 4", "3 fields, the header has 17"});
  std::string nan_row = bench_csv({{0.0, 512, 1}});
  nan_row.replace(nan_row.find("0.285594"), 8, "fast");
  write(d / "nan.csv", nan_row);
  expect_error({"speed-memory", "--in", (d / "nan.csv").string(), "--out", out},
               {"nan.csv' line 2", "field 'prefill_s' is not a number ('fast')"});
  write(d / "header_only.csv", bench_csv({}));
  expect_error({"speed-memory", "--in", (d / "header_only.csv").string(), "--out", out},
               {"header_only.csv", "no rows after the header"});
  write(d / "empty.csv", "");
  expect_error({"speed-memory", "--in", (d / "empty.csv").string(), "--out", out}, {"empty.csv' is empty"});

  expect_error({"ratio-curves", "--in", (d / "good.jsonl").string(), "--out", (d / "no_such_dir" / "fig").string()},
               {"output folder", "no_such_dir", "does not exist"});
  // CLI11: a missing required option
  const int rc = figures({"ratio-curves", "--out", out}, d / "cli.log");
  CHECK(rc != 0);
  CHECK(slurp(d / "cli.log").find("--in") != std::string::npos);
  fs::remove_all(d);
}

TEST_CASE("figure data: CSV fields, duplicated cells across files", "[figures]") {
  using namespace kvviz::figures;
  std::vector<std::string> f;
  REQUIRE(split_csv_line(R"(a,"b, c","say ""hi""",)", &f));
  CHECK(f == std::vector<std::string>{"a", "b, c", "say \"hi\"", ""});
  CHECK(!split_csv_line(R"(a,"open)", &f));

  const auto d = temp_dir("data");
  write(d / "1.jsonl", jsonl({sweep_row("knorm", 0.5, "vt", 160, 10)}));
  write(d / "2.jsonl", jsonl({sweep_row("knorm", 0.5, "vt", 160, 30), sweep_row("knorm", 0.25, "vt", 160, 40)}));
  std::vector<std::string> warnings;
  const auto cells = read_sweep({(d / "1.jsonl").string(), (d / "2.jsonl").string()}, &warnings);
  REQUIRE(cells.size() == 2);
  CHECK(cells[0].score == 10);  // the first file wins
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("another score") != std::string::npos);
  fs::remove_all(d);
}
