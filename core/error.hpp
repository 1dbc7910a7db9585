#pragma once
// kvf::Error: the one exception type for bad input and unsupported configurations.
// Messages name the file, field and value at fault so a CLI can print them as they are.
#include <stdexcept>
#include <string>

namespace kvf {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace kvf
