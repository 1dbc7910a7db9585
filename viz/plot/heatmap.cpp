#include "viz/plot/heatmap.hpp"

#include <algorithm>
#include <cmath>

namespace kvviz::plot {

QColor kept_color() { return QColor(31, 86, 168); }
QColor evicted_color() { return QColor(232, 232, 232); }
QColor only_a_color() { return QColor(230, 120, 20); }
QColor only_b_color() { return QColor(150, 40, 160); }

QCPColorGradient kept_gradient() {
  QCPColorGradient g;
  g.clearColorStops();
  g.setColorStopAt(0.0, evicted_color());
  g.setColorStopAt(1.0, kept_color());
  g.setNanHandling(QCPColorGradient::nhTransparent);
  return g;
}

QCPColorGradient score_gradient() {
  QCPColorGradient g;  // viridis (QCustomPlot 2.1.0 predates gpViridis)
  g.clearColorStops();
  const QColor stops[] = {QColor(68, 1, 84),    QColor(72, 40, 120),  QColor(62, 74, 137), QColor(49, 104, 142),
                          QColor(38, 130, 142), QColor(31, 158, 137), QColor(53, 183, 121), QColor(109, 205, 89),
                          QColor(180, 222, 44), QColor(253, 231, 37)};
  for (int i = 0; i < 10; ++i) g.setColorStopAt(i / 9.0, stops[i]);
  g.setColorInterpolation(QCPColorGradient::ciRGB);
  g.setNanHandling(QCPColorGradient::nhTransparent);
  return g;
}

QCPColorGradient diff_gradient() {
  QCPColorGradient g;
  g.clearColorStops();
  g.setLevelCount(4);
  g.setColorInterpolation(QCPColorGradient::ciRGB);
  g.setColorStopAt(0.0, evicted_color());
  g.setColorStopAt(1.0 / 3.0, kept_color());
  g.setColorStopAt(2.0 / 3.0, only_a_color());
  g.setColorStopAt(1.0, only_b_color());
  return g;
}

void set_grid(QCPColorMap* map, const Grid& g, int64_t seq) {
  const int cols = static_cast<int>(g.cols), rows = static_cast<int>(g.rows);
  auto* d = map->data();
  d->setSize(cols, rows);
  auto centre = [&](int64_t c) {
    const int64_t s0 = c * g.bin, s1 = std::min(seq, s0 + g.bin);
    return 0.5 * static_cast<double>(s0 + s1 - 1);
  };
  const double x0 = centre(0), x1 = cols > 1 ? centre(cols - 1) : x0 + 1e-9;
  d->setRange(QCPRange(x0, x1), QCPRange(0, rows > 1 ? rows - 1 : 1e-9));
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) d->setCell(c, r, g.at(r, c));
}

QFont ui_font(int pt, bool bold) {
  QFont f(QStringLiteral("DejaVu Sans"));
  f.setStyleHint(QFont::SansSerif);
  f.setPointSize(pt);
  f.setBold(bold);
  return f;
}

void style_axis_rect(QCPAxisRect* rect, int font_pt) {
  QFont f = ui_font(font_pt);
  for (auto* ax : rect->axes()) {
    ax->setTickLabelFont(f);
    QFont lf = f;
    lf.setPointSize(font_pt + 1);
    ax->setLabelFont(lf);
    ax->grid()->setVisible(false);
  }
}

void set_head_ticks(QCPAxis* axis, int64_t heads, const QString& prefix) {
  QSharedPointer<QCPAxisTickerText> t(new QCPAxisTickerText);
  const int64_t step = std::max<int64_t>(1, heads / 8);
  for (int64_t h = 0; h < heads; h += step) t->addTick(static_cast<double>(h), prefix + QString::number(h));
  axis->setTicker(t);
  axis->setRange(-0.5, static_cast<double>(heads) - 0.5);
  axis->setRangeReversed(true);  // head 0 on top
}

void set_text_ticks(QCPAxis* axis, const QVector<QString>& labels) {
  QSharedPointer<QCPAxisTickerText> t(new QCPAxisTickerText);
  for (int i = 0; i < labels.size(); ++i) t->addTick(i, labels[i]);
  axis->setTicker(t);
}

QCPColorMap* add_map(QCustomPlot* plot, QCPAxisRect* rect, const Grid& g, int64_t seq, const QCPColorGradient& grad,
                     QCPRange data_range) {
  auto* map = new QCPColorMap(rect->axis(QCPAxis::atBottom), rect->axis(QCPAxis::atLeft));
  Q_UNUSED(plot);
  map->setInterpolate(false);
  map->setTightBoundary(false);
  map->setGradient(grad);
  set_grid(map, g, seq);
  map->setDataRange(data_range);
  rect->axis(QCPAxis::atBottom)->setRange(-0.5, static_cast<double>(seq) - 0.5);
  return map;
}

QCPColorMap* add_score_map(QCustomPlot* plot, QCPAxisRect* rect, const Grid& g, int64_t seq, Range r,
                           ColorScaleType type, QCPColorScale* scale) {
  Grid shown = g;
  QCPRange range(r.lo, r.hi);
  QString label = QStringLiteral("score");
  if (type == ColorScaleType::Log) {
    if (r.lo <= 0) {  // shift so every value is positive; the colour bar says so
      const double eps = std::max((r.hi - r.lo) * 1e-4, 1e-12);
      for (float& v : shown.v)
        if (std::isfinite(v)) v = static_cast<float>(v - r.lo + eps);
      range = QCPRange(eps, r.hi - r.lo + eps);
      label = QStringLiteral("score − min (log)");
    } else {
      label = QStringLiteral("score (log)");
    }
  }
  auto* map = add_map(plot, rect, shown, seq, score_gradient(), range);
  if (scale) {
    scale->setType(QCPAxis::atRight);
    map->setColorScale(scale);
    scale->setDataScaleType(type == ColorScaleType::Log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    if (type == ColorScaleType::Log) scale->axis()->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    else scale->axis()->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
    scale->setGradient(score_gradient());
    scale->setDataRange(range);
    scale->setLabel(label);
    scale->setBarWidth(12);
  }
  return map;
}

}  // namespace kvviz::plot
