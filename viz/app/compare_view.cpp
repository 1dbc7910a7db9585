#include "viz/app/compare_view.hpp"

#include <algorithm>
#include <numeric>

#include <QVBoxLayout>

#include <qcustomplot.h>

#include "viz/app/document.hpp"
#include "viz/app/export.hpp"
#include "viz/model/stats.hpp"
#include "viz/plot/bars.hpp"
#include "viz/plot/heatmap.hpp"

namespace kvviz {

CompareView::CompareView(Document* doc, QWidget* parent) : View(doc, parent), plot_(new QCustomPlot(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(plot_);
  plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  connect(doc_, &Document::traceChanged, this, &CompareView::rebuild);
  connect(doc_, &Document::compareChanged, this, &CompareView::rebuild);
  connect(doc_, &Document::layerChanged, this, &CompareView::rebuild);
  rebuild();
}

void CompareView::rebuild() {
  plot_->clearPlottables();
  plot_->clearItems();
  plot_->plotLayout()->clear();
  mean_jaccard_ = -1;
  const Trace* a = doc_->trace();
  const Trace* b = doc_->compare();
  if (!a || !b) {
    plot_->plotLayout()->addElement(
        0, 0,
        new QCPTextElement(plot_, tr("Open a second trace of the same context to compare (File ▸ Open to compare…)"),
                           plot::ui_font(12)));
    plot_->replot();
    return;
  }
  const int L = static_cast<int>(a->layers), H = static_cast<int>(a->heads), l = doc_->layer();
  const auto jac = jaccard_per_head(*a, *b);
  mean_jaccard_ = std::accumulate(jac.begin(), jac.end(), 0.0) / static_cast<double>(jac.size());
  plot_->plotLayout()->addElement(
      0, 0,
      new QCPTextElement(plot_,
                         tr("A: %1   vs   B: %2   ·   mean Jaccard %3")
                             .arg(QString::fromStdString(a->label()), QString::fromStdString(b->label()))
                             .arg(mean_jaccard_, 0, 'f', 3),
                         plot::ui_font(10, true)));
  auto* group = new QCPMarginGroup(plot_);
  auto* top = new QCPAxisRect(plot_);
  auto* bottom = new QCPAxisRect(plot_);
  plot_->plotLayout()->addElement(1, 0, top);
  plot_->plotLayout()->addElement(2, 0, bottom);
  for (auto* r : {top, bottom}) {
    plot::style_axis_rect(r, 8);
    r->setMarginGroup(QCP::msLeft | QCP::msRight, group);
  }
  QVector<QString> labels;
  for (int i = 0; i < L; ++i) labels << QString::number(i);
  top->axis(QCPAxis::atLeft)->setRange(0, 1.05);
  top->axis(QCPAxis::atLeft)->grid()->setVisible(true);
  top->axis(QCPAxis::atLeft)->setLabel(tr("Jaccard (kept A, kept B)"));
  top->axis(QCPAxis::atBottom)->setRange(-0.7, L - 0.3);
  plot::set_text_ticks(top->axis(QCPAxis::atBottom), labels);
  top->axis(QCPAxis::atBottom)->setLabel(tr("layer (bars: heads)"));
  top->setRangeDrag(Qt::Orientations());
  top->setRangeZoom(Qt::Orientations());
  const auto bars = plot::add_grouped_bars(top, jac, L, H, tr("head "));
  auto* legend = new QCPLegend;
  top->insetLayout()->addElement(legend, Qt::AlignBottom | Qt::AlignRight);
  legend->setLayer(QStringLiteral("legend"));
  legend->setFont(plot::ui_font(8));
  legend->setFillOrder(QCPLegend::foColumnsFirst);
  legend->setWrap(std::min(H, 8));
  for (auto* b : bars) b->addToLegend(legend);

  Grid g;
  g.rows = H;
  g.cols = a->seq;
  const auto diff = difference_map(*a, *b, l);
  g.v.assign(diff.begin(), diff.end());
  plot::add_map(plot_, bottom, g, a->seq, plot::diff_gradient(), QCPRange(0, 3));
  plot::set_head_ticks(bottom->axis(QCPAxis::atLeft), H);
  bottom->axis(QCPAxis::atLeft)->setLabel(tr("layer %1").arg(l));
  bottom->axis(QCPAxis::atBottom)->setLabel(tr("token position"));
  bottom->setRangeDrag(Qt::Horizontal);
  bottom->setRangeZoom(Qt::Horizontal);
  // Legend of the four categories, as coloured text under the map.
  auto* categories = new QCPLayoutGrid;
  plot_->plotLayout()->addElement(3, 0, categories);
  const std::pair<QString, QColor> cats[] = {{tr("■ both kept"), plot::kept_color()},
                                             {tr("■ only A"), plot::only_a_color()},
                                             {tr("■ only B"), plot::only_b_color()},
                                             {tr("■ both evicted"), QColor(170, 170, 170)}};
  int c = 0;
  for (const auto& [text, color] : cats) {
    auto* e = new QCPTextElement(plot_, text, plot::ui_font(9, true));
    e->setTextColor(color);
    categories->addElement(0, c++, e);
  }
  plot_->plotLayout()->setRowStretchFactor(3, 0.01);
  plot_->replot();
}

bool CompareView::exportTo(const QString& path, int width, int height, QString* error) {
  return export_plot(plot_, path, width, height, error);
}

}  // namespace kvviz
