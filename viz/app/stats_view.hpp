#pragma once
// Statistics: kept fraction per layer (bars, with the press's target 1 - ratio as a dashed line) and per head
// within each layer (grouped bars) — head-wise presses such as adakv show their uneven budgets here.
#include "viz/app/view.hpp"

class QCustomPlot;

namespace kvviz {

class StatsView : public View {
  Q_OBJECT
 public:
  explicit StatsView(Document* doc, QWidget* parent = nullptr);
  QString viewName() const override { return QStringLiteral("stats"); }
  bool exportTo(const QString& path, int width, int height, QString* error) override;
  void rebuild() override;
  QCustomPlot* plot() const { return plot_; }

 private:
  QCustomPlot* plot_;
};

}  // namespace kvviz
