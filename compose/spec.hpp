#pragma once
// Press specs: the text that names a press at run time, with kvpress's names and parameter names.
//   spec   := name [ "(" [ item { "," item } ] ")" ]
//   item   := spec | key "=" value          (value: number, true/false, [list], or a bare word)
// e.g. "adakv(snapkv(window_size=64), alpha_safeguard=0.2)", "key_rerotation(streaming_llm(n_sink=4))".
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace kvf {

struct SpecNode {
  std::string name;
  std::vector<SpecNode> children;             // nested presses (positional)
  std::map<std::string, std::string> args;    // key=value, values kept as text
  // "adakv(snapkv)": the composition without parameters (what the registry is keyed by).
  std::string shape() const;
  std::string to_string() const;  // canonical text, parameters sorted
};

// Throws kvf::Error with the position and what was expected.
SpecNode parse_spec(std::string_view text);

}  // namespace kvf
