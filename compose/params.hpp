#pragma once
// Runtime binding of policy parameters by kvpress's names: each Params aggregate lists its fields once,
//   static constexpr auto fields = std::make_tuple(field("window_size", &Params::window_size, 1, 1 << 30), ...);
// and the spec parser / registry set them from text ("window_size=64") with type and range checks.
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "core/error.hpp"

namespace kvf {

template <class P, class T>
struct Field {
  std::string_view name;
  T P::*member;
  double min = -1e300, max = 1e300;  // inclusive range (numbers); ignored for bool and lists
};

template <class P, class T>
constexpr Field<P, T> field(std::string_view name, T P::*m, double min = -1e300, double max = 1e300) {
  return {name, m, min, max};
}

template <class P>
concept HasFields = requires { P::fields; };

// Names of P's fields, for error messages ("known parameters: ...").
template <class P>
std::vector<std::string> field_names() {
  std::vector<std::string> out;
  if constexpr (HasFields<P>) std::apply([&](const auto&... f) { (out.emplace_back(f.name), ...); }, P::fields);
  return out;
}

namespace detail {

inline double parse_number(std::string_view text, std::string_view what) {
  try {
    size_t used = 0;
    const double v = std::stod(std::string(text), &used);
    if (used != text.size()) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    throw Error(std::string(what) + ": expected a number, got '" + std::string(text) + "'");
  }
}

template <class T>
T parse_value(std::string_view text, std::string_view what, double min, double max) {
  if constexpr (std::is_same_v<T, bool>) {
    if (text == "true" || text == "True" || text == "1") return true;
    if (text == "false" || text == "False" || text == "0") return false;
    throw Error(std::string(what) + ": expected true or false, got '" + std::string(text) + "'");
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    // "[0.1, 0.5]" or "0.1;0.5"
    std::string_view s = text;
    if (!s.empty() && s.front() == '[') s.remove_prefix(1);
    if (!s.empty() && s.back() == ']') s.remove_suffix(1);
    std::vector<double> out;
    while (!s.empty()) {
      const size_t cut = s.find_first_of(",;");
      std::string_view item = s.substr(0, cut);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      const double v = parse_number(item, what);
      if (v < min || v > max)
        throw Error(std::string(what) + ": value " + std::string(item) + " is out of range [" + std::to_string(min) +
                    ", " + std::to_string(max) + "]");
      out.push_back(v);
      if (cut == std::string_view::npos) break;
      s.remove_prefix(cut + 1);
    }
    return out;
  } else {
    const double v = parse_number(text, what);
    if (std::is_integral_v<T> && v != static_cast<double>(static_cast<int64_t>(v)))
      throw Error(std::string(what) + ": expected an integer, got '" + std::string(text) + "'");
    if (v < min || v > max)
      throw Error(std::string(what) + ": value " + std::string(text) + " is out of range [" + std::to_string(min) +
                  ", " + std::to_string(max) + "]");
    return static_cast<T>(v);
  }
}

}  // namespace detail

// Sets field `name` of p from text. Returns false if P has no such field.
template <class P>
bool set_field(P& p, std::string_view name, std::string_view text, std::string_view owner) {
  bool found = false;
  if constexpr (HasFields<P>) {
    std::apply(
        [&](const auto&... f) {
          (([&] {
             if (!found && f.name == name) {
               using T = std::remove_cvref_t<decltype(p.*(f.member))>;
               p.*(f.member) = detail::parse_value<T>(text, std::string(owner) + "." + std::string(name), f.min, f.max);
               found = true;
             }
           }()),
           ...);
        },
        P::fields);
  }
  return found;
}

}  // namespace kvf
