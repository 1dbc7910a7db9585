// The built-in presses. Registering a press instantiates its fused and reference executors and enrols it in
// every registry-driven test suite (tests/test_registry.cpp). One line per press.
#include "kernels/reference/basic.hpp"
#include "kernels/typed_press.hpp"

namespace kvf {

void add_basic_presses(PressRegistry& r) {
  r.add<Press<scorers::Knorm, selectors::TopK, granularity::Token>>("knorm", "smallest key norms (KnormPress)");
}

const PressRegistry& press_registry() {
  static const PressRegistry registry = [] {
    PressRegistry r;
    add_basic_presses(r);
    add_scorer_presses(r);
    add_wrapper_presses(r);
    return r;
  }();
  return registry;
}

}  // namespace kvf
