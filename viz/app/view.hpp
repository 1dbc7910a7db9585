#pragma once
// View: one tab of kvviz (overview, layer, text, stats, compare). Each observes the Document and can export
// itself (PNG, PDF, or SVG when Qt SVG is available) at a given size.
#include <QString>
#include <QWidget>

namespace kvviz {

class Document;

class View : public QWidget {
  Q_OBJECT
 public:
  View(Document* doc, QWidget* parent = nullptr) : QWidget(parent), doc_(doc) {}
  virtual QString viewName() const = 0;  // "overview", "layer", "text", "stats", "compare"
  // Writes the view to `path` (format from the extension); false with `error` set when it cannot.
  virtual bool exportTo(const QString& path, int width, int height, QString* error) = 0;
  virtual void rebuild() = 0;  // redraw everything from the document

 protected:
  Document* doc_;
};

}  // namespace kvviz
