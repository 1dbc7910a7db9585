// viz/model, headless: trace round trip, validation of bad input (never a crash), statistics, comparison and
// downsampling (also in a worker thread).
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/safetensors.hpp"
#include "viz/model/downsample.hpp"
#include "viz/model/stats.hpp"
#include "viz/model/trace.hpp"

namespace fs = std::filesystem;
using namespace kvviz;

namespace {

fs::path tmp_dir() {
  static const fs::path d = [] {
    auto p = fs::temp_directory_path() / ("kvviz_model_test_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

// L layers, H heads, S tokens; head h of layer l keeps positions where (s + l + h) % 2 == 0, score = s + 10 l + h.
Trace synthetic(int64_t L, int64_t H, int64_t S) {
  Trace t;
  t.layers = L;
  t.heads = H;
  t.seq = S;
  t.press = "snapkv(window_size=4)";
  t.compression_ratio = 0.5;
  t.model_name = "tiny";
  t.backend = "fused";
  for (int64_t l = 0; l < L; ++l)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t s = 0; s < S; ++s) {
        t.scores.push_back(static_cast<float>(s + 10 * l + h));
        t.kept.push_back((s + l + h) % 2 == 0);
      }
  for (int64_t s = 0; s < S; ++s) {
    t.token_ids.push_back(static_cast<int32_t>(100 + s));
    t.tokens.push_back(" w" + std::to_string(s));
  }
  return t;
}

// A trace file with hand-made metadata and tensors, to craft every kind of bad input.
void write_raw(const fs::path& p, const nlohmann::json& meta, int64_t L, int64_t H, int64_t S,
               const std::string& version = "1", std::vector<uint8_t> kept = {}, std::vector<float> scores = {}) {
  if (scores.empty()) scores.assign(static_cast<size_t>(L * H * S), 0.5f);
  if (kept.empty()) kept.assign(static_cast<size_t>(L * H * S), 1);
  std::vector<int32_t> ids(static_cast<size_t>(S), 7);
  kvf::write_safetensors(p,
                         {{"scores", kvf::DType::F32, {L, H, S}, scores.data()},
                          {"kept", kvf::DType::U8, {L, H, S}, kept.data()},
                          {"token_ids", kvf::DType::I32, {S}, ids.data()}},
                         {{"kvforge_trace", version}, {"trace", meta.dump()}});
}

nlohmann::json good_meta(int64_t L, int64_t H, int64_t S) {
  nlohmann::json toks = nlohmann::json::array();
  for (int64_t s = 0; s < S; ++s) toks.push_back("t");
  return {{"format", "kvforge-trace"}, {"version", 1},   {"layers", L}, {"kv_heads", H}, {"seq", S},
          {"press", "knorm"},          {"compression_ratio", 0.25}, {"tokens", toks}};
}

std::string load_error(const fs::path& p) {
  try {
    load_trace(p);
  } catch (const TraceError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("trace: save and load round trip", "[viz][trace]") {
  const auto t = synthetic(3, 2, 17);
  const auto p = tmp_dir() / "roundtrip.kvtrace";
  save_trace(p, t);
  const Trace r = load_trace(p);
  CHECK(r.layers == 3);
  CHECK(r.heads == 2);
  CHECK(r.seq == 17);
  CHECK(r.press == t.press);
  CHECK(r.compression_ratio == 0.5);
  CHECK(r.model_name == "tiny");
  CHECK(r.scores == t.scores);
  CHECK(r.kept == t.kept);
  CHECK(r.token_ids == t.token_ids);
  CHECK(r.tokens == t.tokens);
  CHECK(r.score(2, 1, 5) == 5 + 20 + 1);
  CHECK(r.is_kept(0, 0, 4));
  CHECK_FALSE(r.is_kept(0, 1, 4));
  CHECK(r.label() == "snapkv(window_size=4) @ 0.5");
}

TEST_CASE("trace: bad input gives a clear error, never a crash", "[viz][trace][bad-input]") {
  const auto d = tmp_dir();
  SECTION("missing file") { CHECK_THAT(load_error(d / "nope.kvtrace"), Catch::Contains("nope.kvtrace") && Catch::Contains("no such file")); }
  SECTION("truncated") {
    save_trace(d / "full.kvtrace", synthetic(2, 2, 50));
    const auto size = fs::file_size(d / "full.kvtrace");
    for (auto keep : {size_t{0}, size_t{4}, size_t{8}, size_t{40}, size / 2, size - 1}) {
      fs::copy_file(d / "full.kvtrace", d / "cut.kvtrace", fs::copy_options::overwrite_existing);
      fs::resize_file(d / "cut.kvtrace", keep);
      CHECK_THAT(load_error(d / "cut.kvtrace"), Catch::Contains("cannot open trace") && Catch::Contains("cut.kvtrace"));
    }
  }
  SECTION("corrupted header bytes") {
    save_trace(d / "c.kvtrace", synthetic(2, 2, 10));
    for (size_t at : {size_t{0}, size_t{7}, size_t{9}, size_t{20}, size_t{60}}) {
      std::fstream f(d / "c.kvtrace", std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(at));
      f.put('\xff');
      f.close();
      CHECK_THAT(load_error(d / "c.kvtrace"), Catch::Contains("cannot open trace"));
      save_trace(d / "c.kvtrace", synthetic(2, 2, 10));
    }
  }
  SECTION("not a trace") {
    std::vector<float> x(4, 1.0f);
    kvf::write_safetensors(d / "other.safetensors", {{"x", kvf::DType::F32, {4}, x.data()}});
    CHECK_THAT(load_error(d / "other.safetensors"), Catch::Contains("not a kvforge trace"));
  }
  SECTION("wrong version") {
    write_raw(d / "v2.kvtrace", good_meta(1, 1, 3), 1, 1, 3, "2");
    CHECK_THAT(load_error(d / "v2.kvtrace"), Catch::Contains("version '2' is not supported"));
    write_raw(d / "vx.kvtrace", good_meta(1, 1, 3), 1, 1, 3, "one");
    CHECK_THAT(load_error(d / "vx.kvtrace"), Catch::Contains("is not supported"));
  }
  SECTION("metadata that is not JSON") {
    std::vector<float> sc(3);
    std::vector<uint8_t> kp(3);
    std::vector<int32_t> ids(3);
    kvf::write_safetensors(d / "j.kvtrace",
                           {{"scores", kvf::DType::F32, {1, 1, 3}, sc.data()},
                            {"kept", kvf::DType::U8, {1, 1, 3}, kp.data()},
                            {"token_ids", kvf::DType::I32, {3}, ids.data()}},
                           {{"kvforge_trace", "1"}, {"trace", "{not json"}});
    CHECK_THAT(load_error(d / "j.kvtrace"), Catch::Contains("not valid JSON"));
  }
  SECTION("tensors disagree with the metadata") {
    write_raw(d / "shape.kvtrace", good_meta(2, 1, 3), 1, 1, 3);
    CHECK_THAT(load_error(d / "shape.kvtrace"),
               Catch::Contains("tensor 'scores' has shape (1, 1, 3) but the metadata says (2, 1, 3)"));
    auto m = good_meta(1, 1, 3);
    m["tokens"] = nlohmann::json::array({"a"});
    write_raw(d / "tok.kvtrace", m, 1, 1, 3);
    CHECK_THAT(load_error(d / "tok.kvtrace"), Catch::Contains("1 token pieces but seq = 3"));
    m = good_meta(1, 1, 3);
    m.erase("layers");
    write_raw(d / "nol.kvtrace", m, 1, 1, 3);
    CHECK_THAT(load_error(d / "nol.kvtrace"), Catch::Contains("'layers' is missing"));
    m = good_meta(1, 1, 3);
    m["compression_ratio"] = 1.5;
    write_raw(d / "cr.kvtrace", m, 1, 1, 3);
    CHECK_THAT(load_error(d / "cr.kvtrace"), Catch::Contains("outside [0, 1)"));
    m = good_meta(1, 1, 3);
    m["kv_heads"] = -4;
    write_raw(d / "neg.kvtrace", m, 1, 1, 3);
    CHECK_THAT(load_error(d / "neg.kvtrace"), Catch::Contains("out of range"));
  }
  SECTION("bad values") {
    write_raw(d / "k2.kvtrace", good_meta(1, 1, 3), 1, 1, 3, "1", {0, 2, 1});
    CHECK_THAT(load_error(d / "k2.kvtrace"), Catch::Contains("'kept' holds the value 2"));
    write_raw(d / "nan.kvtrace", good_meta(1, 1, 3), 1, 1, 3, "1", {}, {0.f, NAN, 1.f});
    CHECK_THAT(load_error(d / "nan.kvtrace"), Catch::Contains("NaN"));
  }
  SECTION("infinite scores (protected slots) are accepted") {
    write_raw(d / "inf.kvtrace", good_meta(1, 1, 3), 1, 1, 3, "1", {}, {0.f, INFINITY, 1.f});
    CHECK(load_trace(d / "inf.kvtrace").score(0, 0, 1) == INFINITY);
  }
}

TEST_CASE("stats: kept fractions and per-token values", "[viz][stats]") {
  auto t = synthetic(2, 2, 4);  // each head keeps 2 of 4
  const auto pl = kept_fraction_per_layer(t);
  REQUIRE(pl.size() == 2);
  CHECK(pl[0] == 0.5);
  t.kept[t.index(1, 0, 0)] = 1;  // layer 1 head 0 (kept {1, 3}) now keeps 3
  CHECK(kept_fraction_per_layer(t)[1] == Approx(5.0 / 8));
  const auto ph = kept_fraction_per_head(t);
  CHECK(ph[2] == 0.75);
  CHECK(ph[3] == 0.5);
  // Kept averaged over heads of layer 0: positions alternate between head 0 and head 1 -> 0.5 everywhere.
  for (double v : token_values(t, TokenValue::Kept, 0, kAll)) CHECK(v == 0.5);
  const auto k00 = token_values(t, TokenValue::Kept, 0, 0);
  CHECK(k00 == std::vector<double>{1, 0, 1, 0});
  // Scores scaled per layer to [0, 1]: layer 0 scores run 0..4 (s + h).
  const auto s00 = token_values(t, TokenValue::Score, 0, 0);
  CHECK(s00[0] == Approx(0.0));
  CHECK(s00[3] == Approx(0.75));
  t.scores[t.index(0, 0, 0)] = -INFINITY;  // clamped to the finite minimum
  CHECK(token_values(t, TokenValue::Score, 0, 0)[0] == Approx(0.0));
  const Range r = score_range(t, 1);
  CHECK(r.lo == 10);
  CHECK(r.hi == 14);
  bool trimmed = true;
  CHECK(display_range(t, 1, &trimmed).hi == 14);  // no repeated maximum: the full range
  CHECK_FALSE(trimmed);
  // A window filled with the maximum (as kvpress does) is left out of the colour range.
  for (int64_t h = 0; h < 2; ++h) t.scores[t.index(1, h, 3)] = 100.f;
  CHECK(score_range(t, 1).hi == 100);
  CHECK(display_range(t, 1, &trimmed).hi == 13);
  CHECK(trimmed);
  CHECK(token_values(t, TokenValue::Score, 1, 0)[3] == Approx(1.0));  // saturates
}

TEST_CASE("compare: Jaccard per head and difference map", "[viz][compare]") {
  auto a = synthetic(2, 2, 4);
  auto b = a;
  auto j = jaccard_per_head(a, b);
  for (double v : j) CHECK(v == 1.0);
  // Layer 0 head 0: a keeps {0, 2}; make b keep {0, 1}: |∩| = 1, |∪| = 3.
  b.kept[b.index(0, 0, 2)] = 0;
  b.kept[b.index(0, 0, 1)] = 1;
  j = jaccard_per_head(a, b);
  CHECK(j[0] == Approx(1.0 / 3));
  const auto d = difference_map(a, b, 0);
  CHECK(d[0] == kBothKept);
  CHECK(d[1] == kOnlyB);
  CHECK(d[2] == kOnlyA);
  CHECK(d[3] == kBothEvicted);
  auto c = synthetic(2, 2, 5);
  CHECK_THROWS_WITH(check_comparable(a, c), Catch::Contains("same context"));
  auto e = synthetic(3, 2, 4);
  CHECK_THROWS_WITH(jaccard_per_head(a, e), Catch::Contains("3 x 2"));
  b.token_ids[0] = 1;
  CHECK_THROWS_AS(check_comparable(a, b), TraceError);
}

TEST_CASE("downsample: bins, kept fraction, mean of finite scores", "[viz][downsample]") {
  CHECK(bin_size(100, 200) == 1);
  CHECK(bin_size(100, 10) == 10);
  CHECK(bin_size(101, 10) == 11);
  CHECK(bin_size(100, 0) == 1);
  const std::vector<uint8_t> k{1, 1, 0, 0, 1, 0, 1};  // 1 row, 7 cols -> bins of 3: {1,1,0} {0,1,0} {1}
  const Grid g = downsample(k.data(), 1, 7, 3);
  CHECK(g.bin == 3);
  REQUIRE(g.cols == 3);
  CHECK(g.at(0, 0) == Approx(2.0 / 3));
  CHECK(g.at(0, 1) == Approx(1.0 / 3));
  CHECK(g.at(0, 2) == 1.0f);
  const std::vector<float> s{1, 3, INFINITY, 5, 7, 9};  // 2 rows x 3
  const Grid m = downsample(s.data(), 2, 3, 2, Reduce::Mean);
  REQUIRE(m.cols == 2);
  CHECK(m.at(0, 0) == 2.0f);
  CHECK(std::isnan(m.at(0, 1)));  // only a non-finite value: transparent
  CHECK(m.at(1, 0) == 6.0f);
  const Grid mx = downsample(s.data(), 2, 3, 2, Reduce::Max);
  CHECK(mx.at(1, 0) == 7.0f);
  const Grid same = downsample(s.data(), 2, 3, 100, Reduce::Mean);
  CHECK(same.cols == 3);
  CHECK(same.bin == 1);
}

TEST_CASE("downsample: a long trace in a worker thread, cancellable", "[viz][downsample]") {
  auto t = std::make_shared<const Trace>(synthetic(4, 3, 10000));
  auto fut = downsample_trace_async(t, 1000);
  const TraceLod lod = fut.get();
  CHECK_FALSE(lod.cancelled);
  CHECK(lod.bin == 10);
  REQUIRE(lod.kept.size() == 4);
  REQUIRE(lod.scores.size() == 4);
  CHECK(lod.kept[0].rows == 3);
  CHECK(lod.kept[0].cols == 1000);
  CHECK(lod.kept[1].at(2, 999) == Approx(0.5));  // alternate positions kept
  // Layer 0 head 0, bin 0: scores 0..9 -> mean 4.5.
  CHECK(lod.scores[0].at(0, 0) == Approx(4.5));
  auto cancel = std::make_shared<std::atomic<bool>>(true);
  CHECK(downsample_trace_async(t, 1000, cancel).get().cancelled);
}
