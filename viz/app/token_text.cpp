#include "viz/app/token_text.hpp"

namespace kvviz {

QString quoted_token(const std::string& piece) {
  QString s = QString::fromUtf8(piece.data(), static_cast<qsizetype>(piece.size()));
  s.replace(QLatin1Char('\n'), QStringLiteral("↵"));
  s.replace(QLatin1Char('\t'), QStringLiteral("→"));
  return QStringLiteral("“%1”").arg(s);
}

QString token_html(const std::string& piece) {
  QString s = QString::fromUtf8(piece.data(), static_cast<qsizetype>(piece.size())).toHtmlEscaped();
  s.replace(QLatin1Char('\n'), QStringLiteral("↵<br>"));
  return s;
}

}  // namespace kvviz
