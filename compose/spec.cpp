#include "compose/spec.hpp"

#include <cctype>

#include "core/error.hpp"

namespace kvf {
namespace {

struct Parser {
  std::string_view s;
  size_t i = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("press spec '" + std::string(s) + "': " + what + " at position " + std::to_string(i));
  }
  void skip() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(char c) {
    skip();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  std::string ident() {
    skip();
    const size_t b = i;
    while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
    if (b == i) fail("expected a name");
    return std::string(s.substr(b, i - b));
  }
  std::string value() {
    skip();
    const size_t b = i;
    if (i < s.size() && s[i] == '[') {
      while (i < s.size() && s[i] != ']') ++i;
      if (i == s.size()) fail("unterminated list");
      ++i;
    } else {
      while (i < s.size() && s[i] != ',' && s[i] != ')' && !std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    }
    if (b == i) fail("expected a value");
    return std::string(s.substr(b, i - b));
  }
  SpecNode node() {
    SpecNode n;
    n.name = ident();
    if (!eat('(')) return n;
    if (eat(')')) return n;
    do {
      const size_t save = i;
      std::string name = ident();
      if (eat('=')) {
        if (n.args.count(name)) fail("parameter '" + name + "' given twice");
        n.args[name] = value();
      } else {
        i = save;
        n.children.push_back(node());
      }
    } while (eat(','));
    if (!eat(')')) fail("expected ',' or ')'");
    return n;
  }
};

}  // namespace

SpecNode parse_spec(std::string_view text) {
  Parser p{text};
  SpecNode n = p.node();
  p.skip();
  if (p.i != text.size()) p.fail("unexpected text after the press");
  return n;
}

std::string SpecNode::shape() const {
  std::string out = name;
  if (children.empty()) return out;
  out += "(";
  for (size_t k = 0; k < children.size(); ++k) out += (k ? "," : "") + children[k].shape();
  return out + ")";
}

std::string SpecNode::to_string() const {
  std::string out = name;
  if (children.empty() && args.empty()) return out;
  out += "(";
  bool first = true;
  for (const auto& c : children) out += (first ? "" : ", ") + c.to_string(), first = false;
  for (const auto& [k, v] : args) out += (first ? "" : ", ") + k + "=" + v, first = false;
  return out + ")";
}

}  // namespace kvf
