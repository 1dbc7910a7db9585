#include "viz/plot/bars.hpp"

namespace kvviz::plot {

QColor palette_color(int i) {
  static const QColor c[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44),  QColor(214, 39, 40),
                             QColor(148, 103, 189), QColor(140, 86, 75),  QColor(227, 119, 194), QColor(127, 127, 127),
                             QColor(188, 189, 34),  QColor(23, 190, 207)};
  return c[static_cast<unsigned>(i) % 10];
}

QCPBars* add_bars(QCPAxisRect* rect, const std::vector<double>& values, const QColor& color, const QString& name) {
  auto* bars = new QCPBars(rect->axis(QCPAxis::atBottom), rect->axis(QCPAxis::atLeft));
  QVector<double> x, y;
  for (size_t i = 0; i < values.size(); ++i) {
    x << static_cast<double>(i);
    y << values[i];
  }
  bars->setData(x, y, true);
  bars->setWidth(0.75);
  bars->setPen(Qt::NoPen);
  bars->setBrush(color);
  bars->setName(name);
  return bars;
}

std::vector<QCPBars*> add_grouped_bars(QCPAxisRect* rect, const std::vector<double>& values, int n, int m,
                                       const QString& name_prefix) {
  auto* group = new QCPBarsGroup(rect->parentPlot());
  group->setSpacingType(QCPBarsGroup::stAbsolute);
  group->setSpacing(0);
  std::vector<QCPBars*> out;
  for (int j = 0; j < m; ++j) {
    std::vector<double> col(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) col[static_cast<size_t>(i)] = values[static_cast<size_t>(i * m + j)];
    auto* b = add_bars(rect, col, palette_color(j), name_prefix + QString::number(j));
    b->setWidth(0.8 / m);
    b->setBarsGroup(group);
    out.push_back(b);
  }
  return out;
}

}  // namespace kvviz::plot
