#include "viz/app/overview_view.hpp"

#include <QVBoxLayout>

#include <qcustomplot.h>

#include "viz/app/document.hpp"
#include "viz/app/export.hpp"
#include "viz/model/stats.hpp"
#include "viz/plot/heatmap.hpp"

namespace kvviz {

OverviewView::OverviewView(Document* doc, QWidget* parent) : View(doc, parent), plot_(new QCustomPlot(this)) {
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(0, 0, 0, 0);
  layout->addWidget(plot_);
  plot_->setToolTip(tr("Click a layer to open it in the layer view"));
  connect(plot_, &QCustomPlot::mousePress, this, [this](QMouseEvent* e) { press_pos_ = e->pos(); });
  connect(plot_, &QCustomPlot::mouseRelease, this, &OverviewView::onMouseRelease);
  connect(doc_, &Document::lodReady, this, &OverviewView::rebuild);
  connect(doc_, &Document::traceChanged, this, &OverviewView::rebuild);
  connect(doc_, &Document::layerChanged, this, &OverviewView::highlightLayer);
  rebuild();
}

void OverviewView::rebuild() {
  plot_->clearPlottables();
  plot_->plotLayout()->clear();
  rects_.clear();
  maps_.clear();
  const Trace* t = doc_->trace();
  const TraceLod* lod = doc_->lod();
  if (!t || !lod) {
    auto* msg = new QCPTextElement(plot_, t ? tr("Downsampling…") : tr("Open a trace (File ▸ Open, or drop a .kvtrace here)"),
                                   plot::ui_font(12));
    plot_->plotLayout()->addElement(0, 0, msg);
    plot_->replot();
    return;
  }
  const QString title = tr("%1   ·   %2   ·   %3 tokens   ·   kept %4%   (blue = kept, grey = evicted)")
                            .arg(QString::fromStdString(t->label()), QString::fromStdString(t->model_name))
                            .arg(t->seq)
                            .arg(100.0 * kept_fraction(*t), 0, 'f', 1);
  plot_->plotLayout()->addElement(0, 0, new QCPTextElement(plot_, title, plot::ui_font(10, true)));
  plot_->plotLayout()->setRowSpacing(0);
  auto* group = new QCPMarginGroup(plot_);
  const int L = static_cast<int>(t->layers);
  for (int l = 0; l < L; ++l) {
    auto* rect = new QCPAxisRect(plot_);
    plot_->plotLayout()->addElement(l + 1, 0, rect);
    plot::style_axis_rect(rect, 7);
    rect->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    rect->setAutoMargins(QCP::msLeft);
    rect->setMargins(QMargins(0, 1, 12, 1));
    rect->setMinimumSize(50, 6);
    auto* y = rect->axis(QCPAxis::atLeft);
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    ticker->addTick((t->heads - 1) / 2.0, QStringLiteral("L%1").arg(l));
    y->setTicker(ticker);
    y->setTickLength(0, 0);
    y->setSubTickLength(0, 0);
    y->setRange(-0.5, t->heads - 0.5);
    y->setRangeReversed(true);
    auto* x = rect->axis(QCPAxis::atBottom);
    x->setTickLabels(false);
    x->setTicks(false);
    x->setBasePen(QPen(QColor(255, 255, 255), 2));  // a white gap between layers
    rects_.push_back(rect);
    maps_.push_back(plot::add_map(plot_, rect, lod->kept[static_cast<size_t>(l)], t->seq, plot::kept_gradient(),
                                  QCPRange(0, 1)));
    rect->setRangeDrag(Qt::Horizontal);
    rect->setRangeZoom(Qt::Horizontal);
  }
  // The position axis, in its own thin row so every layer map gets the same height.
  auto* axis_rect = new QCPAxisRect(plot_);
  plot_->plotLayout()->addElement(L + 1, 0, axis_rect);
  plot::style_axis_rect(axis_rect, 8);
  axis_rect->setMarginGroup(QCP::msLeft | QCP::msRight, group);
  axis_rect->setAutoMargins(QCP::msLeft);
  axis_rect->setMargins(QMargins(0, 0, 12, 38));
  axis_rect->setSizeConstraintRect(QCPLayoutElement::scrOuterRect);
  axis_rect->setMinimumSize(50, 40);
  axis_rect->setMaximumSize(QWIDGETSIZE_MAX, 40);
  axis_rect->axis(QCPAxis::atLeft)->setTickLabels(false);
  axis_rect->axis(QCPAxis::atLeft)->setTicks(false);
  axis_rect->axis(QCPAxis::atLeft)->setBasePen(Qt::NoPen);
  axis_rect->axis(QCPAxis::atBottom)->setLabel(tr("token position"));
  axis_rect->axis(QCPAxis::atBottom)->setRange(-0.5, t->seq - 0.5);
  std::vector<QCPAxis*> xs;
  for (auto* r : rects_) xs.push_back(r->axis(QCPAxis::atBottom));
  xs.push_back(axis_rect->axis(QCPAxis::atBottom));
  for (size_t i = 0; i < xs.size(); ++i)  // one x range for all layers (zoom and pan together)
    for (size_t j = 0; j < xs.size(); ++j)
      if (i != j)
        connect(xs[i], qOverload<const QCPRange&>(&QCPAxis::rangeChanged), xs[j],
                qOverload<const QCPRange&>(&QCPAxis::setRange));
  plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  highlightLayer(doc_->layer());
}

void OverviewView::highlightLayer(int layer) {
  for (size_t l = 0; l < rects_.size(); ++l) {
    auto* y = rects_[l]->axis(QCPAxis::atLeft);
    const bool cur = static_cast<int>(l) == layer;
    QFont f = y->tickLabelFont();
    f.setBold(cur);
    y->setTickLabelFont(f);
    y->setTickLabelColor(cur ? QColor(200, 60, 20) : Qt::black);
  }
  plot_->replot();
}

void OverviewView::onMouseRelease(QMouseEvent* e) {
  if ((e->pos() - press_pos_).manhattanLength() > 4) return;  // a drag (pan), not a click
  for (size_t l = 0; l < rects_.size(); ++l) {
    const QRect r = rects_[l]->outerRect();
    if (e->pos().y() >= r.top() && e->pos().y() <= r.bottom()) {
      doc_->setLayer(static_cast<int>(l));
      emit layerActivated(static_cast<int>(l));
      return;
    }
  }
}

bool OverviewView::exportTo(const QString& path, int width, int height, QString* error) {
  return export_plot(plot_, path, width, height, error);
}

}  // namespace kvviz
