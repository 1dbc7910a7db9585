#pragma once
// Helpers shared by the test suites: where fixtures live, temp dirs, writing bytes.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace kvf::test {

// $KVF_FIXTURES_DIR, else the build tree's fixtures folder (which ctest's fixtures.* tests fill).
std::filesystem::path fixtures_dir();
// A fixture file under fixtures_dir(). Missing: throws (the test fails, saying how to generate it), unless
// KVF_SKIP_MISSING_FIXTURES is set (the sanitizer build has no Python fixtures): then an empty path, and the
// caller skips with a WARN saying why.
std::filesystem::path fixture(const std::string& relative);
// A fresh, empty temporary directory unique to this process and `tag`.
std::filesystem::path temp_dir(const std::string& tag);
void write_bytes(const std::filesystem::path& p, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_bytes(const std::filesystem::path& p);

}  // namespace kvf::test
