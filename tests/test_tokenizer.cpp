// Tokenizer and chat-template tests. Expected ids and renderings come from Hugging Face
// transformers/tokenizers (tests/fixtures/tokenizer_fixtures.py); bad-input cases build their inputs inline.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "core/chat_template.hpp"
#include "core/error.hpp"
#include "core/gguf.hpp"
#include "core/tokenizer.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using kvf::Tokenizer;

namespace {

json read_json(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return json::parse(f);
}

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// Compares a tokenizer with HF's ids over a corpus. `bos_matches_hf`: whether add_special=true should give HF's
// add_special_tokens=True ids (false for the SmolLM2 GGUF, whose add_bos_token=false transformers ignores).
void check_corpus(const Tokenizer& tok, const json& cases, bool bos_matches_hf) {
  REQUIRE(cases.size() > 10);
  for (const auto& c : cases) {
    const std::string text = c["text"].get<std::string>();
    INFO("text: " << json(text).dump());
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    const auto plain = tok.encode(text, false);
    CHECK(plain == ids);
    if (bos_matches_hf) CHECK(tok.encode(text, true) == c["ids_special"].get<std::vector<int32_t>>());
    else CHECK(tok.encode(text, true) == ids);
    CHECK(tok.decode(plain) == c["decoded"].get<std::string>());
  }
}

fs::path io_fixture(const std::string& rel) { return kvf::test::fixture("io/tokenizer/" + rel); }

// ---- a minimal GGUF v3 writer for metadata-only files (bad-input cases) ----
struct GgufWriter {
  std::vector<uint8_t> b;
  uint64_t n_kv = 0;
  std::vector<uint8_t> kv;
  template <class T> static void put(std::vector<uint8_t>& v, T x) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &x, sizeof(T));
    v.insert(v.end(), tmp, tmp + sizeof(T));
  }
  static void put_str(std::vector<uint8_t>& v, const std::string& s) {
    put<uint64_t>(v, s.size());
    v.insert(v.end(), s.begin(), s.end());
  }
  void key(const std::string& k, uint32_t type) { put_str(kv, k); put<uint32_t>(kv, type); ++n_kv; }
  void str(const std::string& k, const std::string& v) { key(k, 8); put_str(kv, v); }
  void u32(const std::string& k, uint32_t v) { key(k, 4); put<uint32_t>(kv, v); }
  void boolean(const std::string& k, bool v) { key(k, 7); put<uint8_t>(kv, v ? 1 : 0); }
  void strs(const std::string& k, const std::vector<std::string>& v) {
    key(k, 9); put<uint32_t>(kv, 8); put<uint64_t>(kv, v.size());
    for (const auto& s : v) put_str(kv, s);
  }
  void i32s(const std::string& k, const std::vector<int32_t>& v) {
    key(k, 9); put<uint32_t>(kv, 5); put<uint64_t>(kv, v.size());
    for (int32_t x : v) put<int32_t>(kv, x);
  }
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out{'G', 'G', 'U', 'F'};
    put<uint32_t>(out, 3);
    put<uint64_t>(out, 0);  // tensors
    put<uint64_t>(out, n_kv);
    out.insert(out.end(), kv.begin(), kv.end());
    return out;
  }
};

// A tiny byte-level vocabulary: every byte, plus "ab" from the merge "a b" and one special token.
struct TinyVocab {
  std::vector<std::string> tokens;
  TinyVocab() {
    // GPT-2 byte alphabet, in byte order.
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool direct = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = direct ? static_cast<uint32_t>(b) : next++;
      std::string s;
      if (cp < 0x80) s += static_cast<char>(cp);
      else { s += static_cast<char>(0xC0 | (cp >> 6)); s += static_cast<char>(0x80 | (cp & 0x3F)); }
      tokens.push_back(s);
    }
    tokens.push_back("ab");
    tokens.push_back("<|end|>");
  }
  json vocab_json() const {
    json v = json::object();
    for (size_t i = 0; i < tokens.size(); ++i) v[tokens[i]] = i;
    return v;
  }
  json tokenizer_json() const {
    return json{{"model", {{"type", "BPE"}, {"vocab", vocab_json()}, {"merges", json::array({"a b"})}}},
                {"added_tokens", json::array({{{"id", 257}, {"content", "<|end|>"}, {"special", true}}})},
                {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}};
  }
};

fs::path write_tokenizer_json(const std::string& tag, const std::string& text) {
  const auto dir = kvf::test::temp_dir("tok_" + tag);
  write_text(dir / "tokenizer.json", text);
  return dir / "tokenizer.json";
}

template <class F> std::string error_of(F&& f) {
  try {
    f();
  } catch (const kvf::Error& e) {
    return e.what();
  }
  return "<no kvf::Error thrown>";
}

}  // namespace

// ------------------------------------------------------------------------------------ HF parity

TEST_CASE("SmolLM2 tokenizer.json encodes like transformers", "[tokenizer]") {
  const auto tj = io_fixture("smollm2/tokenizer.json"), corpus = io_fixture("smollm2_corpus.json");
  if (tj.empty() || corpus.empty()) { WARN("skipped: tokenizer fixtures missing (run via ctest)"); return; }
  const auto tok = Tokenizer::from_tokenizer_json(tj);
  check_corpus(tok, read_json(corpus)["cases"], true);
  CHECK(tok.token_to_id("<|im_start|>") == 1);
  CHECK(tok.is_special(2));
  CHECK_FALSE(tok.chat_template().empty());  // transformers 5 saves it as chat_template.jinja
}

TEST_CASE("SmolLM2 GGUF tokenizer encodes like transformers", "[tokenizer]") {
  const auto corpus = io_fixture("smollm2_corpus.json");
  if (corpus.empty()) { WARN("skipped: tokenizer fixtures missing (run via ctest)"); return; }
  const json j = read_json(corpus);
  const fs::path gguf = j["gguf"].get<std::string>();
  if (!fs::exists(gguf)) { WARN("skipped: " << gguf << " missing"); return; }
  kvf::GgufFile f(gguf);
  const auto tok = Tokenizer::from_gguf(f);
  // The GGUF says add_bos_token=false (as SmolLM2's own tokenizer does); transformers' GGUF conversion adds
  // <|im_start|> anyway, so add_special=true is compared with HF's plain ids.
  check_corpus(tok, j["cases"], false);
  CHECK(tok.vocab_size() == 49152);
  CHECK(tok.bos_id() == 1);
  CHECK(tok.eos_id() == 2);
  CHECK(tok.decode(std::vector<int32_t>{1, 2}) == "<|im_start|><|im_end|>");
  CHECK(tok.decode(std::vector<int32_t>{1, 2}, true).empty());
  const auto ct = kvf::detect_chat_template(tok.chat_template());
  CHECK(ct.format == kvf::ChatFormat::ChatML);
  CHECK(ct.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
}

TEST_CASE("Llama-3-style and Qwen2-style tokenizers encode like transformers", "[tokenizer]") {
  for (const std::string name : {"llama3", "qwen2"}) {
    DYNAMIC_SECTION(name) {
      const auto tj = io_fixture(name + "/tokenizer.json"), corpus = io_fixture(name + "_corpus.json"),
                 gguf = io_fixture(name + ".gguf");
      if (tj.empty() || corpus.empty() || gguf.empty()) { WARN("skipped: tokenizer fixtures missing (run via ctest)"); return; }
      const json cases = read_json(corpus)["cases"];
      const auto from_json = Tokenizer::from_tokenizer_json(tj);
      check_corpus(from_json, cases, true);
      kvf::GgufFile f(gguf);  // same vocabulary with tokenizer.ggml.pre = llama-bpe / qwen2
      const auto from_gguf = Tokenizer::from_gguf(f);
      check_corpus(from_gguf, cases, true);
      CHECK(from_gguf.vocab_size() == from_json.vocab_size());
      CHECK(from_gguf.eos_id() == from_json.eos_id());
      CHECK(from_gguf.chat_template() == from_json.chat_template());
    }
  }
}

// Long contexts round-trip (speed is measured by the benchmarks, not asserted here).
TEST_CASE("a 100k-token context encodes and decodes back", "[tokenizer]") {
  const auto tj = io_fixture("smollm2/tokenizer.json"), corpus = io_fixture("smollm2_corpus.json");
  if (tj.empty() || corpus.empty()) { WARN("skipped: tokenizer fixtures missing (run via ctest)"); return; }
  const auto tok = Tokenizer::from_tokenizer_json(tj);
  const json cases = read_json(corpus)["cases"];  // a named copy: ranging over a temporary's member dangles
  std::string unit;
  for (const auto& c : cases) unit += c["text"].get<std::string>() + "\n";
  REQUIRE(!unit.empty());
  std::string text = unit;
  while (text.size() < 400000) text += unit;
  const auto ids = tok.encode(text, false);
  CHECK(ids.size() > 100000);
  CHECK(tok.decode(ids) == text);
}

// ---------------------------------------------------------------------------------- chat templates

TEST_CASE("chat templates render like transformers' apply_chat_template", "[chat]") {
  const auto p = io_fixture("chat_templates.json");
  if (p.empty()) { WARN("skipped: chat template fixtures missing (run via ctest)"); return; }
  const json j = read_json(p);
  REQUIRE(j["cases"].size() >= 20);
  for (const auto& c : j["cases"]) {
    const std::string name = c["template"].get<std::string>();
    const auto ct = kvf::detect_chat_template(j["templates"][name].get<std::string>());
    std::vector<kvf::ChatMessage> msgs;
    for (const auto& m : c["messages"]) msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    INFO(name << " add_generation_prompt=" << c["add_generation_prompt"] << " messages=" << c["messages"].dump());
    CHECK(kvf::apply_chat_template(ct, msgs, c["add_generation_prompt"].get<bool>()) == c["expected"].get<std::string>());
  }
}

TEST_CASE("chat template detection reads the default system prompt and dates", "[chat]") {
  const auto p = io_fixture("chat_templates.json");
  if (p.empty()) { WARN("skipped: chat template fixtures missing (run via ctest)"); return; }
  const json t = read_json(p)["templates"];
  auto d = [&](const char* n) { return kvf::detect_chat_template(t[n].get<std::string>()); };
  CHECK(d("qwen2.5").default_system == "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
  CHECK(d("chatml").default_system.empty());
  CHECK(d("qwen3").default_system.empty());
  CHECK(d("llama3").format == kvf::ChatFormat::Llama3);
  CHECK(d("llama3.1").date_string == "26 Jul 2024");
  CHECK(d("llama3.1").knowledge_date == "December 2023");
}

TEST_CASE("Llama 3.2-style template dates the system block with today's date", "[chat]") {
  // The part of the 3.2 template that differs from 3.1: the date comes from strftime_now.
  const std::string tmpl =
      "{{- bos_token }}{%- if not date_string is defined %}{%- if strftime_now is defined %}"
      "{%- set date_string = strftime_now(\"%d %b %Y\") %}{%- else %}{%- set date_string = \"26 Jul 2024\" %}"
      "{%- endif %}{%- endif %}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}"
      "{{- \"Cutting Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" + date_string + \"\\n\\n\" }}";
  const auto ct = kvf::detect_chat_template(tmpl);
  CHECK(ct.date_from_clock);
  const std::vector<kvf::ChatMessage> msgs{{"user", "hi"}};
  const std::string out = kvf::apply_chat_template(ct, msgs, true);
  CHECK(std::regex_search(out, std::regex("^<\\|begin_of_text\\|><\\|start_header_id\\|>system<\\|end_header_id\\|>\n\n"
                                          "Cutting Knowledge Date: December 2023\nToday Date: \\d\\d [A-Z][a-z]{2} \\d{4}\n\n"
                                          "<\\|eot_id\\|><\\|start_header_id\\|>user")));
}

TEST_CASE("unknown or empty chat templates are rejected with a hint", "[chat][bad-input]") {
  for (const std::string t : {"", "   ", "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"}) {
    const std::string e = error_of([&] { kvf::detect_chat_template(t); });
    CHECK_THAT(e, Catch::Contains("unknown chat template"));
    CHECK_THAT(e, Catch::Contains("--no-chat-template"));
  }
}

// -------------------------------------------------------------------------------------- bad input

TEST_CASE("a well-formed tiny tokenizer.json loads and round-trips", "[tokenizer][bad-input]") {
  const TinyVocab v;
  const auto tok = Tokenizer::from_tokenizer_json(write_tokenizer_json("tiny", v.tokenizer_json().dump()));
  CHECK(tok.vocab_size() == 258);
  const std::string text = "xab ab<|end|>é\n";
  CHECK(tok.decode(tok.encode(text)) == text);
  CHECK(tok.encode("<|end|>") == std::vector<int32_t>{257});
  CHECK(tok.encode("ab") == std::vector<int32_t>{256});  // the only merge applies
}

TEST_CASE("malformed tokenizer.json files give clear errors", "[tokenizer][bad-input]") {
  const TinyVocab v;
  auto load_err = [&](const std::string& tag, const std::string& text) {
    const auto p = write_tokenizer_json(tag, text);
    return error_of([&] { Tokenizer::from_tokenizer_json(p); });
  };
  CHECK_THAT(load_err("truncated", v.tokenizer_json().dump().substr(0, 100)), Catch::Contains("malformed JSON"));
  CHECK_THAT(load_err("array", "[1,2]"), Catch::Contains("not a JSON object"));
  CHECK_THAT(error_of([] { Tokenizer::from_tokenizer_json("/nonexistent/tokenizer.json"); }),
             Catch::Contains("/nonexistent/tokenizer.json"));
  {
    json j = v.tokenizer_json();
    j["model"]["merges"] = json::array({"a zz"});
    CHECK_THAT(load_err("merge", j.dump()), Catch::Contains("'a zz'"));
  }
  {
    json j = v.tokenizer_json();
    j["model"]["merges"] = json::array({json::array({"a"})});
    CHECK_THAT(load_err("merge_arr", j.dump()), Catch::Contains("merges[0]"));
  }
  {
    json j = v.tokenizer_json();
    j["model"]["type"] = "WordPiece";
    CHECK_THAT(load_err("wp", j.dump()), Catch::Contains("WordPiece"));
  }
  {
    json j = v.tokenizer_json();
    j["model"].erase("vocab");
    CHECK_THAT(load_err("novocab", j.dump()), Catch::Contains("vocab"));
  }
  {
    json j = v.tokenizer_json();
    j["model"]["vocab"]["a"] = -5;
    CHECK_THAT(load_err("negid", j.dump()), Catch::Contains("-5"));
  }
  {
    json j = v.tokenizer_json();
    j["added_tokens"][0]["id"] = -1;
    CHECK_THAT(load_err("added_neg", j.dump()), Catch::Contains("<|end|>"));
  }
  {
    json j = v.tokenizer_json();
    j["pre_tokenizer"] = {{"type", "Metaspace"}};
    CHECK_THAT(load_err("meta", j.dump()), Catch::Contains("Metaspace"));
  }
  {
    json j = v.tokenizer_json();
    j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    CHECK_THAT(load_err("badregex", j.dump()), Catch::Contains("(unclosed"));
  }
  {
    json j = v.tokenizer_json();
    j["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single", json::array({{{"SpecialToken", {{"id", "<|nope|>"}}}}})}};
    CHECK_THAT(load_err("post", j.dump()), Catch::Contains("<|nope|>"));
  }
}

TEST_CASE("decoding out-of-range ids and encoding invalid UTF-8 fail clearly", "[tokenizer][bad-input]") {
  const TinyVocab v;
  const auto tok = Tokenizer::from_tokenizer_json(write_tokenizer_json("range", v.tokenizer_json().dump()));
  CHECK_THAT(error_of([&] { tok.decode(std::vector<int32_t>{1, 258}); }), Catch::Contains("258"));
  CHECK_THAT(error_of([&] { tok.decode(std::vector<int32_t>{-3}); }), Catch::Contains("-3"));
  CHECK_THAT(error_of([&] { tok.token_text(1000); }), Catch::Contains("1000"));
  CHECK_THAT(error_of([&] { tok.encode(std::string("ok \xff\xfe")); }), Catch::Contains("UTF-8"));
  CHECK_THAT(error_of([&] { tok.encode(std::string("\xe6\x97")); }), Catch::Contains("UTF-8"));  // truncated
}

TEST_CASE("TokenizerSpec ids are range-checked", "[tokenizer][bad-input]") {
  const TinyVocab v;
  kvf::TokenizerSpec s;
  s.tokens = v.tokens;
  s.merges = {"a b"};
  s.special_ids = {999};
  CHECK_THAT(error_of([&] { Tokenizer t(s); }), Catch::Contains("999"));
  s.special_ids = {257};
  s.bos_id = 300;
  CHECK_THAT(error_of([&] { Tokenizer t(s); }), Catch::Contains("300"));
  s.bos_id = -1;
  s.merges = {"ab"};
  CHECK_THAT(error_of([&] { Tokenizer t(s); }), Catch::Contains("malformed merge"));
}

TEST_CASE("GGUF tokenizer metadata is validated", "[tokenizer][bad-input]") {
  const TinyVocab v;
  std::vector<int32_t> types(v.tokens.size(), 1);
  types.back() = 3;
  auto base = [&](const std::string& model, const std::string& pre,
                  const std::vector<std::string>& merges = {"a b"}) {
    GgufWriter w;
    w.str("general.architecture", "llama");
    w.str("tokenizer.ggml.model", model);
    w.str("tokenizer.ggml.pre", pre);
    w.strs("tokenizer.ggml.tokens", v.tokens);
    w.i32s("tokenizer.ggml.token_type", types);
    w.strs("tokenizer.ggml.merges", merges);
    return w;
  };
  const auto dir = kvf::test::temp_dir("tok_gguf");
  auto load_err = [&](const GgufWriter& w, const std::string& name) {
    const auto p = dir / name;
    kvf::test::write_bytes(p, w.bytes());
    return error_of([&] {
      kvf::GgufFile f(p);
      Tokenizer::from_gguf(f);
    });
  };
  {
    auto w = base("gpt2", "smollm");
    w.u32("tokenizer.ggml.bos_token_id", 257);
    w.boolean("tokenizer.ggml.add_bos_token", true);
    const auto p = dir / "ok.gguf";
    kvf::test::write_bytes(p, w.bytes());
    kvf::GgufFile f(p);
    const auto tok = Tokenizer::from_gguf(f);
    CHECK(tok.encode("ab<|end|>") == std::vector<int32_t>{257, 256, 257});
    CHECK(tok.is_special(257));
  }
  CHECK_THAT(load_err(base("llama", "default"), "spm.gguf"), Catch::Contains("'llama'"));
  CHECK_THAT(load_err(base("gpt2", "martian"), "pre.gguf"), Catch::Contains("'martian'"));
  {
    auto w = base("gpt2", "gpt2");
    w.u32("tokenizer.ggml.eos_token_id", 5000);
    CHECK_THAT(load_err(w, "eos.gguf"), Catch::Contains("5000"));
  }
  {
    GgufWriter w;
    w.str("tokenizer.ggml.model", "gpt2");
    w.str("tokenizer.ggml.pre", "gpt2");
    w.strs("tokenizer.ggml.tokens", v.tokens);
    w.i32s("tokenizer.ggml.token_type", {1, 1});
    w.strs("tokenizer.ggml.merges", {});
    CHECK_THAT(load_err(w, "types.gguf"), Catch::Contains("token_type"));
  }
  CHECK_THAT(load_err(base("gpt2", "qwen2", {"q zz"}), "merge.gguf"), Catch::Contains("'q zz'"));
}
