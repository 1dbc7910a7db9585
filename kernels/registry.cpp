#include "kernels/registry.hpp"

#include "core/error.hpp"

namespace kvf {

std::unique_ptr<RuntimePress> PressRegistry::make(std::string_view spec, double compression_ratio) const {
  const SpecNode node = parse_spec(spec);
  const std::string shape = node.shape();
  for (const auto& e : entries_)
    if (e.shape == shape) return e.make(node, compression_ratio);
  throw Error("unknown press '" + shape + "'. Registered presses:\n" + list());
}

std::string PressRegistry::list() const {
  std::string out;
  for (const auto& e : entries_) {
    out += "  " + e.shape;
    if (!e.params.empty()) {
      out += "  [";
      for (size_t i = 0; i < e.params.size(); ++i) out += (i ? ", " : "") + e.params[i];
      out += "]";
    }
    out += "  — " + e.description + "\n";
  }
  return out;
}

}  // namespace kvf
