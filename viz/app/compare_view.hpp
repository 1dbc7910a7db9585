#pragma once
// Compare: two traces of the same context (different presses or ratios). Top: per-head overlap of the kept sets
// (Jaccard, grouped by layer). Bottom: the selected layer's difference map (both kept / only A / only B / both
// evicted), heads x positions.
#include "viz/app/view.hpp"

class QCustomPlot;

namespace kvviz {

class CompareView : public View {
  Q_OBJECT
 public:
  explicit CompareView(Document* doc, QWidget* parent = nullptr);
  QString viewName() const override { return QStringLiteral("compare"); }
  bool exportTo(const QString& path, int width, int height, QString* error) override;
  void rebuild() override;
  QCustomPlot* plot() const { return plot_; }
  double meanJaccard() const { return mean_jaccard_; }

 private:
  QCustomPlot* plot_;
  double mean_jaccard_ = -1;
};

}  // namespace kvviz
