#pragma once
// MainWindow: the five views as tabs, File menu (open, open to compare, recent files, export), drag-and-drop of
// trace files (a second file, or Shift while dropping, opens it for comparison), keyboard navigation:
//   Alt+Up / Alt+Down  (or PgUp / PgDown)  previous / next layer
//   Alt+Left / Alt+Right                    previous / next head (cycling through "all heads")
//   Ctrl+1 … Ctrl+5                         overview, layer, text, statistics, compare
// Live mode (File ▸ Live run…, Ctrl+R) runs a press on a model in a worker thread; Ctrl+S saves the trace.
#include <QMainWindow>
#include <QStringList>

class QLabel;
class QMenu;
class QTabWidget;

namespace kvviz {

class CompareView;
class Document;
class LiveDialog;
class LayerView;
class OverviewView;
class StatsView;
class TextView;
class View;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  explicit MainWindow(QWidget* parent = nullptr);
  Document* document() const { return doc_; }
  bool openTrace(const QString& path);         // shows a message box on failure (unless quiet)
  bool openCompareTrace(const QString& path);
  void setQuiet(bool quiet) { quiet_ = quiet; }  // errors to stderr instead of dialogs (headless, tests)
  QString lastError() const { return last_error_; }
  // "overview", "layer" (or "layer:N"), "text", "stats", "compare"; false on an unknown name.
  bool showView(const QString& spec);
  View* currentView() const;
  OverviewView* overview() const { return overview_; }
  LayerView* layerView() const { return layer_; }
  TextView* textView() const { return text_; }
  StatsView* statsView() const { return stats_; }
  CompareView* compareView() const { return compare_; }
  QStringList recentFiles() const;
  LiveDialog* liveDialog();  // created on first use (File ▸ Live run…)
  bool saveTrace(const QString& path);

 protected:
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dropEvent(QDropEvent* e) override;

 private:
  void buildMenus();
  void addRecent(const QString& path);
  void updateRecentMenu();
  void updateTitle();
  void reportError(const QString& what);
  void exportCurrent();
  Document* doc_;
  QTabWidget* tabs_;
  OverviewView* overview_;
  LayerView* layer_;
  TextView* text_;
  StatsView* stats_;
  CompareView* compare_;
  QMenu* recent_menu_ = nullptr;
  LiveDialog* live_ = nullptr;
  QLabel* info_ = nullptr;  // permanent status-bar read-out: model, shape, layer, head
  bool quiet_ = false;
  QString last_error_;
};

}  // namespace kvviz
