#include "viz/app/layer_view.hpp"

#include <algorithm>
#include <cmath>

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include "viz/app/document.hpp"
#include "viz/app/export.hpp"
#include "viz/app/token_text.hpp"
#include "viz/model/stats.hpp"
#include "viz/plot/heatmap.hpp"

namespace kvviz {

LayerView::LayerView(Document* doc, QWidget* parent)
    : View(doc, parent), plot_(new QCustomPlot(this)), layer_box_(new QSpinBox(this)), scale_box_(new QComboBox(this)),
      readout_(new QLabel(this)) {
  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel(tr("Layer"), this));
  bar->addWidget(layer_box_);
  bar->addSpacing(12);
  bar->addWidget(new QLabel(tr("Colour scale"), this));
  scale_box_->addItems({tr("linear"), tr("log")});
  bar->addWidget(scale_box_);
  auto* reset = new QPushButton(tr("Reset zoom"), this);
  bar->addWidget(reset);
  bar->addStretch(1);
  bar->addWidget(new QLabel(tr("wheel: zoom · drag: pan · Alt+↑/↓: layer"), this));
  readout_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  readout_->setMinimumHeight(22);
  QFont mono(QStringLiteral("DejaVu Sans Mono"));
  mono.setStyleHint(QFont::Monospace);
  readout_->setFont(mono);
  readout_->setText(tr("Hover over a map to read a token's score"));
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(bar);
  layout->addWidget(plot_, 1);
  layout->addWidget(readout_);
  plot_->setMouseTracking(true);
  connect(layer_box_, qOverload<int>(&QSpinBox::valueChanged), doc_, &Document::setLayer);
  connect(scale_box_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this] { rebuild(); });
  connect(reset, &QPushButton::clicked, this, &LayerView::resetZoom);
  connect(plot_, &QCustomPlot::mouseMove, this, &LayerView::onMouseMove);
  connect(doc_, &Document::lodReady, this, &LayerView::rebuild);
  connect(doc_, &Document::traceChanged, this, [this] {
    zoom_trace_ = nullptr;  // a new trace starts unzoomed
    rebuild();
  });
  connect(doc_, &Document::layerChanged, this, &LayerView::rebuild);
  connect(doc_, &Document::headChanged, this, &LayerView::rebuild);
  rebuild();
}

void LayerView::setLogScale(bool log) { scale_box_->setCurrentIndex(log ? 1 : 0); }

void LayerView::resetZoom() {
  const Trace* t = doc_->trace();
  if (!t || !score_rect_) return;
  score_rect_->axis(QCPAxis::atBottom)->setRange(-0.5, t->seq - 0.5);
  plot_->replot();
}

void LayerView::rebuild() {
  if (score_rect_) {
    zoom_lo_ = score_rect_->axis(QCPAxis::atBottom)->range().lower;
    zoom_hi_ = score_rect_->axis(QCPAxis::atBottom)->range().upper;
  }
  plot_->clearPlottables();
  plot_->clearItems();
  plot_->plotLayout()->clear();
  score_rect_ = kept_rect_ = nullptr;
  scale_ = nullptr;
  const Trace* t = doc_->trace();
  const TraceLod* lod = doc_->lod();
  if (!t || !lod) {
    plot_->plotLayout()->addElement(0, 0, new QCPTextElement(plot_, t ? tr("Downsampling…") : tr("No trace open"),
                                                             plot::ui_font(12)));
    plot_->replot();
    return;
  }
  const int l = doc_->layer();
  {
    const QSignalBlocker block(layer_box_);
    layer_box_->setRange(0, static_cast<int>(t->layers) - 1);
    layer_box_->setValue(l);
  }
  const auto kept = kept_fraction_per_layer(*t)[static_cast<size_t>(l)];
  QString title = tr("Layer %1 of %2   ·   %3   ·   kept %4%   (bottom: blue = kept, grey = evicted)")
                      .arg(l)
                      .arg(t->layers)
                      .arg(QString::fromStdString(t->label()))
                      .arg(100.0 * kept, 0, 'f', 1);
  if (lod->bin > 1) title += tr("   ·   %1 positions per column").arg(lod->bin);
  plot_->plotLayout()->addElement(0, 0, new QCPTextElement(plot_, title, plot::ui_font(10, true)));
  auto* group = new QCPMarginGroup(plot_);    // left/right: both maps
  auto* vgroup = new QCPMarginGroup(plot_);   // top/bottom: score map and its colour bar
  score_rect_ = new QCPAxisRect(plot_);
  kept_rect_ = new QCPAxisRect(plot_);
  plot_->plotLayout()->addElement(1, 0, score_rect_);
  plot_->plotLayout()->addElement(2, 0, kept_rect_);
  scale_ = new QCPColorScale(plot_);
  plot_->plotLayout()->addElement(1, 1, scale_);
  scale_->setMarginGroup(QCP::msTop | QCP::msBottom, vgroup);
  score_rect_->setMarginGroup(QCP::msTop | QCP::msBottom, vgroup);
  plot_->plotLayout()->setRowStretchFactor(1, 1.0);
  plot_->plotLayout()->setRowStretchFactor(2, 1.0);
  plot_->plotLayout()->setColumnStretchFactor(1, 0.01);
  for (auto* r : {score_rect_, kept_rect_}) {
    plot::style_axis_rect(r, 8);
    plot::set_head_ticks(r->axis(QCPAxis::atLeft), t->heads);
    r->setRangeDrag(Qt::Horizontal);
    r->setRangeZoom(Qt::Horizontal);
    r->setMarginGroup(QCP::msLeft | QCP::msRight, group);
  }
  score_rect_->axis(QCPAxis::atLeft)->setLabel(tr("scores"));
  kept_rect_->axis(QCPAxis::atLeft)->setLabel(tr("kept"));
  kept_rect_->axis(QCPAxis::atLeft)->setLabelColor(plot::kept_color());
  kept_rect_->axis(QCPAxis::atBottom)->setLabel(tr("token position"));
  const bool log = scale_box_->currentIndex() == 1;
  if (t->scores_available) {
    bool trimmed = false;
    const Range range = display_range(*t, l, &trimmed);
    plot::add_score_map(plot_, score_rect_, lod->scores[static_cast<size_t>(l)], t->seq, range,
                        log ? plot::ColorScaleType::Log : plot::ColorScaleType::Linear, scale_);
    if (trimmed) scale_->setLabel(scale_->label() + tr("  (max-filled protected slots saturate)"));
  } else {
    plot::add_map(plot_, score_rect_, lod->scores[static_cast<size_t>(l)], t->seq, plot::score_gradient(), QCPRange(0, 1));
    scale_->setLabel(tr("no scores (ratio 0)"));
  }
  plot::add_map(plot_, kept_rect_, lod->kept[static_cast<size_t>(l)], t->seq, plot::kept_gradient(), QCPRange(0, 1));
  auto* xs = score_rect_->axis(QCPAxis::atBottom);
  auto* xk = kept_rect_->axis(QCPAxis::atBottom);
  connect(xs, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), xk, qOverload<const QCPRange&>(&QCPAxis::setRange));
  connect(xk, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), xs, qOverload<const QCPRange&>(&QCPAxis::setRange));
  // The selected head (Alt+Left/Right), framed in both maps.
  if (doc_->head() >= 0) {
    for (auto* r : {score_rect_, kept_rect_}) {
      auto* frame = new QCPItemRect(plot_);
      frame->setClipAxisRect(r);
      for (auto* p : {frame->topLeft, frame->bottomRight})
        p->setAxes(r->axis(QCPAxis::atBottom), r->axis(QCPAxis::atLeft));
      frame->topLeft->setCoords(-0.5, doc_->head() - 0.5);
      frame->bottomRight->setCoords(t->seq - 0.5, doc_->head() + 0.5);
      frame->setPen(QPen(QColor(220, 50, 30), 2));
      frame->setBrush(Qt::NoBrush);
    }
  }
  // Zoomed in to a few dozen positions, the kept map's axis shows the token pieces themselves.
  connect(xk, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this, [this, xk](const QCPRange& r) {
    const Trace* tr_ = doc_->trace();
    if (!tr_) return;
    if (r.size() <= 60) {
      QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
      const int s0 = std::max(0, static_cast<int>(std::ceil(r.lower))), s1 = std::min<int>(tr_->seq - 1, static_cast<int>(r.upper));
      for (int s = s0; s <= s1; ++s) ticker->addTick(s, quoted_token(tr_->tokens[static_cast<size_t>(s)]));
      xk->setTicker(ticker);
      xk->setTickLabelRotation(-60);
    } else if (qSharedPointerDynamicCast<QCPAxisTickerText>(xk->ticker())) {
      xk->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
      xk->setTickLabelRotation(0);
    }
  });
  if (zoom_trace_ == t && zoom_hi_ > zoom_lo_) xs->setRange(zoom_lo_, zoom_hi_);
  zoom_trace_ = t;
  plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
  plot_->replot();
}

QString LayerView::readoutAt(const QPoint& pos) const {
  const Trace* t = doc_->trace();
  if (!t || !score_rect_) return {};
  for (auto* r : {score_rect_, kept_rect_}) {
    if (!r->rect().contains(pos)) continue;
    const int s = static_cast<int>(std::lround(r->axis(QCPAxis::atBottom)->pixelToCoord(pos.x())));
    const int h = static_cast<int>(std::lround(r->axis(QCPAxis::atLeft)->pixelToCoord(pos.y())));
    if (s < 0 || s >= t->seq || h < 0 || h >= t->heads) return {};
    const int l = doc_->layer();
    const float sc = t->score(l, h, s);
    return tr("pos %1  ·  token %2 (id %3)  ·  layer %4  ·  head %5  ·  score %6  ·  %7")
        .arg(s)
        .arg(quoted_token(t->tokens[static_cast<size_t>(s)]))
        .arg(t->token_ids[static_cast<size_t>(s)])
        .arg(l)
        .arg(h)
        .arg(t->scores_available ? QString::number(sc, 'g', 5) : tr("n/a"))
        .arg(t->is_kept(l, h, s) ? tr("KEPT") : tr("evicted"));
  }
  return {};
}

QString LayerView::readout() const { return readout_->text(); }

void LayerView::onMouseMove(QMouseEvent* e) {
  const QString text = readoutAt(e->pos());
  if (!text.isEmpty()) readout_->setText(text);
}

bool LayerView::exportTo(const QString& path, int width, int height, QString* error) {
  return export_plot(plot_, path, width, height, error);
}

}  // namespace kvviz
