#include "viz/app/stats_view.hpp"

#include <QVBoxLayout>

#include <qcustomplot.h>

#include "viz/app/document.hpp"
#include "viz/app/export.hpp"
#include "viz/model/stats.hpp"
#include "viz/plot/bars.hpp"
#include "viz/plot/heatmap.hpp"

namespace kvviz {

StatsView::StatsView(Document* doc, QWidget* parent) : View(doc, parent), plot_(new QCustomPlot(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(plot_);
  connect(doc_, &Document::traceChanged, this, &StatsView::rebuild);
  rebuild();
}

void StatsView::rebuild() {
  plot_->clearPlottables();
  plot_->clearItems();
  plot_->plotLayout()->clear();
  const Trace* t = doc_->trace();
  if (!t) {
    plot_->plotLayout()->addElement(0, 0, new QCPTextElement(plot_, tr("No trace open"), plot::ui_font(12)));
    plot_->replot();
    return;
  }
  const int L = static_cast<int>(t->layers), H = static_cast<int>(t->heads);
  plot_->plotLayout()->addElement(
      0, 0,
      new QCPTextElement(plot_,
                         tr("Kept fraction   ·   %1   ·   overall %2%")
                             .arg(QString::fromStdString(t->label()))
                             .arg(100.0 * kept_fraction(*t), 0, 'f', 1),
                         plot::ui_font(10, true)));
  auto* group = new QCPMarginGroup(plot_);
  auto* top = new QCPAxisRect(plot_);
  auto* bottom = new QCPAxisRect(plot_);
  plot_->plotLayout()->addElement(1, 0, top);
  plot_->plotLayout()->addElement(2, 0, bottom);
  QVector<QString> labels;
  for (int l = 0; l < L; ++l) labels << QString::number(l);
  for (auto* r : {top, bottom}) {
    plot::style_axis_rect(r, 8);
    r->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    r->axis(QCPAxis::atLeft)->setRange(0, 1.05);
    r->axis(QCPAxis::atLeft)->grid()->setVisible(true);
    r->axis(QCPAxis::atBottom)->setRange(-0.7, L - 0.3);
    plot::set_text_ticks(r->axis(QCPAxis::atBottom), labels);
    r->axis(QCPAxis::atBottom)->setLabel(tr("layer"));
  }
  top->axis(QCPAxis::atLeft)->setLabel(tr("kept fraction (layer)"));
  bottom->axis(QCPAxis::atLeft)->setLabel(tr("kept fraction (per head)"));
  plot::add_bars(top, kept_fraction_per_layer(*t), plot::kept_color(), tr("layer"));
  // Target: 1 - compression ratio.
  auto* target = new QCPItemStraightLine(plot_);
  target->setClipAxisRect(top);
  for (auto* p : {target->point1, target->point2}) p->setAxes(top->axis(QCPAxis::atBottom), top->axis(QCPAxis::atLeft));
  target->point1->setCoords(0, 1 - t->compression_ratio);
  target->point2->setCoords(1, 1 - t->compression_ratio);
  target->setPen(QPen(QColor(200, 60, 20), 1.5, Qt::DashLine));
  auto* tlabel = new QCPItemText(plot_);
  tlabel->setClipAxisRect(top);
  tlabel->position->setAxes(top->axis(QCPAxis::atBottom), top->axis(QCPAxis::atLeft));
  tlabel->position->setCoords(L - 0.5, 1 - t->compression_ratio);
  tlabel->setPositionAlignment(Qt::AlignRight | Qt::AlignBottom);
  tlabel->setText(tr("target 1 − ratio = %1").arg(1 - t->compression_ratio, 0, 'g', 3));
  tlabel->setColor(QColor(200, 60, 20));
  tlabel->setFont(plot::ui_font(8));
  const auto bars = plot::add_grouped_bars(bottom, kept_fraction_per_head(*t), L, H, tr("head "));
  auto* legend = new QCPLegend;
  bottom->insetLayout()->addElement(legend, Qt::AlignTop | Qt::AlignRight);
  legend->setLayer(QStringLiteral("legend"));
  legend->setFont(plot::ui_font(8));
  legend->setFillOrder(QCPLegend::foColumnsFirst);
  legend->setWrap(std::min(H, 8));
  for (auto* b : bars) b->addToLegend(legend);
  plot_->replot();
}

bool StatsView::exportTo(const QString& path, int width, int height, QString* error) {
  return export_plot(plot_, path, width, height, error);
}

}  // namespace kvviz
