// kvviz: the desktop inspector of kvforge traces (what a KV-cache press keeps). GPL-3.0 (links QCustomPlot);
// see viz/LICENSE-NOTE.md.
//   kvviz [TRACE [TRACE2]]                                     the GUI
//   kvviz --export OUT.png|pdf --view overview|layer:N|text|stats|compare TRACE [TRACE2]   headless
//   kvviz --screenshot OUT.png TRACE                           GUI, grab the window once drawn, quit (CI)
#include <cstdio>
#include <cstring>

#include <QApplication>
#include <QCommandLineParser>
#include <QScreen>
#include <QTimer>
#include <QWindow>

#include "viz/app/document.hpp"
#include "viz/app/layer_view.hpp"
#include "viz/app/main_window.hpp"
#include "viz/app/overview_view.hpp"
#include "viz/app/text_view.hpp"
#include "viz/app/view.hpp"

namespace {

bool has_arg(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], name) == 0 ||
        (std::strncmp(argv[i], name, std::strlen(name)) == 0 && argv[i][std::strlen(name)] == '='))
      return true;
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  // Headless export (and --help) need no display.
  const bool no_gui = has_arg(argc, argv, "--export") || has_arg(argc, argv, "--help") || has_arg(argc, argv, "-h") ||
                      has_arg(argc, argv, "--version");
  if (no_gui && qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
  QApplication app(argc, argv);
  QApplication::setOrganizationName(QStringLiteral("kvforge"));
  QApplication::setApplicationName(QStringLiteral("kvviz"));
  QApplication::setApplicationVersion(QStringLiteral("0.1.0"));

  QCommandLineParser p;
  p.setApplicationDescription(QStringLiteral("kvviz: inspect what a KV-cache press keeps (kvforge traces)"));
  p.addHelpOption();
  p.addVersionOption();
  p.addPositionalArgument(QStringLiteral("trace"), QStringLiteral("trace to open (kvforge trace --out …)"));
  p.addPositionalArgument(QStringLiteral("trace2"), QStringLiteral("optional second trace to compare"), QStringLiteral("[trace2]"));
  QCommandLineOption exp(QStringLiteral("export"), QStringLiteral("write the view to FILE (.png, .pdf) and exit"), QStringLiteral("FILE"));
  QCommandLineOption view(QStringLiteral("view"), QStringLiteral("overview, layer:N, text, stats or compare"), QStringLiteral("VIEW"),
                          QStringLiteral("overview"));
  QCommandLineOption width(QStringLiteral("width"), QStringLiteral("export width (points)"), QStringLiteral("W"), QStringLiteral("1600"));
  QCommandLineOption height(QStringLiteral("height"), QStringLiteral("export height (points)"), QStringLiteral("H"), QStringLiteral("1000"));
  QCommandLineOption shot(QStringLiteral("screenshot"), QStringLiteral("show the window, grab it to FILE once drawn, and exit"),
                          QStringLiteral("FILE"));
  QCommandLineOption log(QStringLiteral("log-scale"), QStringLiteral("layer view: logarithmic colour scale"));
  QCommandLineOption score(QStringLiteral("text-by-score"), QStringLiteral("text view: colour by score, not kept"));
  p.addOptions({exp, view, width, height, shot, log, score});
  p.process(app);

  const QStringList files = p.positionalArguments();
  const bool headless = p.isSet(exp);
  kvviz::MainWindow w;
  w.setQuiet(headless || p.isSet(shot));
  if (files.size() > 2) {
    std::fprintf(stderr, "kvviz: error: at most two traces (the second one is compared with the first)\n");
    return 1;
  }
  if (!files.isEmpty() && !w.openTrace(files[0])) return 1;
  if (files.size() == 2 && !w.openCompareTrace(files[1])) return 1;
  if (p.isSet(log)) w.layerView()->setLogScale(true);
  if (p.isSet(score)) w.textView()->setMode(kvviz::TextView::Score);

  if (headless || p.isSet(shot)) {
    if (files.isEmpty()) {
      std::fprintf(stderr, "kvviz: error: --export and --screenshot need a trace\n");
      return 1;
    }
    w.document()->waitForLod();
    if (!w.showView(p.value(view))) {
      std::fprintf(stderr, "kvviz: error: unknown view '%s' (overview, layer:N, text, stats, compare)\n",
                   qPrintable(p.value(view)));
      return 1;
    }
  }
  if (headless) {
    kvviz::View* v = w.currentView();
    v->rebuild();
    QString err;
    if (!v->exportTo(p.value(exp), p.value(width).toInt(), p.value(height).toInt(), &err)) {
      std::fprintf(stderr, "kvviz: error: %s\n", qPrintable(err));
      return 1;
    }
    std::printf("kvviz: wrote %s (view %s, %d layer maps)\n", qPrintable(p.value(exp)), qPrintable(p.value(view)),
                w.overview()->layerMapCount());
    return 0;
  }
  w.show();
  if (p.isSet(shot)) {
    const QString out = p.value(shot);
    QTimer::singleShot(800, &w, [&w, out] {
      w.currentView()->repaint();
      QApplication::processEvents();
      QScreen* screen = w.windowHandle() ? w.windowHandle()->screen() : QGuiApplication::primaryScreen();
      QPixmap pm = screen ? screen->grabWindow(w.winId()) : QPixmap();
      if (pm.isNull() || pm.width() < 10) pm = w.grab();  // platforms without screen capture
      const bool ok = pm.save(out, "PNG");
      std::printf("kvviz: window %dx%d, overview drew %d layer maps; screenshot %s %s\n", w.width(), w.height(),
                  w.overview()->layerMapCount(), qPrintable(out), ok ? "saved" : "FAILED");
      std::fflush(stdout);
      QApplication::exit(ok ? 0 : 1);
    });
  }
  return app.exec();
}
