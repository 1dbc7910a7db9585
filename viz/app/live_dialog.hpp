#pragma once
// Live mode: pick a model (default SmolLM2), a context (file or typed text), a press from the registry and a
// ratio; the press runs in a worker thread with per-layer progress while the UI stays responsive; the result
// becomes the document's trace (File ▸ Save trace as… writes it).
#include <atomic>
#include <memory>

#include <QDialog>
#include <QFutureWatcher>

#include "viz/model/trace.hpp"

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QProgressBar;
class QPushButton;

namespace kvviz {

struct LiveOutcome {
  std::shared_ptr<const Trace> trace;
  QString error;
};

class LiveDialog : public QDialog {
  Q_OBJECT
 public:
  explicit LiveDialog(QWidget* parent = nullptr);
  ~LiveDialog() override;
  void setContext(const QString& text);
  void setPress(const QString& spec, double ratio);
  void start();               // what the Run button does
  bool running() const { return busy_; }  // from start() until the result is shown
  QString status() const;

 signals:
  void traceReady(std::shared_ptr<const kvviz::Trace> trace);

 private:
  void onProgress(int step, int total, const QString& what);
  void onFinished();
  QLineEdit* model_;
  QComboBox* press_;
  QDoubleSpinBox* ratio_;
  QPlainTextEdit* context_;
  QProgressBar* progress_;
  QLabel* status_;
  QPushButton* run_;
  QPushButton* cancel_;
  QFutureWatcher<LiveOutcome>* watcher_;
  std::shared_ptr<std::atomic<bool>> cancel_flag_;
  bool busy_ = false;
};

}  // namespace kvviz
