#pragma once
// QCustomPlot bar-chart adapters: one series of bars, or grouped bars (one series per group member).
#include <vector>

#include <QString>

#include <qcustomplot.h>

namespace kvviz::plot {

// Bars at x = 0..n-1 in `rect`.
QCPBars* add_bars(QCPAxisRect* rect, const std::vector<double>& values, const QColor& color, const QString& name);

// values (n, m) row-major: m bars per x position, side by side (QCPBarsGroup), m colours from a qualitative palette.
std::vector<QCPBars*> add_grouped_bars(QCPAxisRect* rect, const std::vector<double>& values, int n, int m,
                                       const QString& name_prefix);

QColor palette_color(int i);  // Tableau 10

}  // namespace kvviz::plot
