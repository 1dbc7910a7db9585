#pragma once
// Text view: the context's tokens coloured by score or by kept/evicted, for the selected layer and head or
// averaged over heads and/or layers, so one reads which words survived. Hover a token for its values.
#include "viz/app/view.hpp"

class QComboBox;
class QTextBrowser;
class QLabel;

namespace kvviz {

class TextView : public View {
  Q_OBJECT
 public:
  explicit TextView(Document* doc, QWidget* parent = nullptr);
  QString viewName() const override { return QStringLiteral("text"); }
  bool exportTo(const QString& path, int width, int height, QString* error) override;
  void rebuild() override;
  enum Mode { Kept = 0, Score = 1 };
  void setMode(Mode m);
  void setAllLayers(bool all);
  QString html() const;  // the rendered document (tests)

 private:
  QComboBox* layer_box_;
  QComboBox* head_box_;
  QComboBox* mode_box_;
  QLabel* legend_;
  QTextBrowser* text_;
  bool updating_ = false;
};

}  // namespace kvviz
