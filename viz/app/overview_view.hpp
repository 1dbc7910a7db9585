#pragma once
// Overview: every layer's kept map (heads x positions; blue kept, grey evicted) stacked with a shared x axis.
// Click a layer to focus it (layerActivated); the current layer's label is highlighted.
#include <vector>

#include <QPoint>

#include "viz/app/view.hpp"

class QCustomPlot;
class QCPAxisRect;
class QCPColorMap;
class QMouseEvent;

namespace kvviz {

class OverviewView : public View {
  Q_OBJECT
 public:
  explicit OverviewView(Document* doc, QWidget* parent = nullptr);
  QString viewName() const override { return QStringLiteral("overview"); }
  bool exportTo(const QString& path, int width, int height, QString* error) override;
  void rebuild() override;
  int layerMapCount() const { return static_cast<int>(maps_.size()); }
  QCustomPlot* plot() const { return plot_; }

 signals:
  void layerActivated(int layer);

 private:
  void highlightLayer(int layer);
  void onMouseRelease(QMouseEvent* e);
  QPoint press_pos_;
  QCustomPlot* plot_;
  std::vector<QCPAxisRect*> rects_;
  std::vector<QCPColorMap*> maps_;
};

}  // namespace kvviz
