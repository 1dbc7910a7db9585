// safetensors reader/writer: round trips, sharded checkpoints, and corrupt files ([bad-input]).
#include <cstring>
#include <fstream>
#include <random>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/mapped_file.hpp"
#include "core/safetensors.hpp"
#include "tests/test_support.hpp"

using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path dir() {
  static const fs::path d = kvf::test::temp_dir("safetensors");
  return d;
}

// A raw file: u64 header length, the header text as given, then `data_bytes` bytes of data.
fs::path raw_file(const std::string& header, size_t data_bytes, const std::string& name = "raw.safetensors") {
  std::vector<uint8_t> b(8);
  for (int i = 0; i < 8; ++i) b[size_t(i)] = uint8_t(uint64_t(header.size()) >> (8 * i));
  b.insert(b.end(), header.begin(), header.end());
  b.resize(b.size() + data_bytes, 0xAB);
  kvf::test::write_bytes(dir() / name, b);
  return dir() / name;
}

struct Sample {
  std::vector<float> f32{1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
  std::vector<uint16_t> bf16{0x3f80, 0xc000, 0x7f80};
  std::vector<int64_t> i64{-1, 1LL << 40};
  std::vector<uint8_t> u8{1, 2, 3, 4, 5};
  std::vector<double> f64{3.141592653589793};
  std::vector<kvf::TensorToWrite> tensors() const {
    return {{"w.f32", kvf::DType::F32, {2, 3}, f32.data()},
            {"w.bf16", kvf::DType::BF16, {3}, bf16.data()},
            {"ids", kvf::DType::I64, {2, 1}, i64.data()},
            {"bytes", kvf::DType::U8, {5}, u8.data()},
            {"scalar", kvf::DType::F64, {}, f64.data()},
            {"empty", kvf::DType::F16, {0, 4}, nullptr}};
  }
};

bool parses(const std::vector<uint8_t>& bytes) {
  kvf::test::write_bytes(dir() / "fuzz.safetensors", bytes);
  try {
    kvf::SafetensorsFile f(dir() / "fuzz.safetensors");
    for (const auto& t : f.tensors()) {  // read every byte the reader vouches for (ASan checks the range)
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
    }
    return true;
  } catch (const kvf::Error&) {
    return false;
  }
}

}  // namespace

TEST_CASE("safetensors: write then read round-trips every dtype, shape and metadata", "[safetensors]") {
  Sample s;
  const auto path = dir() / "rt.safetensors";
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "héllo"}};
  kvf::write_safetensors(path, s.tensors(), meta);
  for (const auto& e : fs::directory_iterator(dir()))  // the temporary file was renamed away
    REQUIRE(e.path().filename().string().find(".tmp.") == std::string::npos);

  kvf::SafetensorsFile f(path);
  REQUIRE(f.metadata() == meta);
  REQUIRE(f.tensors().size() == s.tensors().size());
  const auto bytes = kvf::test::read_bytes(path);
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  REQUIRE((8 + hlen) % 8 == 0);  // data region aligned like the reference writer
  for (const auto& w : s.tensors()) {
    INFO(w.name);
    const auto& t = f.at(w.name);
    REQUIRE(t.dtype == w.dtype);
    REQUIRE(t.shape == w.shape);
    REQUIRE(t.nbytes == size_t(t.numel()) * kvf::dtype_size(t.dtype));
    if (t.nbytes) REQUIRE(std::memcmp(t.data, w.data, t.nbytes) == 0);
  }
  REQUIRE(f.find("nope") == nullptr);
  REQUIRE_THROWS_WITH(f.at("nope"), Contains("nope") && Contains("rt.safetensors"));

  // Overwriting an existing file works (rename replaces it).
  kvf::write_safetensors(path, {s.tensors()[0]});
  REQUIRE(kvf::SafetensorsFile(path).tensors().size() == 1);
}

TEST_CASE("safetensors: dtype names round-trip", "[safetensors]") {
  for (auto t : {kvf::DType::F64, kvf::DType::F32, kvf::DType::F16, kvf::DType::BF16, kvf::DType::I64,
                 kvf::DType::I32, kvf::DType::I16, kvf::DType::I8, kvf::DType::U8, kvf::DType::BOOL})
    REQUIRE(kvf::parse_dtype(kvf::dtype_name(t), "ctx") == t);
  REQUIRE_THROWS_WITH(kvf::parse_dtype("F8_E4M3", "somewhere"), Contains("somewhere") && Contains("F8_E4M3"));
}

TEST_CASE("safetensors: written by the Python safetensors package (fixture)", "[safetensors][fixture]") {
  const auto path = kvf::test::fixture("io/gguf/synthetic_ref.safetensors");
  if (path.empty()) {
    WARN("skipped: fixture io/gguf/synthetic_ref.safetensors missing (run via ctest)");
    return;
  }
  kvf::SafetensorsFile f(path);
  REQUIRE(!f.tensors().empty());
  for (const auto& t : f.tensors()) REQUIRE(t.dtype == kvf::DType::F32);
  // Re-write through our writer and read back identical views.
  std::vector<kvf::TensorToWrite> w;
  for (const auto& t : f.tensors()) w.push_back({t.name, t.dtype, t.shape, t.data});
  kvf::write_safetensors(dir() / "rewritten.safetensors", w);
  kvf::SafetensorsFile g(dir() / "rewritten.safetensors");
  for (const auto& t : f.tensors()) {
    const auto& u = g.at(t.name);
    REQUIRE(u.shape == t.shape);
    REQUIRE(std::memcmp(u.data, t.data, t.nbytes) == 0);
  }
}

TEST_CASE("safetensors checkpoint: single file and shards", "[safetensors]") {
  Sample s;
  const auto all = s.tensors();
  SECTION("model.safetensors") {
    const auto d = dir() / "single";
    fs::create_directories(d);
    kvf::write_safetensors(d / "model.safetensors", all);
    kvf::SafetensorsCheckpoint c(d);
    REQUIRE(c.names().size() == all.size());
    REQUIRE(c.at("w.f32").shape == std::vector<int64_t>{2, 3});
    REQUIRE(c.find("nope") == nullptr);
    REQUIRE_THROWS_WITH(c.at("nope"), Contains("nope"));
  }
  SECTION("sharded with an index") {
    const auto d = dir() / "sharded";
    fs::create_directories(d);
    kvf::write_safetensors(d / "model-00001-of-00002.safetensors", {all[0], all[1]});
    kvf::write_safetensors(d / "model-00002-of-00002.safetensors", {all[2], all[3], all[4]});
    nlohmann::json idx = {{"metadata", {{"total_size", 1}}},
                          {"weight_map",
                           {{"w.f32", "model-00001-of-00002.safetensors"},
                            {"w.bf16", "model-00001-of-00002.safetensors"},
                            {"ids", "model-00002-of-00002.safetensors"},
                            {"bytes", "model-00002-of-00002.safetensors"},
                            {"scalar", "model-00002-of-00002.safetensors"}}}};
    std::ofstream(d / "model.safetensors.index.json") << idx.dump();
    kvf::SafetensorsCheckpoint c(d);
    REQUIRE(c.names().size() == 5);
    for (const auto& w : {all[0], all[2], all[4]}) {
      const auto& t = c.at(w.name);
      REQUIRE(std::memcmp(t.data, w.data, t.nbytes) == 0);
    }
  }
}

TEST_CASE("safetensors checkpoint: bad folders and indexes", "[safetensors][bad-input]") {
  Sample s;
  const auto d = dir() / "badckpt";
  fs::remove_all(d);
  fs::create_directories(d);
  REQUIRE_THROWS_WITH(kvf::SafetensorsCheckpoint(d), Contains("model.safetensors"));
  kvf::write_safetensors(d / "shard.safetensors", {s.tensors()[0]});
  auto with_index = [&](const std::string& text) {
    std::ofstream(d / "model.safetensors.index.json") << text;
  };
  with_index(R"({"weight_map": {"w.f32": "shard.safetensors", "missing": "shard.safetensors"}})");
  REQUIRE_THROWS_WITH(kvf::SafetensorsCheckpoint(d), Contains("missing") && Contains("shard.safetensors"));
  with_index(R"({"weight_map": {"w.f32": "../shard.safetensors"}})");
  REQUIRE_THROWS_WITH(kvf::SafetensorsCheckpoint(d), Contains("../shard.safetensors"));
  with_index(R"({"weight_map": {"w.f32": "absent.safetensors"}})");
  REQUIRE_THROWS_WITH(kvf::SafetensorsCheckpoint(d), Contains("absent.safetensors"));
  with_index(R"({"weight_map": 3})");
  REQUIRE_THROWS_WITH(kvf::SafetensorsCheckpoint(d), Contains("weight_map"));
  with_index("{not json");
  REQUIRE_THROWS_WITH(kvf::SafetensorsCheckpoint(d), Contains("index.json"));
}

TEST_CASE("safetensors: corrupt headers are rejected with the tensor and value named", "[safetensors][bad-input]") {
  auto fails = [](const std::string& header, size_t data, const std::string& what) {
    INFO(header);
    REQUIRE_THROWS_WITH(kvf::SafetensorsFile(raw_file(header, data)), Contains(what) && Contains("raw.safetensors"));
  };
  const std::string ok_entry = R"("t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  REQUIRE(kvf::SafetensorsFile(raw_file("{" + ok_entry + "}", 8)).at("t").numel() == 2);

  SECTION("files shorter than 8 bytes") {
    for (size_t n = 0; n < 8; ++n) {
      kvf::test::write_bytes(dir() / "short.safetensors", std::vector<uint8_t>(n, 0));
      REQUIRE_THROWS_WITH(kvf::SafetensorsFile(dir() / "short.safetensors"), Contains("short.safetensors"));
    }
  }
  SECTION("header length past the end / over the limit") {
    std::vector<uint8_t> b(16, 0);
    b[0] = 100;
    kvf::test::write_bytes(dir() / "len.safetensors", b);
    REQUIRE_THROWS_WITH(kvf::SafetensorsFile(dir() / "len.safetensors"), Contains("header length 100"));
    b[0] = 0;
    b[4] = 1;  // 2^32
    kvf::test::write_bytes(dir() / "len.safetensors", b);
    REQUIRE_THROWS_WITH(kvf::SafetensorsFile(dir() / "len.safetensors"), Contains("100 MB"));
  }
  SECTION("not JSON, not an object, too deep") {
    fails("{\"t\": ", 0, "not valid JSON");
    fails("[1, 2]", 0, "not a JSON object");
    fails(std::string(10000, '[') + std::string(10000, ']'), 0, "nested deeper");
    fails("{\"t\": 5}", 0, "'t'");
  }
  SECTION("missing fields") {
    fails(R"({"t": {"shape": [2], "data_offsets": [0, 8]}})", 8, "'t': missing 'dtype'");
    fails(R"({"t": {"dtype": "F32", "data_offsets": [0, 8]}})", 8, "'t': missing 'shape'");
    fails(R"({"t": {"dtype": "F32", "shape": [2]}})", 8, "'t': missing 'data_offsets'");
  }
  SECTION("bad dtype and shape") {
    fails(R"({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}})", 8, "unknown dtype 'Q4'");
    fails(R"({"t": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}})", 8, "'t': dtype");
    fails(R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8, "negative dimension -2");
    fails(R"({"t": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8, "'t': shape");
    fails(R"({"t": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", 8, "'t': shape");
    fails(R"({"t": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8, "overflow");
    fails(R"({"t": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 8]}})", 8, "too large");
  }
  SECTION("bad data_offsets") {
    fails(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", 8, "'t': data_offsets");
    fails(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [-1, 7]}})", 8, "'t': data_offsets");
    fails(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": ["0", 8]}})", 8, "'t': data_offsets");
    fails(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8, "begin 8 > end 0");
    fails(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 7, "end 8 is past the data region");
    fails(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", 16, "needs 8");
    fails(R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 18446744073709551615]}})", 8, "past the data");
  }
  SECTION("overlap") {
    fails(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12, "overlap");
  }
  SECTION("metadata must map strings to strings") {
    fails(R"({"__metadata__": {"k": 1}})", 0, "__metadata__");
    fails(R"({"__metadata__": ["k"]})", 0, "__metadata__");
  }
}

TEST_CASE("safetensors: every truncation and random corruption is handled", "[safetensors][bad-input]") {
  Sample s;
  kvf::write_safetensors(dir() / "full.safetensors", s.tensors(), {{"k", "v"}});
  const auto full = kvf::test::read_bytes(dir() / "full.safetensors");
  REQUIRE(parses(full));
  // The last non-empty tensor ("scalar") ends at EOF, so every cut loses data or header.
  for (size_t n = 0; n < full.size(); ++n) {
    INFO("truncated to " << n);
    REQUIRE_FALSE(parses(std::vector<uint8_t>(full.begin(), full.begin() + long(n))));
  }
  std::mt19937 rng(99);
  int rejected = 0;
  for (size_t pos = 0; pos < full.size(); ++pos)
    for (uint8_t v : {uint8_t(0xff), uint8_t(1), uint8_t(rng() | 1)}) {
      auto bad = full;
      bad[pos] ^= v;
      rejected += !parses(bad);
    }
  REQUIRE(rejected > 0);
}

TEST_CASE("safetensors writer rejects bad input", "[safetensors][bad-input]") {
  float x[2] = {1, 2};
  const auto p = dir() / "w.safetensors";
  REQUIRE_THROWS_WITH(kvf::write_safetensors(p, {{"a", kvf::DType::F32, {-1}, x}}), Contains("'a'"));
  REQUIRE_THROWS_WITH(kvf::write_safetensors(p, {{"a", kvf::DType::F32, {2}, x}, {"a", kvf::DType::F32, {2}, x}}),
                      Contains("duplicate"));
  REQUIRE_THROWS_WITH(kvf::write_safetensors(p, {{"a", kvf::DType::F32, {2}, nullptr}}), Contains("null"));
  REQUIRE_THROWS_AS(kvf::write_safetensors(dir() / "no_such_dir" / "x.safetensors", {{"a", kvf::DType::F32, {2}, x}}),
                    kvf::Error);
  REQUIRE_FALSE(fs::exists(p));
}

TEST_CASE("MappedFile: errors name the file, and empty files map", "[safetensors][bad-input]") {
  REQUIRE_THROWS_WITH(kvf::MappedFile(dir() / "does_not_exist"), Contains("does_not_exist") && Contains("No such file"));
  REQUIRE_THROWS_WITH(kvf::MappedFile(dir()), Contains("not a regular file"));
  kvf::test::write_bytes(dir() / "empty", {});
  kvf::MappedFile m(dir() / "empty");
  REQUIRE(m.size() == 0);
  kvf::test::write_bytes(dir() / "three", {1, 2, 3});
  kvf::MappedFile a(dir() / "three");
  kvf::MappedFile b(std::move(a));
  REQUIRE(b.size() == 3);
  REQUIRE(b.data()[2] == 3);
  REQUIRE(a.data() == nullptr);
  a = std::move(b);
  REQUIRE(a.data()[0] == 1);
}
