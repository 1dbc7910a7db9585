#pragma once
// Display helpers for token pieces: visible whitespace for read-outs, HTML-escaped text for the text view.
#include <string>

#include <QString>

namespace kvviz {

// “ Paris” with a leading/trailing space kept, newlines as ↵, tabs as →.
QString quoted_token(const std::string& piece);
// HTML for the text view: escaped, newlines as <br>.
QString token_html(const std::string& piece);

}  // namespace kvviz
