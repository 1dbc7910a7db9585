#pragma once
// QCustomPlot adapters for heads x positions maps. Coordinates: x = token position (cell k of a grid downsampled
// by `bin` is centred on the middle of its positions), y = head index. Non-finite cells are transparent.
#include <cstdint>
#include <vector>

#include <QString>

#include <qcustomplot.h>

#include "viz/model/downsample.hpp"
#include "viz/model/stats.hpp"

namespace kvviz::plot {

enum class ColorScaleType { Linear, Log };

QCPColorGradient kept_gradient();   // evicted: light grey -> kept: deep blue (fractions in between when downsampled)
QCPColorGradient score_gradient();  // viridis
QCPColorGradient diff_gradient();   // both evicted / both kept / only A / only B, data range [0, 3]
QColor kept_color();
QColor evicted_color();
QColor only_a_color();
QColor only_b_color();

// Fills `map` from `g` (rows = heads) over positions [0, seq).
void set_grid(QCPColorMap* map, const Grid& g, int64_t seq);

// A colour map in `rect` (axes keyAxis = bottom, valueAxis = left), heads labelled on the left axis.
QCPColorMap* add_map(QCustomPlot* plot, QCPAxisRect* rect, const Grid& g, int64_t seq, const QCPColorGradient& grad,
                     QCPRange data_range);
// Score map with a colour bar; Log shows (score - min + eps) on a logarithmic colour scale when any score <= 0.
// Returns the map; `scale` receives the colour bar (added to the plot layout by the caller).
QCPColorMap* add_score_map(QCustomPlot* plot, QCPAxisRect* rect, const Grid& g, int64_t seq, Range r,
                           ColorScaleType type, QCPColorScale* scale);

// Integer head ticks 0..H-1 ("h0", "h1", ...) on an axis; fewer labels when there are many heads.
void set_head_ticks(QCPAxis* axis, int64_t heads, const QString& prefix = QStringLiteral("h"));
// Text ticks on `axis` at 0..n-1 (labels[i]).
void set_text_ticks(QCPAxis* axis, const QVector<QString>& labels);

// The application's sans-serif font at `pt` points (an empty family falls back to serif on some platforms).
QFont ui_font(int pt, bool bold = false);

// Common look: light grid, compact fonts.
void style_axis_rect(QCPAxisRect* rect, int font_pt = 8);

}  // namespace kvviz::plot
