#include "tests/test_support.hpp"

#include "tests/test_paths.hpp"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <unistd.h>

namespace kvf::test {

std::filesystem::path fixtures_dir() {
  const char* d = std::getenv("KVF_FIXTURES_DIR");
  return d ? std::filesystem::path(d) : std::filesystem::path(kFixturesDir);
}

std::filesystem::path fixture(const std::string& relative) {
  auto p = fixtures_dir() / relative;
  if (std::filesystem::exists(p)) return p;
  // Under ctest the fixture tests run first, so a missing file is a failure, not a reason to skip.
  if (!std::getenv("KVF_SKIP_MISSING_FIXTURES"))
    throw std::runtime_error("fixture " + p.string() + " is missing: run the whole suite with ctest (the "
                             "fixtures.* tests generate it), or set KVF_SKIP_MISSING_FIXTURES=1 to skip");
  return {};
}

std::filesystem::path temp_dir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("kvf_test_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::vector<uint8_t> read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace kvf::test
