#include "viz/app/live_dialog.hpp"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrentRun>

#include "viz/live/live_run.hpp"

namespace kvviz {

LiveDialog::LiveDialog(QWidget* parent)
    : QDialog(parent), model_(new QLineEdit(QStringLiteral("default"), this)), press_(new QComboBox(this)),
      ratio_(new QDoubleSpinBox(this)), context_(new QPlainTextEdit(this)), progress_(new QProgressBar(this)),
      status_(new QLabel(this)), run_(new QPushButton(tr("&Run"), this)), cancel_(new QPushButton(tr("Cancel"), this)),
      watcher_(new QFutureWatcher<LiveOutcome>(this)) {
  setWindowTitle(tr("kvviz — live run"));
  model_->setToolTip(tr("GGUF file, Hugging Face folder, or 'default' (SmolLM2-135M-Instruct)"));
  press_->setEditable(true);
  try {
    for (const auto& e : live::registered_press_examples()) press_->addItem(QString::fromStdString(e));
  } catch (...) {
  }
  press_->setCurrentText(QStringLiteral("snapkv(window_size=16)"));
  ratio_->setRange(0.0, 0.99);
  ratio_->setSingleStep(0.05);
  ratio_->setValue(0.5);
  context_->setPlaceholderText(tr("Paste a context here, or load a text file"));
  auto* load = new QPushButton(tr("Load text file…"), this);
  connect(load, &QPushButton::clicked, this, [this] {
    const QString p = QFileDialog::getOpenFileName(this, tr("Context text"));
    QFile f(p);
    if (!p.isEmpty() && f.open(QIODevice::ReadOnly)) context_->setPlainText(QString::fromUtf8(f.readAll()));
  });
  auto* form = new QFormLayout;
  form->addRow(tr("Model"), model_);
  form->addRow(tr("Press"), press_);
  form->addRow(tr("Compression ratio"), ratio_);
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(load);
  buttons->addStretch(1);
  buttons->addWidget(cancel_);
  buttons->addWidget(run_);
  auto* layout = new QVBoxLayout(this);
  layout->addLayout(form);
  layout->addWidget(context_, 1);
  layout->addWidget(progress_);
  layout->addWidget(status_);
  layout->addLayout(buttons);
  cancel_->setEnabled(false);
  resize(640, 480);
  connect(run_, &QPushButton::clicked, this, &LiveDialog::start);
  connect(cancel_, &QPushButton::clicked, this, [this] {
    if (cancel_flag_) cancel_flag_->store(true);
    status_->setText(tr("Cancelling…"));
  });
  connect(watcher_, &QFutureWatcher<LiveOutcome>::finished, this, &LiveDialog::onFinished);
}

LiveDialog::~LiveDialog() {
  if (cancel_flag_) cancel_flag_->store(true);
  watcher_->waitForFinished();
}

void LiveDialog::setContext(const QString& text) { context_->setPlainText(text); }
void LiveDialog::setPress(const QString& spec, double ratio) {
  press_->setCurrentText(spec);
  ratio_->setValue(ratio);
}
QString LiveDialog::status() const { return status_->text(); }

void LiveDialog::start() {
  if (running()) return;
  live::LiveRequest req;
  req.model = model_->text().trimmed().toStdString();
  req.context = context_->toPlainText().toStdString();
  req.context_name = "(live)";
  req.press = press_->currentText().trimmed().toStdString();
  req.compression_ratio = ratio_->value();
  if (req.context.empty()) {
    status_->setText(tr("Enter or load a context first."));
    return;
  }
  cancel_flag_ = std::make_shared<std::atomic<bool>>(false);
  busy_ = true;
  run_->setEnabled(false);
  cancel_->setEnabled(true);
  progress_->setRange(0, 0);
  status_->setText(tr("Starting…"));
  QPointer<LiveDialog> self(this);
  auto flag = cancel_flag_;
  auto report = [self](int step, int total, const std::string& what) {
    const QString w = QString::fromStdString(what);
    QMetaObject::invokeMethod(
        self.data(), [self, step, total, w] { if (self) self->onProgress(step, total, w); }, Qt::QueuedConnection);
  };
  watcher_->setFuture(QtConcurrent::run([req, report, flag]() -> LiveOutcome {
    try {
      return {std::make_shared<const Trace>(live::run_press(req, report, flag.get())), {}};
    } catch (const std::exception& e) {
      return {nullptr, QString::fromStdString(e.what())};
    }
  }));
}

void LiveDialog::onProgress(int step, int total, const QString& what) {
  if (step == 0) {
    progress_->setRange(0, 0);
  } else {
    progress_->setRange(0, total);
    progress_->setValue(step);
  }
  status_->setText(what);
}

void LiveDialog::onFinished() {
  busy_ = false;
  run_->setEnabled(true);
  cancel_->setEnabled(false);
  progress_->setRange(0, 1);
  const LiveOutcome out = watcher_->result();
  if (!out.trace) {
    progress_->setValue(0);
    status_->setText(tr("Failed: %1").arg(out.error));
    return;
  }
  progress_->setValue(1);
  status_->setText(tr("Done: %1 layers × %2 heads × %3 tokens").arg(out.trace->layers).arg(out.trace->heads).arg(out.trace->seq));
  emit traceReady(out.trace);
}

}  // namespace kvviz
