#pragma once
// Helpers for the runtime suite: fixture models and tensor comparisons.
#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "tests/test_support.hpp"

namespace kvf::test {

inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Tiny checkpoint folders written by make_model_fixtures.py (each with checkpoint/ and expected.safetensors).
inline std::vector<std::filesystem::path> tiny_model_dirs() {
  std::vector<std::filesystem::path> out;
  auto root = fixture("models");
  if (root.empty()) return out;
  for (const auto& e : std::filesystem::directory_iterator(root))
    if (std::filesystem::exists(e.path() / "checkpoint" / "config.json")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace kvf::test
