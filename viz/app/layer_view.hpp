#pragma once
// Layer view: the selected layer's score heatmap (heads x positions, linear or log colour scale with a colour
// bar) above its kept map; x axes linked; wheel zooms and drag pans along positions; hovering reads out the
// token, position, head, score and kept/evicted.
#include "viz/app/view.hpp"

class QComboBox;
class QCustomPlot;
class QCPAxisRect;
class QCPColorScale;
class QLabel;
class QMouseEvent;
class QSpinBox;

namespace kvviz {

class LayerView : public View {
  Q_OBJECT
 public:
  explicit LayerView(Document* doc, QWidget* parent = nullptr);
  QString viewName() const override { return QStringLiteral("layer"); }
  bool exportTo(const QString& path, int width, int height, QString* error) override;
  void rebuild() override;
  void setLogScale(bool log);
  // The read-out for plot pixel `pos` (empty outside the maps); what hovering shows.
  QString readoutAt(const QPoint& pos) const;
  QString readout() const;
  QCustomPlot* plot() const { return plot_; }
  void resetZoom();

 private:
  void onMouseMove(QMouseEvent* e);
  QCustomPlot* plot_;
  QSpinBox* layer_box_;
  QComboBox* scale_box_;
  QLabel* readout_;
  QCPAxisRect* score_rect_ = nullptr;
  QCPAxisRect* kept_rect_ = nullptr;
  QCPColorScale* scale_ = nullptr;
  // The x range survives layer/head changes (compare layers at the same positions); reset on a new trace.
  double zoom_lo_ = 0, zoom_hi_ = 0;
  const void* zoom_trace_ = nullptr;
};

}  // namespace kvviz
