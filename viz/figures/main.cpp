// kvfigures: figures of the kvforge experiment binaries, rendered offscreen with QCustomPlot (kvviz's plotting
// layer): PNG (2x), PDF and the plotted data as CSV. GPL-3.0 (links QCustomPlot); see viz/LICENSE-NOTE.md.
//   kvfigures ratio-curves   --in RESULTS.jsonl [--in ...] --out PREFIX [--task T] [--length L]   (kvforge sweep)
//   kvfigures needle-heatmap --in RESULTS.jsonl --out PREFIX [--press P] [--ratio R]           (kvforge sweep, needle grid)
//   kvfigures speed-memory   --in BENCH.csv [--in ...] --out PREFIX                            (kvforge bench speed-memory)
// docs/eval.md, "Figures".
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <QApplication>

#include <qcustomplot.h>

#include "viz/figures/figure_data.hpp"
#include "viz/figures/figures.hpp"

namespace {

using namespace kvviz::figures;

struct Common {
  std::vector<std::string> in;
  std::string out;
  int width = 0, height = 0;
  double scale = 2.0;
};

void add_common(CLI::App* cmd, Common& c, const char* in_help) {
  cmd->add_option("--in", c.in, in_help)->required();
  cmd->add_option("--out", c.out, "output prefix: writes PREFIX.png, PREFIX.pdf and PREFIX.csv")->required();
  cmd->add_option("--width", c.width, "figure width in points (default: from the number of panels)");
  cmd->add_option("--height", c.height, "figure height in points (default: from the number of panels)");
  cmd->add_option("--scale", c.scale, "PNG pixels per point (default 2)")->check(CLI::Range(0.25, 8.0));
}

void warn(const std::vector<std::string>& w) {
  for (const auto& s : w) std::fprintf(stderr, "kvfigures: warning: %s\n", s.c_str());
}

QSize sized(QSize natural, const Common& c) {
  return QSize(c.width > 0 ? c.width : natural.width(), c.height > 0 ? c.height : natural.height());
}

void report(const std::vector<std::string>& files, const std::string& what) {
  std::printf("kvfigures: wrote %s, %s, %s (%s)\n", files[0].c_str(), files[1].c_str(), files[2].c_str(), what.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kvfigures: figures of kvforge experiments, rendered offscreen (PNG at 2x, PDF, and the plotted data "
               "as CSV). docs/eval.md, \"Figures\"."};
  app.require_subcommand(1);

  Common rc, nc, sc;
  std::vector<std::string> tasks;
  int64_t length = 0;
  auto* ratio_cmd = app.add_subcommand("ratio-curves",
                                       "score vs compression ratio, one line per press, one panel per task plus the "
                                       "average (kvforge sweep results)");
  add_common(ratio_cmd, rc, "kvforge sweep results (JSONL); repeat to combine files (a cell in several: the first)");
  ratio_cmd->add_option("--task", tasks, "only these tasks (repeat or comma-separate)")->delimiter(',');
  ratio_cmd->add_option("--length", length,
                        "only this context length (default: every length, one figure each, PREFIX_L<length>.*)");

  std::string press;
  double ratio = -1;
  auto* needle_cmd = app.add_subcommand("needle-heatmap",
                                        "needle in a haystack: score by context length x needle depth, one panel per "
                                        "press and ratio (kvforge sweep --dataset needle_in_haystack results)");
  add_common(needle_cmd, nc, "kvforge sweep results (JSONL) with needle_in_haystack rows; repeat to combine");
  needle_cmd->add_option("--press", press, "only this press (kvpress name, e.g. knorm or no_press)");
  needle_cmd->add_option("--ratio", ratio, "only this compression ratio")->check(CLI::Range(0.0, 1.0));

  auto* speed_cmd = app.add_subcommand("speed-memory",
                                       "peak RSS, KV-cache bytes, prefill and compression time, decode tokens/s vs "
                                       "context length, one line per compression ratio (kvforge bench speed-memory CSV)");
  add_common(speed_cmd, sc, "CSV of kvforge bench speed-memory; repeat to combine (e.g. several presses)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  // Nothing is shown: render offscreen unless the caller chose a platform.
  if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  static int qargc = 1;
  QApplication qapp(qargc, argv);
  QCustomPlot plot;
  std::vector<std::string> warnings;
  try {
    if (ratio_cmd->parsed()) {
      const auto cells = read_sweep(rc.in, &warnings);
      const std::optional<int64_t> want_length = ratio_cmd->count("--length") ? std::optional<int64_t>(length) : std::nullopt;
      const auto figs = ratio_figures(cells, rc.in, tasks, want_length, &warnings);
      warn(warnings);
      for (const auto& f : figs) {
        const std::string prefix = figs.size() > 1 ? rc.out + "_L" + std::to_string(f.length) : rc.out;
        const QSize size = sized(build_ratio_curves(&plot, f), rc);
        const auto files = write_outputs(&plot, prefix, ratio_csv(f), size, rc.scale,
                                         "Score vs compression ratio, " + std::to_string(f.length) + " tokens");
        report(files, std::to_string(f.length) + " tokens: " + std::to_string(f.tasks.size()) + " task(s), " +
                          std::to_string(f.presses.size()) + " press(es)");
      }
    } else if (needle_cmd->parsed()) {
      const auto cells = read_sweep(nc.in, &warnings);
      warn(warnings);
      const auto f = needle_figure(cells, nc.in, needle_cmd->count("--press") ? std::optional<std::string>(press) : std::nullopt,
                                   needle_cmd->count("--ratio") ? std::optional<double>(ratio) : std::nullopt);
      const QSize size = sized(build_needle_heatmap(&plot, f), nc);
      const auto files = write_outputs(&plot, nc.out, needle_csv(f), size, nc.scale, "Needle in a haystack");
      report(files, std::to_string(f.panels.size()) + " panel(s), " + std::to_string(f.lengths.size()) + " length(s) x " +
                        std::to_string(f.depths.size()) + " depth(s)");
    } else if (speed_cmd->parsed()) {
      const auto rows = read_bench(sc.in, &warnings);
      const auto f = speed_figure(rows, sc.in, &warnings);
      warn(warnings);
      const QSize size = sized(build_speed_memory(&plot, f), sc);
      const auto files = write_outputs(&plot, sc.out, speed_csv(f), size, sc.scale, "Speed and memory");
      report(files, std::to_string(f.series.size()) + " series, " + std::to_string(f.lengths.size()) + " length(s)");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvfigures: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
