#pragma once
// kvfigures, drawing side: each figure is laid out in a QCustomPlot (the plotting layer of kvviz, viz/plot) and
// written as PNG + PDF + the plotted data as CSV, all three through temporary files renamed at the end.
#include <string>
#include <vector>

#include <QSize>

#include "viz/figures/figure_data.hpp"

class QCustomPlot;

namespace kvviz::figures {

struct OutputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Each builder clears `plot`, lays the figure out and returns its natural size in points (the PDF page; the PNG
// is that times the export scale).
QSize build_ratio_curves(QCustomPlot* plot, const RatioFigure& f);
QSize build_needle_heatmap(QCustomPlot* plot, const NeedleFigure& f);
QSize build_speed_memory(QCustomPlot* plot, const SpeedFigure& f);

// Writes PREFIX.png (size x scale pixels), PREFIX.pdf (size points) and PREFIX.csv: each to a temporary file in
// the same folder, renamed only once all three were written (nothing half-written under the final names).
// Returns the three paths. OutputError names the file that could not be written.
std::vector<std::string> write_outputs(QCustomPlot* plot, const std::string& prefix, const std::string& csv, QSize size,
                                       double scale, const std::string& title);

}  // namespace kvviz::figures
