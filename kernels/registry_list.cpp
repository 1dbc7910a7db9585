// The built-in presses. Registering a press here instantiates its fused and reference executors and enrols it
// in every registry-driven test suite. One line per press.
#include "kernels/reference/basic.hpp"
#include "kernels/typed_press.hpp"

namespace kvf {

const PressRegistry& press_registry() {
  static const PressRegistry registry = [] {
    PressRegistry r;
    r.add<Press<scorers::Knorm, selectors::TopK, granularity::Token>>("knorm", "smallest key norms (KnormPress)");
    return r;
  }();
  return registry;
}

}  // namespace kvf
