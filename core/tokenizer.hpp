#pragma once
// Byte-level BPE tokenizer (GPT-2 family: SmolLM2, Llama 3, Qwen2/3), loaded from a Hugging Face
// tokenizer.json or from GGUF metadata (tokenizer.ggml.*). Encoding: special/added tokens are split
// out first, the rest is pre-tokenized with the model's split regex (PCRE2, Unicode), mapped to the
// byte-level alphabet, and merged by rank. Decoding maps the byte-level alphabet back to UTF-8 bytes.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvf {

class GgufFile;

// Format-independent content of a tokenizer; both loaders fill this.
struct TokenizerSpec {
  std::vector<std::string> tokens;  // id -> token string in the byte-level alphabet
  std::vector<std::string> merges;  // rank order, "left right"
  std::vector<int32_t> special_ids; // added/control tokens matched verbatim in text before BPE
  std::vector<std::string> pre_split_regexes;  // applied in sequence (HF Sequence of Split pre-tokenizers)
  int32_t bos_id = -1;
  int32_t eos_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;  // prepend BOS when encoding with add_special
  std::string chat_template;  // jinja text from tokenizer_config.json or tokenizer.chat_template
  // Added tokens that are not special (HF added_tokens with special=false, GGUF user-defined): matched
  // verbatim like special_ids and decoded as raw text, but kept by decode(skip_special).
  std::vector<int32_t> added_ids;
  std::vector<int32_t> lstrip_ids, rstrip_ids;  // HF added-token options: swallow whitespace left/right
  int32_t unk_id = -1;         // used for bytes missing from a (tiny) vocabulary
  bool ignore_merges = false;  // HF BPE ignore_merges: a word already in the vocabulary is one token
  bool nfc = false;            // HF NFC normalizer (Qwen2): applied to the text between added tokens
  std::string source;          // file name for error messages
};

class Tokenizer {
 public:
  explicit Tokenizer(TokenizerSpec spec);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // tokenizer.json (and tokenizer_config.json beside it, for the chat template and BOS policy).
  static Tokenizer from_tokenizer_json(const std::filesystem::path& path);
  static Tokenizer from_gguf(const GgufFile& f);

  // add_special: prepend BOS when the tokenizer says so. Special tokens in `text` are always recognised.
  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  std::string token_text(int32_t id) const;  // decoded bytes of one token (may be partial UTF-8)
  std::optional<int32_t> token_to_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  int64_t vocab_size() const;
  int32_t bos_id() const;
  int32_t eos_id() const;
  const std::string& chat_template() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvf
