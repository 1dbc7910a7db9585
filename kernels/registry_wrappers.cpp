// Wrapper presses: head-wise and per-layer selectors, chunk/block granularities, post-ops.
// One line per press: r.add<Press<...>>("shape", "description", "example spec with small parameters");
#include "kernels/typed_press.hpp"

namespace kvf {

void add_wrapper_presses(PressRegistry& r) {
  (void)r;
}

}  // namespace kvf
