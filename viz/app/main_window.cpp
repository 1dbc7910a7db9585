#include "viz/app/main_window.hpp"

#include <cstdio>

#include <QAction>
#include <QApplication>
#include <QDragEnterEvent>
#include <QDropEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QKeySequence>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QSettings>
#include <QStatusBar>
#include <QTabWidget>

#include "viz/app/compare_view.hpp"
#include "viz/app/document.hpp"
#include "viz/app/export.hpp"
#include "viz/app/layer_view.hpp"
#include "viz/app/live_dialog.hpp"
#include "viz/app/overview_view.hpp"
#include "viz/app/stats_view.hpp"
#include "viz/app/text_view.hpp"
#include "viz/model/stats.hpp"

namespace kvviz {
namespace {
constexpr int kMaxRecent = 8;
const char* kTraceFilter = "kvforge traces (*.kvtrace *.safetensors);;All files (*)";
}  // namespace

MainWindow::MainWindow(QWidget* parent)
    : QMainWindow(parent), doc_(new Document(this)), tabs_(new QTabWidget(this)) {
  overview_ = new OverviewView(doc_, tabs_);
  layer_ = new LayerView(doc_, tabs_);
  text_ = new TextView(doc_, tabs_);
  stats_ = new StatsView(doc_, tabs_);
  compare_ = new CompareView(doc_, tabs_);
  tabs_->addTab(overview_, tr("&Overview"));
  tabs_->addTab(layer_, tr("&Layer"));
  tabs_->addTab(text_, tr("&Text"));
  tabs_->addTab(stats_, tr("&Statistics"));
  tabs_->addTab(compare_, tr("&Compare"));
  setCentralWidget(tabs_);
  setAcceptDrops(true);
  resize(1280, 860);
  connect(overview_, &OverviewView::layerActivated, this, [this] { tabs_->setCurrentWidget(layer_); });
  connect(doc_, &Document::layerChanged, this, &MainWindow::updateTitle);
  connect(doc_, &Document::headChanged, this, &MainWindow::updateTitle);
  info_ = new QLabel(this);
  statusBar()->addPermanentWidget(info_);
  buildMenus();
  updateTitle();
}

void MainWindow::buildMenus() {
  auto* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&Open…"), QKeySequence::Open, this, [this] {
    const QString p = QFileDialog::getOpenFileName(this, tr("Open trace"), QString(), tr(kTraceFilter));
    if (!p.isEmpty()) openTrace(p);
  });
  file->addAction(tr("Open to &compare…"), QKeySequence(tr("Ctrl+Shift+O")), this, [this] {
    const QString p = QFileDialog::getOpenFileName(this, tr("Open a trace to compare"), QString(), tr(kTraceFilter));
    if (!p.isEmpty()) openCompareTrace(p);
  });
  file->addAction(tr("&Live run…"), QKeySequence(tr("Ctrl+R")), this, [this] {
    liveDialog()->show();
    liveDialog()->raise();
  });
  file->addAction(tr("&Save trace as…"), QKeySequence::Save, this, [this] {
    if (!doc_->trace()) return;
    const QString p = QFileDialog::getSaveFileName(this, tr("Save trace"), QStringLiteral("run.kvtrace"), tr(kTraceFilter));
    if (!p.isEmpty()) saveTrace(p);
  });
  recent_menu_ = file->addMenu(tr("&Recent files"));
  updateRecentMenu();
  file->addSeparator();
  file->addAction(tr("&Export current view…"), QKeySequence(tr("Ctrl+E")), this, &MainWindow::exportCurrent);
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, qApp, &QApplication::quit);

  auto* nav = menuBar()->addMenu(tr("&Navigate"));
  nav->addAction(tr("Previous layer"), QKeySequence(tr("Alt+Up")), this, [this] { doc_->stepLayer(-1); });
  nav->addAction(tr("Next layer"), QKeySequence(tr("Alt+Down")), this, [this] { doc_->stepLayer(1); });
  auto* pgup = new QAction(this);
  pgup->setShortcut(QKeySequence(Qt::Key_PageUp));
  connect(pgup, &QAction::triggered, this, [this] { doc_->stepLayer(-1); });
  auto* pgdn = new QAction(this);
  pgdn->setShortcut(QKeySequence(Qt::Key_PageDown));
  connect(pgdn, &QAction::triggered, this, [this] { doc_->stepLayer(1); });
  addAction(pgup);
  addAction(pgdn);
  nav->addAction(tr("Previous head"), QKeySequence(tr("Alt+Left")), this, [this] { doc_->stepHead(-1); });
  nav->addAction(tr("Next head"), QKeySequence(tr("Alt+Right")), this, [this] { doc_->stepHead(1); });
  nav->addSeparator();
  const char* names[] = {"Overview", "Layer", "Text", "Statistics", "Compare"};
  for (int i = 0; i < 5; ++i)
    nav->addAction(tr(names[i]), QKeySequence(QStringLiteral("Ctrl+%1").arg(i + 1)), this,
                   [this, i] { tabs_->setCurrentIndex(i); });
}

bool MainWindow::openTrace(const QString& path) {
  QString err;
  if (!doc_->open(path, &err)) {
    reportError(err);
    return false;
  }
  addRecent(path);
  updateTitle();
  statusBar()->showMessage(tr("Opened %1").arg(path), 5000);
  return true;
}

bool MainWindow::openCompareTrace(const QString& path) {
  QString err;
  if (!doc_->openCompare(path, &err)) {
    reportError(err);
    return false;
  }
  addRecent(path);
  tabs_->setCurrentWidget(compare_);
  return true;
}

void MainWindow::reportError(const QString& what) {
  last_error_ = what;
  if (quiet_) {
    std::fprintf(stderr, "kvviz: error: %s\n", qPrintable(what));
    return;
  }
  QMessageBox::warning(this, tr("kvviz"), what);
}

bool MainWindow::showView(const QString& spec) {
  const QString name = spec.section(QLatin1Char(':'), 0, 0);
  for (int i = 0; i < tabs_->count(); ++i) {
    auto* v = static_cast<View*>(tabs_->widget(i));
    if (v->viewName() != name) continue;
    if (spec.contains(QLatin1Char(':'))) {
      bool ok = false;
      const int l = spec.section(QLatin1Char(':'), 1).toInt(&ok);
      if (!ok || !doc_->trace() || l < 0 || l >= doc_->trace()->layers) return false;
      doc_->setLayer(l);
    }
    tabs_->setCurrentIndex(i);
    return true;
  }
  return false;
}

LiveDialog* MainWindow::liveDialog() {
  if (!live_) {
    live_ = new LiveDialog(this);
    connect(live_, &LiveDialog::traceReady, this, [this](std::shared_ptr<const Trace> t) {
      doc_->setTrace(std::move(t));
      updateTitle();
      tabs_->setCurrentWidget(overview_);
    });
  }
  return live_;
}

bool MainWindow::saveTrace(const QString& path) {
  if (!doc_->trace()) return false;
  try {
    save_trace(path.toStdString(), *doc_->trace());
  } catch (const std::exception& e) {
    reportError(QString::fromStdString(e.what()));
    return false;
  }
  addRecent(path);
  statusBar()->showMessage(tr("Saved %1").arg(path), 5000);
  return true;
}

View* MainWindow::currentView() const { return static_cast<View*>(tabs_->currentWidget()); }

void MainWindow::exportCurrent() {
  const QString p = QFileDialog::getSaveFileName(this, tr("Export view"), currentView()->viewName() + ".png",
                                                 export_filter());
  if (p.isEmpty()) return;
  QString err;
  if (!currentView()->exportTo(p, 1600, 1000, &err)) reportError(err);
  else statusBar()->showMessage(tr("Exported %1").arg(p), 5000);
}

QStringList MainWindow::recentFiles() const { return QSettings().value("recentFiles").toStringList(); }

void MainWindow::addRecent(const QString& path) {
  QStringList r = recentFiles();
  const QString abs = QFileInfo(path).absoluteFilePath();
  r.removeAll(abs);
  r.prepend(abs);
  while (r.size() > kMaxRecent) r.removeLast();
  QSettings().setValue("recentFiles", r);
  updateRecentMenu();
}

void MainWindow::updateRecentMenu() {
  if (!recent_menu_) return;
  recent_menu_->clear();
  const QStringList r = recentFiles();
  for (int i = 0; i < r.size(); ++i)
    recent_menu_->addAction(QStringLiteral("&%1 %2").arg(i + 1).arg(r[i]), this, [this, p = r[i]] { openTrace(p); });
  recent_menu_->setEnabled(!r.isEmpty());
}

void MainWindow::updateTitle() {
  const Trace* t = doc_->trace();
  if (!t) {
    setWindowTitle(tr("kvviz"));
    info_->setText(tr("no trace — File ▸ Open, or drop a .kvtrace file here"));
    return;
  }
  setWindowTitle(tr("kvviz — %1 — %2").arg(QFileInfo(QString::fromStdString(t->path)).fileName(),
                                         QString::fromStdString(t->label())));
  info_->setText(tr("%1   ·   %2 layers × %3 kv heads × %4 tokens   ·   layer %5   ·   %6")
                               .arg(QString::fromStdString(t->model_name))
                               .arg(t->layers)
                               .arg(t->heads)
                               .arg(t->seq)
                               .arg(doc_->layer())
                               .arg(doc_->head() < 0 ? tr("all heads") : tr("head %1").arg(doc_->head())));
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
  if (e->mimeData()->hasUrls()) e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
  QStringList files;
  for (const QUrl& u : e->mimeData()->urls())
    if (u.isLocalFile()) files << u.toLocalFile();
  if (files.isEmpty()) return;
  const bool compare = (e->modifiers() & Qt::ShiftModifier) && doc_->trace();
  if (compare) {
    openCompareTrace(files[0]);
  } else if (openTrace(files[0]) && files.size() > 1) {
    openCompareTrace(files[1]);
  }
  e->acceptProposedAction();
}

}  // namespace kvviz
