// Scorer presses (kvpress ScorerPress subclasses): scorer x per-head top-k x token.
// One line per press: r.add<Press<...>>("shape", "description", "example spec with small parameters");
#include "kernels/typed_press.hpp"

namespace kvf {

void add_scorer_presses(PressRegistry& r) {
  (void)r;
}

}  // namespace kvf
