#pragma once
// Export of a plot or a plain widget to PNG (2x pixel ratio, "publication resolution"), PDF (vector) or SVG
// (vector, when kvviz was built with Qt SVG). The format follows the file extension.
#include <QString>

class QCustomPlot;
class QWidget;

namespace kvviz {

bool svg_supported();
QString export_filter();  // for file dialogs
bool export_plot(QCustomPlot* plot, const QString& path, int width, int height, QString* error);
bool export_widget(QWidget* widget, const QString& path, int width, int height, QString* error);

}  // namespace kvviz
