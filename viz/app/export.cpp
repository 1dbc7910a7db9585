#include "viz/app/export.hpp"

#include <QCoreApplication>
#include <QFileInfo>
#include <QLayout>
#include <QPainter>
#include <QPdfWriter>
#include <QWidget>

#include <qcustomplot.h>

#ifdef KVVIZ_HAVE_SVG
#include <QSvgGenerator>
#endif

namespace kvviz {
namespace {

QString suffix(const QString& path) { return QFileInfo(path).suffix().toLower(); }

bool unsupported(const QString& path, QString* error) {
  if (error) {
    *error = suffix(path) == "svg"
                 ? QStringLiteral("SVG export needs Qt SVG, which this kvviz was built without; use .png or .pdf")
                 : QStringLiteral("cannot export to '%1': use a .png, .pdf%2 file name")
                       .arg(path, svg_supported() ? QStringLiteral(" or .svg") : QString());
  }
  return false;
}

bool write_failed(const QString& path, QString* error) {
  if (error) *error = QStringLiteral("cannot write '%1'").arg(path);
  return false;
}

}  // namespace

bool svg_supported() {
#ifdef KVVIZ_HAVE_SVG
  return true;
#else
  return false;
#endif
}

QString export_filter() {
  return svg_supported() ? QStringLiteral("PNG image (*.png);;PDF document (*.pdf);;SVG image (*.svg)")
                         : QStringLiteral("PNG image (*.png);;PDF document (*.pdf)");
}

bool export_plot(QCustomPlot* plot, const QString& path, int width, int height, QString* error) {
  const QString ext = suffix(path);
  bool ok = false;
  if (ext == "png") {
    ok = plot->savePng(path, width, height, 2.0);
  } else if (ext == "pdf") {
    ok = plot->savePdf(path, width, height);
#ifdef KVVIZ_HAVE_SVG
  } else if (ext == "svg") {
    QSvgGenerator gen;
    gen.setFileName(path);
    gen.setSize(QSize(width, height));
    gen.setViewBox(QRect(0, 0, width, height));
    QCPPainter painter;
    painter.begin(&gen);
    plot->toPainter(&painter, width, height);
    painter.end();
    ok = QFileInfo::exists(path);
#endif
  } else {
    return unsupported(path, error);
  }
  return ok || write_failed(path, error);
}

bool export_widget(QWidget* widget, const QString& path, int width, int height, QString* error) {
  const QString ext = suffix(path);
  QCoreApplication::sendPostedEvents();  // pending layout requests first: they would undo the resize below
  const QSize old = widget->size();
  widget->resize(width, height);
  if (widget->layout()) widget->layout()->activate();  // lay the children out at the export size, shown or not
  bool ok = false;
  if (ext == "png") {
    const qreal dpr = 2.0;
    QPixmap pm(QSize(width, height) * dpr);
    pm.setDevicePixelRatio(dpr);
    pm.fill(Qt::white);
    widget->render(&pm);
    ok = pm.save(path, "PNG");
  } else if (ext == "pdf") {
    QPdfWriter pdf(path);
    pdf.setPageSize(QPageSize(QSizeF(width, height), QPageSize::Point));
    pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
    pdf.setResolution(72);
    QPainter p(&pdf);
    widget->render(&p);
    ok = p.end();
#ifdef KVVIZ_HAVE_SVG
  } else if (ext == "svg") {
    QSvgGenerator gen;
    gen.setFileName(path);
    gen.setSize(QSize(width, height));
    QPainter p(&gen);
    widget->render(&p);
    ok = p.end();
#endif
  } else {
    widget->resize(old);
    return unsupported(path, error);
  }
  widget->resize(old);
  if (widget->layout()) widget->layout()->activate();
  return ok || write_failed(path, error);
}

}  // namespace kvviz
