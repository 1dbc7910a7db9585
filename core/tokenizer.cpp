#include "core/tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#if KVF_HAVE_ICU
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <queue>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/gguf.hpp"

namespace kvf {
namespace {

// HF tokenizers' ByteLevel regex (GPT-2).
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 tokenizer.json Split pattern.
constexpr const char* kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2 tokenizer.json Split pattern.
constexpr const char* kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// llama.cpp's pre-tokenizer names (llama-vocab.cpp) -> regex sequences.
std::vector<std::string> regexes_for_pre(const std::string& pre, const std::string& src) {
  const std::string gpt2_llamacpp = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
  // SmolLM2: llama.cpp isolates every \p{N} first, but transformers' GGUF loader (GGUFGPTConverter) builds a plain
  // ByteLevel pre-tokenizer. We follow transformers, the reference kvpress runs on; the two differ only on
  // non-ASCII numerals such as "²" or "½" (the vocabulary has no merges between ASCII digits).
  if (pre == "smollm") return {kGpt2Regex};
  if (pre == "starcoder" || pre == "refact" || pre == "codeshell" || pre == "command-r")
    return {R"(\p{N})", gpt2_llamacpp};
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3") return {kLlama3Regex};
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") return {kQwen2Regex};  // (NFC: see from_gguf)
  if (pre == "gpt2" || pre == "gpt-2" || pre == "phi-2") return {gpt2_llamacpp};
  if (pre == "default")
    return {R"([\p{P}\$\+<=>\^~\|]+)", gpt2_llamacpp, R"(\p{N}+)", "[0-9][0-9][0-9]"};
  throw Error(src + ": unsupported tokenizer.ggml.pre '" + pre +
              "' (supported: smollm, llama-bpe/llama3, qwen2, gpt2, default)");
}

// GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards.
std::array<uint32_t, 256> bytes_to_unicode() {
  std::array<uint32_t, 256> m{};
  std::array<bool, 256> direct{};
  for (int b = 0; b < 256; ++b)
    direct[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b) m[b] = direct[b] ? static_cast<uint32_t>(b) : 256 + n++;
  return m;
}

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes one UTF-8 code point at s[i]; returns its length, 0 if invalid.
size_t utf8_next(std::string_view s, size_t i, uint32_t& cp) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  // Overlong forms, surrogates and out-of-range values are invalid.
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Oniguruma (HF tokenizers) counts U+0085 as \s; PCRE2's UCP \s does not. Rewrite \s/\S to include it.
std::string onig_compatible(std::string_view pat) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pat.size(); ++i) {
    const char c = pat[i];
    if (c == '\\' && i + 1 < pat.size()) {
      const char n = pat[i + 1];
      ++i;
      if (n == 's') out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      else if (n == 'S' && !in_class) out += "[^\\s\\x{85}]";
      else { out += c; out += n; }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is literal.
      if (i + 1 < pat.size() && pat[i + 1] == '^') { out += '^'; ++i; }
      if (i + 1 < pat.size() && pat[i + 1] == ']') { out += ']'; ++i; }
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

struct Regex {
  pcre2_code* code = nullptr;
  std::string pattern;
  Regex(const std::string& pat, const std::string& src) : pattern(pat) {
    int err = 0;
    PCRE2_SIZE off = 0;
    const std::string p = onig_compatible(pat);
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(), PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!code) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof(buf));
      throw Error(src + ": cannot compile pre-tokenizer regex '" + pat + "' at offset " + std::to_string(off) + ": " +
                  reinterpret_cast<const char*>(buf));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort; the interpreter is the fallback
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code); }
};

struct MatchData {
  pcre2_match_data* md;
  explicit MatchData(const pcre2_code* code) : md(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(md); }
};

// Unicode NFC (HF's NFC normalizer, Qwen2) through ICU. ICU is optional (CMake KVF_ICU): a build without it
// refuses, when it is built, any tokenizer that normalises to NFC (require_nfc), rather than encode differently.
#if KVF_HAVE_ICU
void require_nfc(const std::string&) {}

std::string nfc(std::string_view s, const std::string& src) {
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* n = unorm2_getNFCInstance(&err);
  if (U_FAILURE(err)) throw Error(src + ": ICU NFC normaliser unavailable: " + u_errorName(err));
  std::vector<UChar> u16(s.size() + 1);
  int32_t len16 = 0;
  u_strFromUTF8(u16.data(), static_cast<int32_t>(u16.size()), &len16, s.data(), static_cast<int32_t>(s.size()), &err);
  if (U_FAILURE(err)) throw Error(src + ": text is not valid UTF-8 for NFC: " + u_errorName(err));
  if (unorm2_isNormalized(n, u16.data(), len16, &err) && U_SUCCESS(err)) return std::string(s);
  err = U_ZERO_ERROR;
  std::vector<UChar> out(static_cast<size_t>(len16) * 3 + 16);
  const int32_t olen = unorm2_normalize(n, u16.data(), len16, out.data(), static_cast<int32_t>(out.size()), &err);
  if (U_FAILURE(err)) throw Error(src + ": NFC normalisation failed: " + u_errorName(err));
  std::string res(static_cast<size_t>(olen) * 3 + 4, '\0');
  int32_t len8 = 0;
  u_strToUTF8(res.data(), static_cast<int32_t>(res.size()), &len8, out.data(), olen, &err);
  if (U_FAILURE(err)) throw Error(src + ": NFC re-encoding failed: " + u_errorName(err));
  res.resize(static_cast<size_t>(len8));
  return res;
}
#else
[[noreturn]] void require_nfc(const std::string& src) {
  throw Error(src + ": this tokenizer normalises text to Unicode NFC (Qwen2-style), which needs ICU, and this "
              "kvforge was built without it (CMake KVF_ICU=OFF, or ICU's icu-uc not found): install ICU "
              "(apt-get install libicu-dev) and reconfigure with KVF_ICU=AUTO or ON");
}

std::string nfc(std::string_view, const std::string& src) { require_nfc(src); }
#endif

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool lstrip = false, rstrip = false;
};

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("cannot read " + p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

struct Tokenizer::Impl {
  TokenizerSpec spec;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> decoded;  // id -> bytes
  std::vector<uint8_t> special;      // 1 = special (skipped by decode(skip_special))
  std::vector<uint8_t> added;        // 1 = matched verbatim, decoded as raw text
  std::vector<bool> present;         // false for holes in the id space
  std::array<int32_t, 256> byte_id{};  // id of each single byte-level character token (-1 if none)
  std::array<std::string, 256> byte_char;
  // (left id, right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;
  std::vector<std::unique_ptr<Regex>> regexes;
  std::vector<AddedToken> added_tokens;  // sorted by length, longest first
  std::array<std::vector<size_t>, 256> added_by_first;  // first byte -> indices into added_tokens
  bool ignore_merges = false;
  int32_t unk_id = -1;
  std::string src;

  void build();
  void bpe(std::string_view word, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
};

void Tokenizer::Impl::build() {
  src = spec.source.empty() ? "tokenizer" : spec.source;
  unk_id = spec.unk_id;
  ignore_merges = spec.ignore_merges;
  const auto& toks = spec.tokens;
  const auto n = static_cast<int32_t>(toks.size());
  if (n == 0) throw Error(src + ": empty vocabulary");
  auto check_id = [&](int64_t id, const std::string& what) {
    if (id < -1 || id >= n)
      throw Error(src + ": " + what + " id " + std::to_string(id) + " out of range (vocabulary size " +
                  std::to_string(n) + ")");
  };
  check_id(spec.bos_id, "bos");
  check_id(spec.eos_id, "eos");
  check_id(spec.pad_id, "pad");
  check_id(unk_id, "unk");
  if (spec.add_bos && spec.bos_id < 0) throw Error(src + ": add_bos is set but there is no BOS token");

  special.assign(n, 0);
  added.assign(n, 0);
  present.assign(n, false);
  vocab.reserve(toks.size() * 2);
  for (int32_t i = 0; i < n; ++i) {
    if (toks[i].empty()) continue;
    present[i] = true;
    vocab.emplace(toks[i], i);  // first id wins on duplicates
  }
  auto mark = [&](const std::vector<int32_t>& list, const char* what) {
    for (int32_t id : list) {
      check_id(id, what);
      if (id < 0 || !present[id]) throw Error(src + ": " + what + " id " + std::to_string(id) + " has no token text");
      added[id] = 1;
    }
  };
  mark(spec.special_ids, "special token");
  mark(spec.added_ids, "added token");
  mark(spec.lstrip_ids, "added token");
  mark(spec.rstrip_ids, "added token");
  for (int32_t id : spec.special_ids) special[id] = 1;

  // Verbatim-matched tokens, longest first so the scan picks the longest match.
  auto in = [](const std::vector<int32_t>& v, int32_t id) { return std::find(v.begin(), v.end(), id) != v.end(); };
  for (int32_t i = 0; i < n; ++i)
    if (added[i]) added_tokens.push_back({toks[i], i, in(spec.lstrip_ids, i), in(spec.rstrip_ids, i)});
  std::stable_sort(added_tokens.begin(), added_tokens.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (size_t k = 0; k < added_tokens.size(); ++k)
    added_by_first[static_cast<unsigned char>(added_tokens[k].content[0])].push_back(k);

  // Byte-level alphabet.
  const auto b2u = bytes_to_unicode();
  std::unordered_map<uint32_t, uint8_t> u2b;
  for (int b = 0; b < 256; ++b) {
    append_utf8(byte_char[b], b2u[b]);
    u2b[b2u[b]] = static_cast<uint8_t>(b);
    auto it = vocab.find(byte_char[b]);
    byte_id[b] = it == vocab.end() ? -1 : it->second;
  }

  // Decoded bytes of every token: added tokens are raw text; others map back through the alphabet. A token
  // with a character outside the alphabet decodes to its raw UTF-8, as HF's ByteLevel decoder does.
  decoded.resize(n);
  for (int32_t i = 0; i < n; ++i) {
    const std::string& t = toks[i];
    if (added[i]) { decoded[i] = t; continue; }
    std::string out;
    bool ok = true;
    for (size_t p = 0; p < t.size();) {
      uint32_t cp = 0;
      const size_t len = utf8_next(t, p, cp);
      if (len == 0) { ok = false; break; }
      auto it = u2b.find(cp);
      if (it == u2b.end()) { ok = false; break; }
      out += static_cast<char>(it->second);
      p += len;
    }
    decoded[i] = ok ? std::move(out) : t;
  }

  // Merges: "left right" with the result in the vocabulary.
  merges.reserve(spec.merges.size() * 2);
  for (size_t r = 0; r < spec.merges.size(); ++r) {
    const std::string& m = spec.merges[r];
    // A space inside a token is impossible in the byte-level alphabet, so the first space separates.
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos || sp + 1 >= m.size())
      throw Error(src + ": malformed merge #" + std::to_string(r) + " '" + m + "' (expected 'left right')");
    const std::string l = m.substr(0, sp), rt = m.substr(sp + 1);
    auto li = vocab.find(l), ri = vocab.find(rt), mi = vocab.find(l + rt);
    if (li == vocab.end() || ri == vocab.end() || mi == vocab.end())
      throw Error(src + ": merge #" + std::to_string(r) + " '" + m + "' refers to a token not in the vocabulary");
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(li->second)) << 32) |
                         static_cast<uint32_t>(ri->second);
    merges.emplace(key, std::make_pair(static_cast<int32_t>(r), mi->second));  // first (lowest rank) wins
  }

  for (const auto& p : spec.pre_split_regexes) regexes.push_back(std::make_unique<Regex>(p, src));
}

// Merge by rank over a linked list of symbols; a min-heap of candidate pairs keyed by (rank, position) gives
// HF's order (lowest rank first, leftmost among equals). Stale heap entries are skipped lazily.
void Tokenizer::Impl::bpe(std::string_view word, std::vector<int32_t>& out) const {
  if (ignore_merges) {
    std::string bl;
    for (unsigned char c : word) bl += byte_char[c];
    if (auto it = vocab.find(bl); it != vocab.end()) { out.push_back(it->second); return; }
  }
  const size_t n = word.size();
  if (n == 1) {
    const int32_t id = byte_id[static_cast<unsigned char>(word[0])];
    if (id >= 0) out.push_back(id);
    else if (unk_id >= 0) out.push_back(unk_id);
    return;
  }
  struct Sym { int32_t id; int32_t prev, next; bool alive; };
  std::vector<Sym> s(n);
  for (size_t i = 0; i < n; ++i) {
    int32_t id = byte_id[static_cast<unsigned char>(word[i])];
    if (id < 0) id = unk_id;  // tiny vocabularies without the full byte alphabet
    s[i] = {id, static_cast<int32_t>(i) - 1, i + 1 < n ? static_cast<int32_t>(i + 1) : -1, true};
  }
  struct Cand { int32_t rank, pos, right, new_id; int32_t lid, rid; };
  auto cmp = [](const Cand& a, const Cand& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
  std::priority_queue<Cand, std::vector<Cand>, decltype(cmp)> heap(cmp);
  auto push = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0 || s[l].id < 0 || s[r].id < 0) return;
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(s[l].id)) << 32) | static_cast<uint32_t>(s[r].id);
    auto it = merges.find(key);
    if (it != merges.end()) heap.push({it->second.first, l, r, it->second.second, s[l].id, s[r].id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i), static_cast<int32_t>(i + 1));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = s[c.pos];
    if (!l.alive || l.next != c.right || l.id != c.lid || s[c.right].id != c.rid) continue;  // stale
    Sym& r = s[c.right];
    l.id = c.new_id;
    r.alive = false;
    l.next = r.next;
    if (r.next >= 0) s[r.next].prev = c.pos;
    push(l.prev, c.pos);
    push(c.pos, l.next);
  }
  for (int32_t i = 0; i >= 0; i = s[i].next)
    if (s[i].id >= 0) out.push_back(s[i].id);
}

void Tokenizer::Impl::encode_plain(std::string_view raw, std::vector<int32_t>& out) const {
  if (raw.empty()) return;
  std::string normalized;
  if (spec.nfc) normalized = nfc(raw, src);
  const std::string_view text = spec.nfc ? std::string_view(normalized) : raw;
  // Pieces after each regex stage (HF Split, behavior Isolated: matches and the gaps between them).
  std::vector<std::string_view> pieces{text}, next;
  for (const auto& re : regexes) {
    MatchData md(re->code);
    next.clear();
    for (std::string_view p : pieces) {
      size_t pos = 0, last = 0;
      const auto* subj = reinterpret_cast<PCRE2_SPTR>(p.data());
      while (pos < p.size()) {
        const int rc = pcre2_match(re->code, subj, p.size(), pos, PCRE2_NO_UTF_CHECK, md.md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) throw Error(src + ": regex match failed (pcre2 error " + std::to_string(rc) + ")");
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.md);
        const size_t b = ov[0], e = ov[1];
        if (b > last) next.push_back(p.substr(last, b - last));
        if (e > b) {
          next.push_back(p.substr(b, e - b));
          last = pos = e;
        } else {
          // Empty match: step over one code point.
          pos = b + 1;
          while (pos < p.size() && (static_cast<unsigned char>(p[pos]) & 0xC0) == 0x80) ++pos;
        }
      }
      if (last < p.size()) next.push_back(p.substr(last));
    }
    pieces.swap(next);
  }
  for (std::string_view w : pieces) bpe(w, out);
}

Tokenizer::Tokenizer(TokenizerSpec spec) : impl_(std::make_unique<Impl>()) {
  impl_->spec = std::move(spec);
  impl_->build();  // its own validation errors first
  if (impl_->spec.nfc) require_nfc(impl_->spec.source.empty() ? "tokenizer" : impl_->spec.source);
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& m = *impl_;
  // Validate once so PCRE2 can skip its own UTF-8 checks.
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    const size_t len = utf8_next(text, i, cp);
    if (len == 0) throw Error("tokenizer: input text is not valid UTF-8 (byte offset " + std::to_string(i) + ")");
    i += len;
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && m.spec.add_bos) out.push_back(m.spec.bos_id);
  // Split out added tokens: leftmost match, longest at that position.
  size_t seg = 0;
  for (size_t i = 0; i < text.size();) {
    const auto& cands = m.added_by_first[static_cast<unsigned char>(text[i])];
    const AddedToken* hit = nullptr;
    for (size_t k : cands) {
      const auto& t = m.added_tokens[k];
      if (text.size() - i >= t.content.size() && std::memcmp(text.data() + i, t.content.data(), t.content.size()) == 0) {
        hit = &t;
        break;
      }
    }
    if (!hit) { ++i; continue; }
    size_t before_end = i;
    if (hit->lstrip) while (before_end > seg && is_ws(text[before_end - 1])) --before_end;
    m.encode_plain(text.substr(seg, before_end - seg), out);
    out.push_back(hit->id);
    i += hit->content.size();
    if (hit->rstrip) while (i < text.size() && is_ws(text[i])) ++i;
    seg = i;
  }
  m.encode_plain(text.substr(seg), out);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int32_t>(impl_->decoded.size()) || !impl_->present[id])
      throw Error("tokenizer: cannot decode token id " + std::to_string(id) + " (vocabulary size " +
                  std::to_string(impl_->decoded.size()) + ")");
    if (skip_special && impl_->special[id]) continue;
    out += impl_->decoded[id];
  }
  return out;
}

std::string Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= static_cast<int32_t>(impl_->decoded.size()) || !impl_->present[id])
    throw Error("tokenizer: token id " + std::to_string(id) + " out of range (vocabulary size " +
                std::to_string(impl_->decoded.size()) + ")");
  return impl_->decoded[id];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->vocab.find(std::string(token));
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < static_cast<int32_t>(impl_->special.size()) && impl_->special[id];
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->spec.tokens.size()); }
int32_t Tokenizer::bos_id() const { return impl_->spec.bos_id; }
int32_t Tokenizer::eos_id() const { return impl_->spec.eos_id; }
const std::string& Tokenizer::chat_template() const { return impl_->spec.chat_template; }

// ---------------------------------------------------------------------------------------------- GGUF

Tokenizer Tokenizer::from_gguf(const GgufFile& f) {
  const std::string src = f.path().string();
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw Error(src + ": tokenizer.ggml.model is '" + model + "'; only byte-level BPE ('gpt2') is supported");
  TokenizerSpec spec;
  spec.source = src;
  spec.tokens = f.get_string_array("tokenizer.ggml.tokens");
  spec.merges = f.get_string_array("tokenizer.ggml.merges");
  const auto n = static_cast<int64_t>(spec.tokens.size());
  if (f.has("tokenizer.ggml.token_type")) {
    const auto types = f.get_int_array("tokenizer.ggml.token_type");
    if (static_cast<int64_t>(types.size()) != n)
      throw Error(src + ": tokenizer.ggml.token_type has " + std::to_string(types.size()) + " entries but " +
                  "tokenizer.ggml.tokens has " + std::to_string(n));
    for (int64_t i = 0; i < n; ++i) {
      if (spec.tokens[i].empty()) continue;
      if (types[i] == 3) spec.special_ids.push_back(static_cast<int32_t>(i));     // control
      else if (types[i] == 4) spec.added_ids.push_back(static_cast<int32_t>(i));  // user-defined
    }
  }
  // llama.cpp treats a missing name as "default".
  const std::string pre = f.find_string("tokenizer.ggml.pre").value_or("default");
  spec.pre_split_regexes = regexes_for_pre(pre, src);
  spec.nfc = pre == "qwen2" || pre == "deepseek-r1-qwen";  // Qwen2's tokenizer.json normalizes to NFC
  auto id_of = [&](const char* key) -> int32_t {
    auto v = f.find_int(key);
    if (!v) return -1;
    if (*v < 0 || *v >= n)
      throw Error(src + ": " + key + " = " + std::to_string(*v) + " is out of range (vocabulary size " +
                  std::to_string(n) + ")");
    return static_cast<int32_t>(*v);
  };
  spec.bos_id = id_of("tokenizer.ggml.bos_token_id");
  spec.eos_id = id_of("tokenizer.ggml.eos_token_id");
  spec.pad_id = id_of("tokenizer.ggml.padding_token_id");
  spec.unk_id = id_of("tokenizer.ggml.unknown_token_id");
  if (f.has("tokenizer.ggml.add_bos_token")) spec.add_bos = f.get_bool("tokenizer.ggml.add_bos_token");
  spec.add_bos = spec.add_bos && spec.bos_id >= 0;
  spec.chat_template = f.find_string("tokenizer.chat_template").value_or("");
  return Tokenizer(std::move(spec));
}

// ------------------------------------------------------------------------------------ tokenizer.json

namespace {
using nlohmann::json;

const json& need(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw Error(where + ": missing field '" + key + "'");
  return *it;
}

// Regex sequence and digit handling from one HF pre-tokenizer node (recursing into Sequence).
void collect_pre(const json& pt, std::vector<std::string>& out, const std::string& src) {
  if (pt.is_null()) return;
  if (!pt.is_object()) throw Error(src + ": pre_tokenizer is not an object");
  const std::string type = pt.value("type", "");
  if (type == "Sequence") {
    const json& seq = need(pt, "pretokenizers", src + ": pre_tokenizer Sequence");
    if (!seq.is_array()) throw Error(src + ": pre_tokenizer.pretokenizers is not an array");
    for (const auto& p : seq) collect_pre(p, out, src);
  } else if (type == "ByteLevel") {
    if (pt.value("add_prefix_space", false))
      throw Error(src + ": ByteLevel pre_tokenizer with add_prefix_space=true is not supported");
    if (pt.value("use_regex", true)) out.emplace_back(kGpt2Regex);
  } else if (type == "Split") {
    const json& pat = need(pt, "pattern", src + ": Split pre_tokenizer");
    const std::string behavior = pt.value("behavior", "");
    if (behavior != "Isolated" || pt.value("invert", false))
      throw Error(src + ": Split pre_tokenizer with behavior '" + behavior +
                  "' (or invert=true) is not supported; only Isolated");
    if (pat.contains("Regex") && pat["Regex"].is_string()) {
      out.push_back(pat["Regex"].get<std::string>());
    } else if (pat.contains("String") && pat["String"].is_string()) {
      // Literal string: quote it for PCRE2.
      out.push_back("\\Q" + pat["String"].get<std::string>() + "\\E");
    } else {
      throw Error(src + ": Split pre_tokenizer pattern must be {\"Regex\": ...} or {\"String\": ...}");
    }
  } else if (type == "Digits") {
    out.emplace_back(pt.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
  } else {
    throw Error(src + ": unsupported pre_tokenizer type '" + type + "'");
  }
}

// BOS from a TemplateProcessing post-processor: the special token before $A in "single".
void collect_post(const json& pp, TokenizerSpec& spec, const std::unordered_map<std::string, int32_t>& ids,
                  const std::string& src) {
  if (!pp.is_object()) return;
  const std::string type = pp.value("type", "");
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const auto& p : pp["processors"]) collect_post(p, spec, ids, src);
  } else if (type == "TemplateProcessing" && pp.contains("single") && pp["single"].is_array()) {
    const auto& single = pp["single"];
    if (!single.empty() && single[0].contains("SpecialToken")) {
      const std::string tok = single[0]["SpecialToken"].value("id", "");
      auto it = ids.find(tok);
      if (it == ids.end()) throw Error(src + ": post_processor special token '" + tok + "' is not in the vocabulary");
      spec.bos_id = it->second;
      spec.add_bos = true;
    }
  }
}

// tokenizer_config.json's bos_token/eos_token: a string or {"content": ...}.
std::optional<std::string> token_field(const json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return std::nullopt;
}
}  // namespace

Tokenizer Tokenizer::from_tokenizer_json(const std::filesystem::path& path) {
  const std::string src = path.string();
  json j;
  try {
    j = json::parse(read_text(path));
  } catch (const json::exception& e) {
    throw Error(src + ": malformed JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(src + ": not a JSON object");
  const json& model = need(j, "model", src);
  if (!model.is_object()) throw Error(src + ": 'model' is not an object");
  const std::string mtype = model.value("type", "BPE");
  if (mtype != "BPE") throw Error(src + ": model.type is '" + mtype + "'; only BPE is supported");

  TokenizerSpec spec;
  std::unordered_map<std::string, int32_t> ids;
  const json& vocab = need(model, "vocab", src + ": model");
  if (!vocab.is_object()) throw Error(src + ": model.vocab is not an object");
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) throw Error(src + ": model.vocab['" + it.key() + "'] is not an integer");
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id > (1 << 24)) throw Error(src + ": model.vocab['" + it.key() + "'] = " + std::to_string(id) + " is out of range");
    max_id = std::max(max_id, id);
    ids[it.key()] = static_cast<int32_t>(id);
  }
  std::vector<AddedToken> added;
  std::vector<int32_t> special;
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    const json& at = j["added_tokens"];
    if (!at.is_array()) throw Error(src + ": added_tokens is not an array");
    for (const auto& a : at) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        throw Error(src + ": added_tokens entry without integer 'id' and string 'content': " + a.dump());
      const int64_t id = a["id"].get<int64_t>();
      const std::string content = a["content"].get<std::string>();
      if (id < 0 || id > (1 << 24) || content.empty())
        throw Error(src + ": added token '" + content + "' has invalid id " + std::to_string(id));
      max_id = std::max(max_id, id);
      ids[content] = static_cast<int32_t>(id);
      added.push_back({content, static_cast<int32_t>(id), a.value("lstrip", false), a.value("rstrip", false)});
      if (a.value("special", false)) special.push_back(static_cast<int32_t>(id));
    }
  }
  spec.tokens.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [t, id] : ids) {
    if (!spec.tokens[id].empty() && spec.tokens[id] != t) {
      // An added token overriding a vocab entry with the same id keeps the added content.
      bool is_added = std::any_of(added.begin(), added.end(), [&](const AddedToken& a) { return a.id == id && a.content == t; });
      if (!is_added) continue;
    }
    spec.tokens[id] = t;
  }
  spec.special_ids = special;

  const json& merges = need(model, "merges", src + ": model");
  if (!merges.is_array()) throw Error(src + ": model.merges is not an array");
  spec.merges.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const json& m = merges[r];
    if (m.is_string()) {
      spec.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      spec.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      throw Error(src + ": model.merges[" + std::to_string(r) + "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }

  if (j.contains("normalizer") && j["normalizer"].is_object()) {
    // Supported normalizers: none, an empty Sequence, and NFC (Qwen2), applied to the text between added tokens.
    const std::string nt = j["normalizer"].value("type", "");
    const bool empty_seq = nt == "Sequence" && j["normalizer"].value("normalizers", json::array()).empty();
    if (!empty_seq && nt != "NFC") throw Error(src + ": unsupported normalizer type '" + nt + "'");
    spec.nfc = nt == "NFC";
  }
  if (j.contains("pre_tokenizer")) collect_pre(j["pre_tokenizer"], spec.pre_split_regexes, src);
  if (j.contains("post_processor")) collect_post(j["post_processor"], spec, ids, src);

  // tokenizer_config.json (and transformers 5's chat_template.jinja) beside tokenizer.json.
  const auto dir = path.parent_path();
  const auto cfg_path = dir / "tokenizer_config.json";
  if (std::filesystem::exists(cfg_path)) {
    json cfg;
    try {
      cfg = json::parse(read_text(cfg_path));
    } catch (const json::exception& e) {
      throw Error(cfg_path.string() + ": malformed JSON: " + e.what());
    }
    auto id_of = [&](const std::string& tok, const char* what) {
      auto it = ids.find(tok);
      if (it == ids.end()) throw Error(cfg_path.string() + ": " + what + " '" + tok + "' is not in the vocabulary");
      return it->second;
    };
    if (auto b = token_field(cfg, "bos_token")) spec.bos_id = id_of(*b, "bos_token");
    if (auto e = token_field(cfg, "eos_token")) spec.eos_id = id_of(*e, "eos_token");
    if (auto p = token_field(cfg, "pad_token")) spec.pad_id = id_of(*p, "pad_token");
    // Without a post-processor adding it, an explicit add_bos_token decides.
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean() && !spec.add_bos)
      spec.add_bos = cfg["add_bos_token"].get<bool>() && spec.bos_id >= 0;
    if (cfg.contains("chat_template") && cfg["chat_template"].is_string())
      spec.chat_template = cfg["chat_template"].get<std::string>();
  }
  if (spec.chat_template.empty() && std::filesystem::exists(dir / "chat_template.jinja"))
    spec.chat_template = read_text(dir / "chat_template.jinja");

  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    auto it = ids.find(model["unk_token"].get<std::string>());
    if (it != ids.end()) spec.unk_id = it->second;
  }
  spec.ignore_merges = model.value("ignore_merges", false);
  for (const auto& a : added) {
    if (std::find(spec.special_ids.begin(), spec.special_ids.end(), a.id) == spec.special_ids.end())
      spec.added_ids.push_back(a.id);
    if (a.lstrip) spec.lstrip_ids.push_back(a.id);
    if (a.rstrip) spec.rstrip_ids.push_back(a.id);
  }
  spec.source = src;
  return Tokenizer(std::move(spec));
}

}  // namespace kvf
