#include "viz/app/text_view.hpp"

#include <algorithm>

#include <QComboBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QTextBrowser>
#include <QVBoxLayout>

#include "viz/app/document.hpp"
#include "viz/app/export.hpp"
#include "viz/app/token_text.hpp"
#include "viz/model/stats.hpp"
#include "viz/plot/heatmap.hpp"

namespace kvviz {
namespace {

QColor mix(const QColor& a, const QColor& b, double t) {
  t = std::clamp(t, 0.0, 1.0);
  return QColor::fromRgbF(static_cast<float>(a.redF() + (b.redF() - a.redF()) * t),
                          static_cast<float>(a.greenF() + (b.greenF() - a.greenF()) * t),
                          static_cast<float>(a.blueF() + (b.blueF() - a.blueF()) * t));
}

// Light backgrounds so the text stays readable: kept -> light blue, evicted -> light grey (struck through when
// fully evicted); scores -> white to orange.
QColor kept_bg(double v) { return mix(QColor(225, 225, 225), QColor(150, 190, 245), v); }
QColor score_bg(double v) { return mix(QColor(255, 255, 255), QColor(245, 140, 40), v); }

}  // namespace

TextView::TextView(Document* doc, QWidget* parent)
    : View(doc, parent), layer_box_(new QComboBox(this)), head_box_(new QComboBox(this)), mode_box_(new QComboBox(this)),
      legend_(new QLabel(this)), text_(new QTextBrowser(this)) {
  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel(tr("Layer"), this));
  bar->addWidget(layer_box_);
  bar->addWidget(new QLabel(tr("Head"), this));
  bar->addWidget(head_box_);
  bar->addWidget(new QLabel(tr("Colour by"), this));
  mode_box_->addItems({tr("kept / evicted"), tr("score")});
  bar->addWidget(mode_box_);
  bar->addSpacing(16);
  bar->addWidget(legend_, 1);
  auto* layout = new QVBoxLayout(this);
  layout->setContentsMargins(4, 4, 4, 4);
  layout->addLayout(bar);
  layout->addWidget(text_, 1);
  text_->setOpenLinks(false);
  QFont f = text_->font();
  f.setPointSize(11);
  text_->setFont(f);
  auto changed = [this] {
    if (updating_) return;
    const int l = layer_box_->currentIndex() - 1, h = head_box_->currentIndex() - 1;
    if (l >= 0) doc_->setLayer(l);
    doc_->setHead(h);
    rebuild();
  };
  connect(layer_box_, qOverload<int>(&QComboBox::currentIndexChanged), this, changed);
  connect(head_box_, qOverload<int>(&QComboBox::currentIndexChanged), this, changed);
  connect(mode_box_, qOverload<int>(&QComboBox::currentIndexChanged), this, changed);
  connect(doc_, &Document::traceChanged, this, &TextView::rebuild);
  connect(doc_, &Document::layerChanged, this, [this] {
    if (layer_box_->currentIndex() > 0) rebuild();  // "all layers" stays all layers
  });
  connect(doc_, &Document::headChanged, this, &TextView::rebuild);
  rebuild();
}

void TextView::setMode(Mode m) { mode_box_->setCurrentIndex(m); }
void TextView::setAllLayers(bool all) { layer_box_->setCurrentIndex(all ? 0 : doc_->layer() + 1); }
QString TextView::html() const { return text_->toHtml(); }

void TextView::rebuild() {
  const Trace* t = doc_->trace();
  updating_ = true;
  if (!t) {
    text_->setHtml(tr("<p style='color:gray'>No trace open.</p>"));
    updating_ = false;
    return;
  }
  if (layer_box_->count() != t->layers + 1) {
    layer_box_->clear();
    layer_box_->addItem(tr("all layers (mean)"));
    for (int l = 0; l < t->layers; ++l) layer_box_->addItem(QStringLiteral("L%1").arg(l));
    layer_box_->setCurrentIndex(doc_->layer() + 1);
  } else if (layer_box_->currentIndex() > 0) {
    layer_box_->setCurrentIndex(doc_->layer() + 1);
  }
  if (head_box_->count() != t->heads + 1) {
    head_box_->clear();
    head_box_->addItem(tr("all heads (mean)"));
    for (int h = 0; h < t->heads; ++h) head_box_->addItem(QStringLiteral("h%1").arg(h));
  }
  head_box_->setCurrentIndex(doc_->head() + 1);
  updating_ = false;

  const int64_t layer = layer_box_->currentIndex() == 0 ? kAll : layer_box_->currentIndex() - 1;
  const int64_t head = head_box_->currentIndex() == 0 ? kAll : head_box_->currentIndex() - 1;
  const bool by_score = mode_box_->currentIndex() == Score && t->scores_available;
  const auto kept = token_values(*t, TokenValue::Kept, layer, head);
  const auto vals = by_score ? token_values(*t, TokenValue::Score, layer, head) : kept;
  legend_->setText(by_score ? tr("<span style='background:#fff'>&nbsp;low score&nbsp;</span> → "
                                 "<span style='background:#f58c28'>&nbsp;high score&nbsp;</span>")
                            : tr("<span style='background:#96bef5'>&nbsp;kept&nbsp;</span> "
                                 "<span style='background:#e1e1e1;color:#777'>&nbsp;<s>evicted</s>&nbsp;</span> "
                                 "(averages: shades in between)"));
  QString html = QStringLiteral("<div style='line-height:150%'>");
  for (int64_t s = 0; s < t->seq; ++s) {
    const double v = vals[static_cast<size_t>(s)];
    const QColor bg = by_score ? score_bg(v) : kept_bg(v);
    const bool gone = kept[static_cast<size_t>(s)] == 0.0;
    html += QStringLiteral("<span title='pos %1 · kept %2%' style='background:%3;%4'>%5</span>")
                .arg(s)
                .arg(100.0 * kept[static_cast<size_t>(s)], 0, 'f', 0)
                .arg(bg.name(), gone ? QStringLiteral("color:#888;text-decoration:line-through") : QString(),
                     token_html(t->tokens[static_cast<size_t>(s)]));
  }
  html += QStringLiteral("</div>");
  text_->setHtml(html);
}

bool TextView::exportTo(const QString& path, int width, int height, QString* error) {
  return export_widget(this, path, width, height, error);
}

}  // namespace kvviz
