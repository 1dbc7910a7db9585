#pragma once
// Document: the traces kvviz shows (a primary one and an optional second one to compare), their downsampled
// maps (computed in a worker thread), and the selected layer and head. Views observe it; they never load files.
#include <memory>

#include <QFutureWatcher>
#include <QObject>
#include <QString>

#include "viz/model/downsample.hpp"
#include "viz/model/trace.hpp"

namespace kvviz {

class Document : public QObject {
  Q_OBJECT
 public:
  static constexpr int64_t kMaxColumns = 4096;  // wider traces are downsampled for display

  explicit Document(QObject* parent = nullptr);
  ~Document() override;

  // Loads a trace; on failure leaves the document unchanged and returns false with `error` set.
  bool open(const QString& path, QString* error);
  bool openCompare(const QString& path, QString* error);
  void setTrace(std::shared_ptr<const Trace> t);
  void setCompare(std::shared_ptr<const Trace> t);  // may be null; must be comparable with the primary trace

  const Trace* trace() const { return trace_.get(); }
  const Trace* compare() const { return compare_.get(); }
  const TraceLod* lod() const { return lod_ready_ ? &lod_ : nullptr; }  // null while downsampling
  void waitForLod();  // blocks until the worker is done (headless export, tests)

  int layer() const { return layer_; }
  int head() const { return head_; }  // -1 = all heads (views that can average)
  void setLayer(int l);
  void setHead(int h);
  void stepLayer(int delta);
  void stepHead(int delta);  // cycles through -1 (all), 0..H-1

 signals:
  void traceChanged();
  void compareChanged();
  void lodReady();
  void layerChanged(int layer);
  void headChanged(int head);

 private:
  void startLod();
  std::shared_ptr<const Trace> trace_, compare_;
  TraceLod lod_;
  bool lod_ready_ = false;
  QFutureWatcher<TraceLod>* watcher_ = nullptr;
  int layer_ = 0, head_ = -1;
};

}  // namespace kvviz
