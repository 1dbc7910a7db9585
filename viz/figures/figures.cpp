#include "viz/figures/figures.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <qcustomplot.h>

#include "viz/plot/bars.hpp"
#include "viz/plot/heatmap.hpp"

namespace kvviz::figures {
namespace {

namespace fs = std::filesystem;

QString qs(const std::string& s) { return QString::fromStdString(s); }

QCPScatterStyle::ScatterShape marker(int i) {
  static const QCPScatterStyle::ScatterShape m[] = {QCPScatterStyle::ssDisc,     QCPScatterStyle::ssSquare,
                                                    QCPScatterStyle::ssTriangle, QCPScatterStyle::ssDiamond,
                                                    QCPScatterStyle::ssCircle,   QCPScatterStyle::ssTriangleInverted,
                                                    QCPScatterStyle::ssCross,    QCPScatterStyle::ssPlus};
  return m[static_cast<unsigned>(i) % 8];
}

void reset(QCustomPlot* plot) {
  plot->clearPlottables();
  plot->clearItems();
  plot->plotLayout()->clear();  // also deletes the default axis rect and its legend
  plot->plotLayout()->setRowSpacing(4);
  plot->setBackground(Qt::white);
}

QCPTextElement* text_element(QCustomPlot* plot, const QString& text, int pt, bool bold) {
  auto* t = new QCPTextElement(plot, text, plot::ui_font(pt, bold));
  t->setMargins(QMargins(4, 2, 4, 2));
  return t;
}

// Rows 0 and 1 of the plot layout: a bold title and a grey subtitle. Returns the width (points) they need.
int add_titles(QCustomPlot* plot, const QString& title, const QStringList& subtitle) {
  auto* t = text_element(plot, title, 12, true);
  plot->plotLayout()->addElement(0, 0, t);
  const QString sub = subtitle.join(QStringLiteral("   ·   "));
  auto* s = text_element(plot, sub, 9, false);
  s->setTextColor(QColor(80, 80, 80));
  plot->plotLayout()->addElement(1, 0, s);
  plot->plotLayout()->setRowStretchFactor(0, 0.001);
  plot->plotLayout()->setRowStretchFactor(1, 0.001);
  const int w = std::max(QFontMetrics(plot::ui_font(12, true)).horizontalAdvance(title),
                         QFontMetrics(plot::ui_font(9)).horizontalAdvance(sub));
  return w + 40;
}

void light_grid(QCPAxisRect* rect) {
  for (auto* ax : {rect->axis(QCPAxis::atBottom), rect->axis(QCPAxis::atLeft)}) {
    ax->grid()->setVisible(true);
    ax->grid()->setPen(QPen(QColor(225, 225, 225), 0, Qt::SolidLine));
    ax->grid()->setZeroLinePen(Qt::NoPen);
  }
}

// A panel: a bold title above an axis rect, in one cell of `grid`.
QCPAxisRect* add_panel(QCustomPlot* plot, QCPLayoutGrid* grid, int row, int col, const QString& title,
                       QCPMarginGroup* group) {
  auto* cell = new QCPLayoutGrid;
  grid->addElement(row, col, cell);
  cell->setRowSpacing(0);
  cell->addElement(0, 0, text_element(plot, title, 9, true));
  auto* rect = new QCPAxisRect(plot);
  cell->addElement(1, 0, rect);
  cell->setRowStretchFactor(0, 0.001);
  plot::style_axis_rect(rect, 8);
  rect->setMarginGroup(QCP::msLeft | QCP::msRight, group);
  return rect;
}

// A legend sized to its entries, centred in its own row or cell (spacers on both sides take the rest).
QCPLegend* add_legend(QCustomPlot* plot, QCPLayoutGrid* parent, int row, int col, int wrap) {
  auto* holder = new QCPLayoutGrid;
  parent->addElement(row, col, holder);
  auto* legend = new QCPLegend;
  holder->addElement(0, 0, new QCPLayoutElement(plot));
  holder->addElement(0, 1, legend);
  holder->addElement(0, 2, new QCPLayoutElement(plot));
  holder->addElement(1, 1, new QCPLayoutElement(plot));  // takes the height left below the legend
  legend->setLayer(QStringLiteral("legend"));
  legend->setFont(plot::ui_font(9));
  legend->setBorderPen(QPen(QColor(200, 200, 200)));
  legend->setIconSize(28, 16);
  legend->setWrap(wrap);
  legend->setFillOrder(QCPLayoutGrid::foColumnsFirst, true);
  legend->setSizeConstraintRect(QCPLayoutElement::scrOuterRect);
  return legend;
}

// Once the legend has its items: no larger than they need.
void fit_legend(QCPLegend* legend) {
  legend->setMaximumSize(legend->minimumOuterSizeHint());
  auto* holder = qobject_cast<QCPLayoutGrid*>(legend->layout());
  if (holder) holder->setRowStretchFactor(0, 0.001);
}

int columns_for(int n, int max_cols) {
  if (n <= max_cols && n <= 3) return n;
  if (n == 4) return 2;
  return std::min(max_cols, n <= 9 ? 3 : 4);
}

QString samples_text(int64_t lo, int64_t hi) {
  if (hi <= 0) return {};
  const QString n = lo == hi ? QString::number(hi) : QStringLiteral("%1–%2").arg(lo).arg(hi);
  return QStringLiteral("%1 sample%2 per cell").arg(n, hi == 1 ? QString() : QStringLiteral("s"));
}

}  // namespace

// ------------------------------------------------------------------------------------------------ ratio curves

QSize build_ratio_curves(QCustomPlot* plot, const RatioFigure& f) {
  reset(plot);
  std::vector<std::string> panels = f.tasks;
  if (f.has_average()) panels.push_back("average");
  const int n = static_cast<int>(panels.size());
  const int cols = columns_for(n, 4), rows = (n + cols - 1) / cols;
  QStringList sub = {QStringLiteral("context %1 tokens").arg(f.length), QStringLiteral("model %1").arg(qs(f.models))};
  if (const QString s = samples_text(f.min_samples, f.max_samples); !s.isEmpty()) sub << s;
  sub << QStringLiteral("dashed: no_press (uncompressed)");
  const int title_w = add_titles(plot, QStringLiteral("Score vs compression ratio"), sub);
  auto* grid = new QCPLayoutGrid;
  plot->plotLayout()->addElement(2, 0, grid);
  grid->setColumnSpacing(12);
  grid->setRowSpacing(8);
  auto* group = new QCPMarginGroup(plot);

  double xmax = 0;
  for (const auto& p : f.points) xmax = std::max(xmax, p.ratio);
  if (xmax <= 0) xmax = 0.5;
  const double step = xmax > 0.5 ? 0.25 : 0.1;

  std::vector<QCPGraph*> legend_graphs;  // one per press, the first panel it appears in
  std::set<std::string> in_legend;
  for (int i = 0; i < n; ++i) {
    const std::string& task = panels[static_cast<size_t>(i)];
    const QString title = task == "average"
                              ? QStringLiteral("average over %1 tasks").arg(f.tasks.size())
                              : task == "needle_in_haystack" ? QStringLiteral("needle_in_haystack (mean over depths)")
                                                             : qs(task);
    QCPAxisRect* rect = add_panel(plot, grid, i / cols, i % cols, title, group);
    light_grid(rect);
    QCPAxis* x = rect->axis(QCPAxis::atBottom);
    QCPAxis* y = rect->axis(QCPAxis::atLeft);
    x->setRange(-0.04 * xmax - 0.02, xmax * 1.06 + 0.02);
    y->setRange(-4, 104);
    QSharedPointer<QCPAxisTickerFixed> xt(new QCPAxisTickerFixed), yt(new QCPAxisTickerFixed);
    xt->setTickStep(step);
    yt->setTickStep(25);
    x->setTicker(xt);
    y->setTicker(yt);
    if (i % cols == 0) y->setLabel(QStringLiteral("score (string match, %)"));
    if (i + cols >= n) x->setLabel(QStringLiteral("compression ratio (fraction removed)"));
    for (size_t k = 0; k < f.presses.size(); ++k) {
      const std::string& press = f.presses[k];
      QVector<double> xs, ys;
      for (const auto& p : f.points)
        if (p.press == press && p.task == task) xs << p.ratio, ys << p.score;
      if (xs.isEmpty()) continue;
      const bool none = press == "no_press";
      const int ci = static_cast<int>(k) - (f.presses.front() == "no_press" ? 1 : 0);  // colour/marker of a press
      const QColor c = none ? QColor(90, 90, 90) : plot::palette_color(ci);
      auto* g = plot->addGraph(x, y);
      g->setName(qs(press));
      g->setData(xs, ys, true);
      // The palette has 10 colours: presses 11-20 reuse them with a dotted line and hollow markers.
      const bool second_round = !none && ci >= 10;
      g->setPen(QPen(c, 1.8, none ? Qt::DashLine : second_round ? Qt::DotLine : Qt::SolidLine));
      g->setScatterStyle(QCPScatterStyle(none ? QCPScatterStyle::ssStar : marker(ci), c,
                                         none || second_round ? QColor(Qt::white) : c, none ? 9 : 6));
      g->removeFromLegend();
      if (none) {  // the uncompressed score as a reference line across the panel
        auto* line = new QCPItemStraightLine(plot);
        line->setClipAxisRect(rect);
        for (auto* pt : {line->point1, line->point2}) pt->setAxes(x, y);
        line->point1->setCoords(0, ys[0]);
        line->point2->setCoords(1, ys[0]);
        line->setPen(QPen(c, 1.2, Qt::DashLine));
      }
      if (in_legend.insert(press).second) legend_graphs.push_back(g);
    }
  }
  // legend in presses order
  std::sort(legend_graphs.begin(), legend_graphs.end(), [&](QCPGraph* a, QCPGraph* b) {
    auto idx = [&](QCPGraph* g) {
      return std::find(f.presses.begin(), f.presses.end(), g->name().toStdString()) - f.presses.begin();
    };
    return idx(a) < idx(b);
  });
  const int per_row = std::max(1, std::min<int>(static_cast<int>(legend_graphs.size()), cols * 2 + 1));
  QCPLegend* legend = add_legend(plot, plot->plotLayout(), 3, 0, per_row);
  for (auto* g : legend_graphs) g->addToLegend(legend);
  fit_legend(legend);
  plot->plotLayout()->setRowStretchFactor(3, 0.001);
  const int legend_rows = (static_cast<int>(legend_graphs.size()) + per_row - 1) / per_row;
  const int legend_w = legend->minimumOuterSizeHint().width() + 40;
  return QSize(std::max({cols * 330 + 30, title_w, legend_w}), 56 + rows * 270 + legend_rows * 24 + 16);
}

// ------------------------------------------------------------------------------------------------ needle heatmap

QSize build_needle_heatmap(QCustomPlot* plot, const NeedleFigure& f) {
  reset(plot);
  const int n = static_cast<int>(f.panels.size());
  const int cols = columns_for(n, 4), rows = (n + cols - 1) / cols;
  const int nx = static_cast<int>(f.lengths.size()), ny = static_cast<int>(f.depths.size());
  QStringList sub = {QStringLiteral("model %1").arg(qs(f.models))};
  if (const QString s = samples_text(f.min_samples, f.max_samples); !s.isEmpty()) sub << s;
  bool missing = false;
  for (const auto& p : f.panels) missing |= static_cast<int>(p.score.size()) < nx * ny;
  if (missing) sub << QStringLiteral("grey: not run");
  const int title_w = add_titles(plot, QStringLiteral("Needle in a haystack: score by context length and needle depth"), sub);
  auto* body = new QCPLayoutGrid;
  plot->plotLayout()->addElement(2, 0, body);
  auto* grid = new QCPLayoutGrid;
  body->addElement(0, 0, grid);
  grid->setColumnSpacing(12);
  grid->setRowSpacing(8);
  auto* scale = new QCPColorScale(plot);
  body->addElement(0, 1, scale);
  body->setColumnStretchFactor(1, 0.001);
  scale->setType(QCPAxis::atRight);
  scale->setGradient(plot::score_gradient());
  scale->setDataRange(QCPRange(0, 100));
  scale->setLabel(QStringLiteral("score (string match, %)"));
  scale->setBarWidth(14);
  scale->axis()->setTickLabelFont(plot::ui_font(8));
  scale->axis()->setLabelFont(plot::ui_font(9));
  QSharedPointer<QCPAxisTickerFixed> st(new QCPAxisTickerFixed);
  st->setTickStep(25);
  scale->axis()->setTicker(st);
  auto* group = new QCPMarginGroup(plot);
  scale->setMarginGroup(QCP::msTop | QCP::msBottom, group);

  QVector<QString> xlabels, ylabels;
  for (auto l : f.lengths) xlabels << QString::number(l);
  for (auto d : f.depths) ylabels << QStringLiteral("%1%").arg(d);
  const int cell_w = std::clamp(560 / std::max(nx, 1), 36, 90), cell_h = std::clamp(300 / std::max(ny, 1), 16, 40);
  const bool annotate = cell_w >= 30 && cell_h >= 14;
  for (int i = 0; i < n; ++i) {
    const NeedlePanel& p = f.panels[static_cast<size_t>(i)];
    const QString title = p.press == "no_press" ? QStringLiteral("no_press")
                                                : QStringLiteral("%1 · ratio %2").arg(qs(p.press), qs(fmt_ratio(p.ratio)));
    QCPAxisRect* rect = add_panel(plot, grid, i / cols, i % cols, title, group);
    rect->setMarginGroup(QCP::msLeft | QCP::msRight | QCP::msTop | QCP::msBottom, group);
    rect->setBackground(QBrush(QColor(215, 215, 215)));
    QCPAxis* x = rect->axis(QCPAxis::atBottom);
    QCPAxis* y = rect->axis(QCPAxis::atLeft);
    auto* map = new QCPColorMap(x, y);
    map->setInterpolate(false);
    map->setTightBoundary(false);
    map->setGradient(plot::score_gradient());
    map->data()->setSize(nx, ny);
    // one cell per length/depth, centred on its index (a single cell spans -0.5..0.5)
    map->data()->setRange(nx > 1 ? QCPRange(0, nx - 1) : QCPRange(-0.5, 0.5),
                          ny > 1 ? QCPRange(0, ny - 1) : QCPRange(-0.5, 0.5));
    for (int a = 0; a < nx; ++a)
      for (int b = 0; b < ny; ++b) {
        auto it = p.score.find({f.lengths[static_cast<size_t>(a)], f.depths[static_cast<size_t>(b)]});
        map->data()->setCell(a, b, it == p.score.end() ? std::nan("") : it->second);
      }
    map->setColorScale(scale);
    map->setDataRange(QCPRange(0, 100));
    plot::set_text_ticks(x, xlabels);
    plot::set_text_ticks(y, ylabels);
    x->setRange(-0.5, nx - 0.5);
    y->setRange(-0.5, ny - 0.5);
    y->setRangeReversed(true);  // depth 0 % (the start of the context) on top
    x->setTickLength(0, 3);
    y->setTickLength(0, 3);
    x->setSubTicks(false);
    y->setSubTicks(false);
    if (i + cols >= n) x->setLabel(QStringLiteral("context length (tokens)"));
    if (i % cols == 0) y->setLabel(QStringLiteral("needle depth"));
    if (annotate)
      for (const auto& [ld, s] : p.score) {
        const int a = static_cast<int>(std::find(f.lengths.begin(), f.lengths.end(), ld.first) - f.lengths.begin());
        const int b = static_cast<int>(std::find(f.depths.begin(), f.depths.end(), ld.second) - f.depths.begin());
        auto* t = new QCPItemText(plot);
        t->setClipAxisRect(rect);
        t->position->setAxes(x, y);
        t->position->setCoords(a, b);
        t->setPositionAlignment(Qt::AlignCenter);
        t->setText(QString::number(s, 'g', 3));
        t->setFont(plot::ui_font(8));
        t->setColor(s < 60 ? Qt::white : Qt::black);
      }
  }
  const int pw = std::max(230, nx * cell_w + 80), ph = std::max(170, ny * cell_h + 70);
  return QSize(std::max(cols * pw + 110, title_w), 56 + rows * ph);
}

// ------------------------------------------------------------------------------------------------ speed / memory

QSize build_speed_memory(QCustomPlot* plot, const SpeedFigure& f) {
  reset(plot);
  const int title_w =
      add_titles(plot, QStringLiteral("Speed and memory vs context length"), qs(f.title).split(QStringLiteral(" · ")));
  auto* grid = new QCPLayoutGrid;
  plot->plotLayout()->addElement(2, 0, grid);
  grid->setColumnSpacing(12);
  grid->setRowSpacing(8);
  auto* group = new QCPMarginGroup(plot);
  const double mib = 1024.0 * 1024.0;
  struct Metric {
    QString title, unit;
    double (*value)(const BenchRow&);
    bool from_zero;
  };
  const Metric metrics[] = {
      {QStringLiteral("peak RSS"), QStringLiteral("MiB"), [](const BenchRow& r) { return r.peak_rss_bytes / (1024.0 * 1024.0); }, false},
      {QStringLiteral("KV cache held after the press"), QStringLiteral("MiB"),
       [](const BenchRow& r) { return r.kv_bytes_after / (1024.0 * 1024.0); }, true},
      {QStringLiteral("prefill (without the press)"), QStringLiteral("s"), [](const BenchRow& r) { return r.prefill_s; }, true},
      {QStringLiteral("compression (the press)"), QStringLiteral("s"), [](const BenchRow& r) { return r.compression_s; }, true},
      {QStringLiteral("decode speed"), QStringLiteral("tokens/s"), [](const BenchRow& r) { return r.decode_tokens_per_s; }, true},
  };
  const int cols = 3;
  const double lo = static_cast<double>(f.lengths.front()), hi = static_cast<double>(f.lengths.back());
  const bool logx = hi / lo >= 4.0;
  std::vector<QCPGraph*> legend_graphs;
  std::set<std::string> presses;
  for (const auto& s : f.series) presses.insert(s.press);
  for (int m = 0; m < 5; ++m) {
    const Metric& mt = metrics[m];
    QCPAxisRect* rect = add_panel(plot, grid, m / cols, m % cols, mt.title, group);
    light_grid(rect);
    QCPAxis* x = rect->axis(QCPAxis::atBottom);
    QCPAxis* y = rect->axis(QCPAxis::atLeft);
    y->setLabel(mt.unit);
    if (m + cols >= 5) x->setLabel(QStringLiteral("context length (tokens)"));
    if (logx) {
      x->setScaleType(QCPAxis::stLogarithmic);
      x->setRange(lo / 1.25, hi * 1.25);
    } else {
      const double pad = hi > lo ? (hi - lo) * 0.08 : std::max(1.0, lo * 0.1);
      x->setRange(lo - pad, hi + pad);
    }
    if (f.lengths.size() <= 10) {
      QSharedPointer<QCPAxisTickerText> t(new QCPAxisTickerText);
      for (auto l : f.lengths) t->addTick(static_cast<double>(l), QString::number(l));
      x->setTicker(t);
      x->setSubTicks(false);
    } else if (logx) {
      x->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    }
    double ymin = mt.from_zero ? 0.0 : 1e300, ymax = 0;
    if (m == 1) {  // the uncompressed cache, for reference (drawn first, under the series)
      QVector<double> xs, ys;
      for (const auto& [len, b] : f.kv_bytes_before) {
        xs << static_cast<double>(len);
        ys << b / mib;
        ymax = std::max(ymax, ys.back());
      }
      auto* g = plot->addGraph(x, y);
      g->setName(QStringLiteral("KV cache without compression"));
      g->setData(xs, ys, true);
      g->setPen(QPen(QColor(150, 150, 150), 3.5, Qt::DashLine));  // wide, under the series: visible beside ratio 0
      g->removeFromLegend();
      legend_graphs.push_back(g);
    }
    int si = 0;
    for (const auto& s : f.series) {
      QVector<double> xs, ys;
      for (const auto& r : s.rows) {
        xs << static_cast<double>(r.context_tokens);
        ys << mt.value(r);
        ymin = std::min(ymin, ys.back());
        ymax = std::max(ymax, ys.back());
      }
      const int press_i = static_cast<int>(std::distance(presses.begin(), presses.find(s.press)));
      const QColor c = plot::palette_color(si);
      auto* g = plot->addGraph(x, y);
      g->setName(qs(s.label));
      g->setData(xs, ys, true);
      g->setPen(QPen(c, 1.8));
      g->setScatterStyle(QCPScatterStyle(marker(press_i), c, c, 6));
      g->removeFromLegend();
      if (m == 0) legend_graphs.push_back(g);
      ++si;
    }
    if (!(ymax > ymin)) ymax = ymin + 1;
    const double pad = (ymax - ymin) * 0.08;
    y->setRange(mt.from_zero ? -pad * 0.4 : ymin - pad, ymax + pad);  // a zero line stays visible above the axis
  }
  QCPLegend* legend = add_legend(plot, grid, 1, 2, 1);
  for (auto* g : legend_graphs) g->addToLegend(legend);
  fit_legend(legend);
  return QSize(std::max(cols * 330 + 30, title_w), 56 + 2 * 280);
}

// ------------------------------------------------------------------------------------------------ output

std::vector<std::string> write_outputs(QCustomPlot* plot, const std::string& prefix, const std::string& csv, QSize size,
                                       double scale, const std::string& title) {
  const fs::path dir = fs::path(prefix).parent_path();
  if (!dir.empty() && !fs::is_directory(dir))
    throw OutputError("output folder '" + dir.string() + "' does not exist (for --out '" + prefix + "')");
  const std::string tag = ".tmp" + std::to_string(::getpid());
  struct Out {
    std::string final_path, tmp;
  };
  std::vector<Out> outs;
  for (const char* ext : {".png", ".pdf", ".csv"}) outs.push_back({prefix + ext, prefix + tag + ext});
  auto cleanup = [&] {
    for (const auto& o : outs) std::remove(o.tmp.c_str());
  };
  auto fail = [&](const Out& o, const std::string& why) {
    cleanup();
    throw OutputError("cannot write '" + o.final_path + "'" + (why.empty() ? std::string() : ": " + why));
  };
  if (!plot->savePng(qs(outs[0].tmp), size.width(), size.height(), scale)) fail(outs[0], std::strerror(errno));
  if (!plot->savePdf(qs(outs[1].tmp), size.width(), size.height(), QCP::epAllowCosmetic, QStringLiteral("kvfigures"),
                     qs(title)))
    fail(outs[1], std::strerror(errno));
  {
    std::ofstream f(outs[2].tmp, std::ios::binary | std::ios::trunc);
    f << csv;
    f.flush();
    if (!f) fail(outs[2], std::strerror(errno));
  }
  for (const auto& o : outs) {
    std::error_code ec;
    if (!fs::is_regular_file(o.tmp, ec) || fs::file_size(o.tmp, ec) == 0) fail(o, "nothing was written");
  }
  for (const auto& o : outs)
    if (std::rename(o.tmp.c_str(), o.final_path.c_str()) != 0) fail(o, std::strerror(errno));
  return {outs[0].final_path, outs[1].final_path, outs[2].final_path};
}

}  // namespace kvviz::figures
