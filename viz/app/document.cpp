#include "viz/app/document.hpp"

#include <algorithm>

#include <QtConcurrent/QtConcurrentRun>

#include "viz/model/stats.hpp"

namespace kvviz {

Document::Document(QObject* parent) : QObject(parent), watcher_(new QFutureWatcher<TraceLod>(this)) {
  connect(watcher_, &QFutureWatcher<TraceLod>::finished, this, [this] {
    if (lod_ready_ || watcher_->future().isCanceled() || watcher_->future().resultCount() == 0) return;
    lod_ = watcher_->result();
    lod_ready_ = true;
    emit lodReady();
  });
}

Document::~Document() { watcher_->waitForFinished(); }

bool Document::open(const QString& path, QString* error) {
  try {
    setTrace(std::make_shared<const Trace>(load_trace(path.toStdString())));
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
}

bool Document::openCompare(const QString& path, QString* error) {
  try {
    auto t = std::make_shared<const Trace>(load_trace(path.toStdString()));
    if (!trace_) throw TraceError("open a trace before one to compare it with");
    check_comparable(*trace_, *t);
    setCompare(std::move(t));
    return true;
  } catch (const std::exception& e) {
    if (error) *error = QString::fromStdString(e.what());
    return false;
  }
}

void Document::setTrace(std::shared_ptr<const Trace> t) {
  trace_ = std::move(t);
  if (compare_ && trace_) {
    try {
      check_comparable(*trace_, *compare_);
    } catch (const TraceError&) {
      compare_.reset();
      emit compareChanged();
    }
  }
  layer_ = 0;
  head_ = -1;
  startLod();
  emit traceChanged();
  emit layerChanged(layer_);
  emit headChanged(head_);
}

void Document::setCompare(std::shared_ptr<const Trace> t) {
  compare_ = std::move(t);
  emit compareChanged();
}

void Document::startLod() {
  lod_ready_ = false;
  watcher_->waitForFinished();  // a previous job (it holds its own shared_ptr, so this is only for ordering)
  if (!trace_) return;
  auto t = trace_;
  watcher_->setFuture(QtConcurrent::run([t] { return downsample_trace(*t, kMaxColumns); }));
}

void Document::waitForLod() {
  if (!trace_ || lod_ready_) return;
  watcher_->waitForFinished();
  if (!lod_ready_ && watcher_->future().resultCount() > 0) {
    lod_ = watcher_->result();
    lod_ready_ = true;
    emit lodReady();
  }
}

void Document::setLayer(int l) {
  if (!trace_) return;
  l = std::clamp<int>(l, 0, static_cast<int>(trace_->layers) - 1);
  if (l == layer_) return;
  layer_ = l;
  emit layerChanged(l);
}

void Document::setHead(int h) {
  if (!trace_) return;
  h = std::clamp<int>(h, -1, static_cast<int>(trace_->heads) - 1);
  if (h == head_) return;
  head_ = h;
  emit headChanged(h);
}

void Document::stepLayer(int delta) { setLayer(layer_ + delta); }

void Document::stepHead(int delta) {
  if (!trace_) return;
  const int n = static_cast<int>(trace_->heads) + 1;  // -1 .. H-1
  setHead(((head_ + 1 + delta) % n + n) % n - 1);
}

}  // namespace kvviz
