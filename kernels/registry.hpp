#pragma once
// The registry of instantiated presses: a Press<...> type paired with its executors, looked up from a spec.
// Only registered compositions are instantiated (kernels/registry_list.cpp), which keeps the build bounded.
//
//   auto press = press_registry().make("adakv(snapkv(window_size=64), alpha_safeguard=0.2)", 0.5);
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "compose/spec.hpp"
#include "kernels/runtime_press.hpp"

namespace kvf {

class PressRegistry {
 public:
  struct Entry {
    std::string shape;                // e.g. "adakv(snapkv)" — what specs are matched against
    std::string description;
    std::string example;              // a full spec with small parameters: docs, --help and the test suites use it
    std::vector<std::string> params;  // "policy.param" names accepted anywhere in the spec
    std::function<std::unique_ptr<RuntimePress>(const SpecNode&, double)> make;
  };

  // shape: e.g. "adakv(snapkv)"; example: a spec of that shape whose parameters suit short test sequences
  // (defaults to the shape). Defined in kernels/typed_press.hpp.
  template <class P>
  void add(std::string shape, std::string description, std::string example = {});

  // Throws kvf::Error listing the registered presses (unknown shape) or the parameters (unknown/bad value).
  std::unique_ptr<RuntimePress> make(std::string_view spec, double compression_ratio) const;
  const std::vector<Entry>& entries() const { return entries_; }
  std::string list() const;  // one line per press, for --help and errors

 private:
  std::vector<Entry> entries_;
};

// The built-in presses. registry_list.cpp builds the registry from these lists, one file per family so that
// the instantiations compile in parallel:
void add_basic_presses(PressRegistry& r);    // kernels/registry_list.cpp
void add_scorer_presses(PressRegistry& r);   // kernels/registry_scorers.cpp: scorer x topk x token
void add_wrapper_presses(PressRegistry& r);  // kernels/registry_wrappers.cpp: selectors, granularities, post-ops
const PressRegistry& press_registry();

}  // namespace kvf
