// kvviz widgets under QT_QPA_PLATFORM=offscreen (Qt Test): every view draws a synthetic trace, layer
// navigation by keyboard, hover read-out, text colouring, statistics bars, compare, export, bad input (a
// message, no crash), drag-and-drop and recent files.
#include <filesystem>

#include <QDropEvent>
#include <QFileInfo>
#include <QMimeData>
#include <QSettings>
#include <QTemporaryDir>
#include <QTest>
#include <QUrl>

#include <qcustomplot.h>

#include "viz/app/compare_view.hpp"
#include "viz/app/document.hpp"
#include "viz/app/export.hpp"
#include "viz/app/layer_view.hpp"
#include "viz/app/live_dialog.hpp"
#include "viz/app/main_window.hpp"
#include "viz/app/overview_view.hpp"
#include "viz/app/stats_view.hpp"
#include "viz/app/text_view.hpp"
#include "viz/model/trace.hpp"

using namespace kvviz;

namespace {

Trace synthetic(int64_t L, int64_t H, int64_t S, int shift) {
  Trace t;
  t.layers = L;
  t.heads = H;
  t.seq = S;
  t.press = shift ? "knorm" : "snapkv(window_size=4)";
  t.compression_ratio = 0.5;
  t.model_name = "tiny";
  for (int64_t l = 0; l < L; ++l)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < S; ++s) {
        t.scores.push_back(static_cast<float>(std::sin(0.1 * s + l + h)));
        t.kept.push_back((s + l + h + shift) % 2 == 0);
      }
  for (int64_t s = 0; s < S; ++s) {
    t.token_ids.push_back(static_cast<int32_t>(s));
    t.tokens.push_back(s == 3 ? std::string(" <b>&") : " word" + std::to_string(s));
  }
  return t;
}

// QApplication only delivers a Drop during a real drag; call the handlers the way it would.
struct DropWindow : MainWindow {
  using MainWindow::dragEnterEvent;
  using MainWindow::dropEvent;
};

}  // namespace

class TestKvviz : public QObject {
  Q_OBJECT
  QTemporaryDir dir_;
  QString a_, b_, other_, bad_;

 private slots:
  void initTestCase() {
    QCoreApplication::setOrganizationName(QStringLiteral("kvforge-tests"));
    QCoreApplication::setApplicationName(QStringLiteral("kvviz-widget-tests"));
    QSettings().clear();
    QVERIFY(dir_.isValid());
    a_ = dir_.filePath("a.kvtrace");
    b_ = dir_.filePath("b.kvtrace");
    other_ = dir_.filePath("other.kvtrace");
    bad_ = dir_.filePath("bad.kvtrace");
    save_trace(a_.toStdString(), synthetic(6, 3, 120, 0));
    save_trace(b_.toStdString(), synthetic(6, 3, 120, 1));
    save_trace(other_.toStdString(), synthetic(6, 3, 50, 0));
    QFile f(bad_);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("\x10\x00\x00\x00\x00\x00\x00\x00{\"x\":", 13);
  }

  void overviewDrawsOneMapPerLayer() {
    MainWindow w;
    w.setQuiet(true);
    QVERIFY(w.openTrace(a_));
    w.document()->waitForLod();
    QCOMPARE(w.overview()->layerMapCount(), 6);
    QCOMPARE(w.overview()->plot()->plottableCount(), 6);
  }

  void clickingALayerOpensIt() {
    MainWindow w;
    QVERIFY(w.openTrace(a_));
    w.document()->waitForLod();
    w.resize(1200, 800);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    auto* plot = w.overview()->plot();
    plot->replot();
    QCPAxisRect* l3 = plot->axisRect(3);  // rects in layer order
    QVERIFY(l3);
    const QPoint c = l3->rect().center();
    QTest::mousePress(plot, Qt::LeftButton, Qt::NoModifier, c);
    QTest::mouseRelease(plot, Qt::LeftButton, Qt::NoModifier, c);
    QCOMPARE(w.document()->layer(), 3);
    QCOMPARE(w.currentView()->viewName(), QStringLiteral("layer"));
  }

  void longTraceIsDownsampledInTheBackground() {
    const QString p = dir_.filePath("long.kvtrace");
    save_trace(p.toStdString(), synthetic(4, 2, 20000, 0));
    MainWindow w;
    QVERIFY(w.openTrace(p));
    // The document is usable at once; the maps follow when the worker thread is done.
    QVERIFY(w.document()->trace() != nullptr);
    QTRY_VERIFY_WITH_TIMEOUT(w.document()->lod() != nullptr, 20000);
    QCOMPARE(w.document()->lod()->bin, int64_t{5});
    QCOMPARE(w.document()->lod()->kept[0].cols, int64_t{4000});
    QCOMPARE(w.overview()->layerMapCount(), 4);
    auto* map = qobject_cast<QCPColorMap*>(w.overview()->plot()->plottable(0));
    QVERIFY(map);
    QCOMPARE(map->data()->keySize(), 4000);
  }

  void badTraceShowsMessage() {
    MainWindow w;
    w.setQuiet(true);
    QVERIFY(!w.openTrace(bad_));
    QVERIFY2(w.lastError().contains("cannot open trace"), qPrintable(w.lastError()));
    QVERIFY(!w.openTrace(dir_.filePath("missing.kvtrace")));
    QVERIFY(w.document()->trace() == nullptr);
    QVERIFY(w.openTrace(a_));
    QVERIFY(!w.openCompareTrace(other_));  // another context
    QVERIFY2(w.lastError().contains("same context"), qPrintable(w.lastError()));
    QVERIFY(w.document()->compare() == nullptr);
  }

  void keyboardNavigatesLayersAndHeads() {
    MainWindow w;
    w.setQuiet(true);
    QVERIFY(w.openTrace(a_));
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    w.activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(&w));
    QCOMPARE(w.document()->layer(), 0);
    QTest::keyClick(&w, Qt::Key_Down, Qt::AltModifier);
    QCOMPARE(w.document()->layer(), 1);
    QTest::keyClick(&w, Qt::Key_PageDown);
    QCOMPARE(w.document()->layer(), 2);
    QTest::keyClick(&w, Qt::Key_Up, Qt::AltModifier);
    QCOMPARE(w.document()->layer(), 1);
    QCOMPARE(w.document()->head(), -1);
    QTest::keyClick(&w, Qt::Key_Right, Qt::AltModifier);
    QCOMPARE(w.document()->head(), 0);
    QTest::keyClick(&w, Qt::Key_Left, Qt::AltModifier);
    QTest::keyClick(&w, Qt::Key_Left, Qt::AltModifier);
    QCOMPARE(w.document()->head(), 2);  // cycles through "all heads"
    QTest::keyClick(&w, Qt::Key_3, Qt::ControlModifier);
    QCOMPARE(w.currentView()->viewName(), QStringLiteral("text"));
    for (int i = 0; i < 10; ++i) w.document()->stepLayer(1);
    QCOMPARE(w.document()->layer(), 5);  // clamped
  }

  void layerViewHoverReadout() {
    MainWindow w;
    w.setQuiet(true);
    QVERIFY(w.openTrace(a_));
    w.document()->waitForLod();
    QVERIFY(w.showView("layer:2"));
    QCOMPARE(w.document()->layer(), 2);
    w.resize(1200, 800);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    auto* plot = w.layerView()->plot();
    plot->replot();
    QCPAxisRect* scores = plot->axisRect(0);
    QVERIFY(scores);
    const QPoint c = scores->rect().center();
    const QString text = w.layerView()->readoutAt(c);
    QVERIFY2(text.contains("pos ") && text.contains("layer 2") && text.contains("head 1") && text.contains("score"),
             qPrintable(text));
    QVERIFY(text.contains("KEPT") || text.contains("evicted"));
    QTest::mouseMove(plot, c);
    QTRY_COMPARE(w.layerView()->readout(), text);
    QVERIFY(w.layerView()->readoutAt(QPoint(1, 1)).isEmpty());
    // Zoom on one map moves the other (linked x axes).
    plot->axisRect(0)->axis(QCPAxis::atBottom)->setRange(10, 20);
    QCOMPARE(plot->axisRect(1)->axis(QCPAxis::atBottom)->range().lower, 10.0);
    // Zoomed in, the kept map's axis names the tokens.
    auto ticker = qSharedPointerDynamicCast<QCPAxisTickerText>(plot->axisRect(1)->axis(QCPAxis::atBottom)->ticker());
    QVERIFY(ticker);
    QVERIFY(ticker->ticks().value(12).contains("word12"));
    plot->axisRect(0)->axis(QCPAxis::atBottom)->setRange(0, 119);
    QVERIFY(!qSharedPointerDynamicCast<QCPAxisTickerText>(plot->axisRect(1)->axis(QCPAxis::atBottom)->ticker()));
    w.layerView()->setLogScale(true);
    QVERIFY(plot->plottableCount() == 2);
  }

  void textViewColoursTokens() {
    MainWindow w;
    QVERIFY(w.openTrace(a_));
    QVERIFY(w.showView("text"));
    w.document()->setHead(0);
    const QString html = w.textView()->html();
    QVERIFY(html.contains("word7"));
    QVERIFY(html.contains("&lt;b&gt;&amp;"));  // escaped
    QVERIFY(html.contains("line-through"));    // evicted tokens are struck through
    w.textView()->setMode(TextView::Score);
    w.textView()->setAllLayers(true);
    QVERIFY(w.textView()->html().contains("word7"));
  }

  void statsAndCompare() {
    MainWindow w;
    QVERIFY(w.openTrace(a_));
    QCOMPARE(w.statsView()->plot()->plottableCount(), 1 + 3);  // per layer + one series per head
    QVERIFY(w.compareView()->meanJaccard() < 0);
    QVERIFY(w.openCompareTrace(b_));
    QCOMPARE(w.currentView()->viewName(), QStringLiteral("compare"));
    QCOMPARE(w.compareView()->meanJaccard(), 0.0);  // b keeps exactly what a evicts
    QVERIFY(w.openCompareTrace(a_));
    QCOMPARE(w.compareView()->meanJaccard(), 1.0);
  }

  void exportEveryView() {
    MainWindow w;
    QVERIFY(w.openTrace(a_));
    QVERIFY(w.openCompareTrace(b_));
    w.document()->waitForLod();
    for (const char* v : {"overview", "layer:1", "text", "stats", "compare"}) {
      QVERIFY(w.showView(v));
      for (const char* ext : {"png", "pdf"}) {
        const QString out = dir_.filePath(QStringLiteral("%1.%2").arg(QString(v).replace(':', '_'), ext));
        QString err;
        QVERIFY2(w.currentView()->exportTo(out, 800, 500, &err), qPrintable(err));
        QVERIFY2(QFileInfo(out).size() > 1000, qPrintable(out));
      }
    }
    QImage img(dir_.filePath("overview.png"));
    QCOMPARE(img.width(), 1600);  // 2x pixel ratio
    QString err;
    QVERIFY(!w.currentView()->exportTo(dir_.filePath("x.bmp"), 100, 100, &err));
    QVERIFY(err.contains(".png"));
    if (!svg_supported()) {
      QVERIFY(!w.currentView()->exportTo(dir_.filePath("x.svg"), 100, 100, &err));
      QVERIFY(err.contains("Qt SVG"));
    }
    QVERIFY(!w.showView("nosuch"));
    QVERIFY(!w.showView("layer:99"));
  }

  void dropAndRecentFiles() {
    DropWindow w;
    w.setQuiet(true);
    QVERIFY(w.acceptDrops());
    QMimeData mime;
    mime.setUrls({QUrl::fromLocalFile(a_), QUrl::fromLocalFile(b_)});
    QDragEnterEvent enter(QPoint(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    w.dragEnterEvent(&enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
    w.dropEvent(&drop);
    QVERIFY(w.document()->trace() != nullptr);
    QVERIFY(w.document()->compare() != nullptr);
    const QStringList r = w.recentFiles();
    QVERIFY(r.size() >= 2);
    QCOMPARE(r[0], QFileInfo(b_).absoluteFilePath());
    QCOMPARE(r[1], QFileInfo(a_).absoluteFilePath());
  }

  // Live mode on SmolLM2 (needs the model: run by the viz.widgets_live test with KVVIZ_LIVE_TEST=1).
  void liveRunProducesTrace() {
    if (qEnvironmentVariableIsEmpty("KVVIZ_LIVE_TEST")) QSKIP("set KVVIZ_LIVE_TEST=1 (needs the SmolLM2 model)");
    MainWindow w;
    w.setQuiet(true);
    LiveDialog* live = w.liveDialog();
    live->setContext(QStringLiteral("The secret word is cormorant. It was written in green ink on the last page."));
    live->setPress(QStringLiteral("knorm"), 0.5);
    live->start();
    QVERIFY(live->running());
    // The UI stays responsive while the worker runs: the event loop keeps turning.
    int turns = 0;
    while (live->running() && turns < 6000) {
      QTest::qWait(20);
      ++turns;
    }
    QVERIFY2(!live->running(), "live run did not finish in 120 s");
    QVERIFY(turns > 1);
    QVERIFY2(live->status().startsWith("Done"), qPrintable(live->status()));
    const Trace* t = w.document()->trace();
    QVERIFY(t != nullptr);
    QCOMPARE(t->layers, 30);
    QCOMPARE(t->press, std::string("knorm"));
    w.document()->waitForLod();
    QCOMPARE(w.overview()->layerMapCount(), 30);
    const QString out = dir_.filePath("live.kvtrace");
    QVERIFY(w.saveTrace(out));
    const Trace back = load_trace(out.toStdString());
    QCOMPARE(back.seq, t->seq);
    QVERIFY(back.kept == t->kept);
    // A bad spec is a message, not a crash.
    live->setPress(QStringLiteral("nosuch"), 0.5);
    live->start();
    QTRY_VERIFY_WITH_TIMEOUT(!live->running(), 60000);
    QVERIFY2(live->status().contains("unknown press"), qPrintable(live->status()));
  }
};

QTEST_MAIN(TestKvviz)
#include "test_kvviz_widgets.moc"
