#include "core/chat_template.hpp"

#include <ctime>

#include "core/error.hpp"

namespace kvf {
namespace {

// Python's str.isspace() code points (jinja's |trim is Python's str.strip()).
bool py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Code point ending at s[end) (end > 0), and its length; malformed bytes count as one non-space unit.
uint32_t cp_before(std::string_view s, size_t end, size_t& len) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  len = end - b;
  const auto c = static_cast<unsigned char>(s[b]);
  if (len == 1) return c;
  uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = b + 1; k < end; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[k]) & 0x3F);
  return cp;
}

uint32_t cp_at(std::string_view s, size_t i, size_t& len) {
  const auto c = static_cast<unsigned char>(s[i]);
  len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
  if (i + len > s.size()) len = 1;
  if (len == 1) return c;
  uint32_t cp = len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = i + 1; k < i + len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[k]) & 0x3F);
  return cp;
}

std::string py_strip(std::string_view s) {
  size_t b = 0, e = s.size(), len = 0;
  while (b < e && py_space(cp_at(s, b, len))) b += len;
  while (e > b && py_space(cp_before(s, e, len))) e -= len;
  return std::string(s.substr(b, e - b));
}

std::string strip_char(std::string_view s, char c, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left) while (b < e && s[b] == c) ++b;
  if (right) while (e > b && s[e - 1] == c) --e;
  return std::string(s.substr(b, e - b));
}

// Text of a jinja string literal starting at t[i] (already inside the quotes) up to `stop`, with the
// escapes jinja decodes. Returns false when the literal ends (an unescaped quote) before `stop`.
bool literal_until(std::string_view t, size_t i, std::string_view stop, std::string& out) {
  out.clear();
  while (i < t.size()) {
    if (t.substr(i, stop.size()) == stop) return true;
    const char c = t[i];
    if (c == '\'' || c == '"') return false;
    if (c == '\\' && i + 1 < t.size()) {
      const char n = t[i + 1];
      out += n == 'n' ? '\n' : n == 't' ? '\t' : n == 'r' ? '\r' : n;
      i += 2;
      continue;
    }
    out += c;
    ++i;
  }
  return false;
}

// The system prompt a ChatML template inserts by itself: a literal "<|im_start|>system\n...<|im_end|>".
std::string chatml_default_system(std::string_view t) {
  const std::string_view head = "<|im_start|>system";
  for (size_t p = t.find(head); p != std::string_view::npos; p = t.find(head, p + 1)) {
    size_t i = p + head.size();
    if (t.substr(i, 1) == "\n") i += 1;
    else if (t.substr(i, 2) == "\\n") i += 2;
    else continue;
    std::string text;
    if (literal_until(t, i, "<|im_end|>", text) && !text.empty()) return text;
  }
  return "";
}

// Text after `key` in the template up to a newline (literal or escaped) or quote.
std::string text_after(std::string_view t, std::string_view key) {
  const size_t p = t.find(key);
  if (p == std::string_view::npos) return "";
  std::string out;
  for (size_t i = p + key.size(); i < t.size(); ++i) {
    if (t[i] == '\n' || t[i] == '"' || t[i] == '\'' || (t[i] == '\\' && i + 1 < t.size() && t[i + 1] == 'n')) break;
    out += t[i];
  }
  return out;
}

std::string today_dmy() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);  // transformers' strftime_now uses local time
  char buf[32];
  std::strftime(buf, sizeof(buf), "%d %b %Y", &tm);
  return buf;
}

}  // namespace

ChatTemplate detect_chat_template(std::string_view t) {
  const std::string hint = "; pass --no-chat-template to use the raw prompt";
  if (t.find_first_not_of(" \t\r\n") == std::string_view::npos)
    throw Error("unknown chat template (the model has none)" + hint);
  ChatTemplate ct;
  if (t.find("<|start_header_id|>") != std::string_view::npos) {
    ct.format = ChatFormat::Llama3;
    ct.bos_text = "<|begin_of_text|>";
    if (t.find("Cutting Knowledge Date") != std::string_view::npos) {
      ct.llama_dated_system = true;
      ct.knowledge_date = text_after(t, "Cutting Knowledge Date: ");
      ct.date_from_clock = t.find("strftime_now") != std::string_view::npos;
      // The fallback literal: set date_string = "26 Jul 2024"
      const size_t p = t.find("date_string = \"");
      if (p != std::string_view::npos) {
        const size_t b = p + 15, e = t.find('"', b);
        if (e != std::string_view::npos) ct.date_string = std::string(t.substr(b, e - b));
      }
      if (ct.knowledge_date.empty() || (!ct.date_from_clock && ct.date_string.empty()))
        throw Error("unknown chat template (a Llama 3.1-style template without a readable knowledge/today date)" +
                    hint);
    } else {
      ct.bos_with_first_message = true;
    }
    if (t.find("bos_token") == std::string_view::npos && t.find("<|begin_of_text|>") == std::string_view::npos)
      ct.bos_text.clear();
    return ct;
  }
  if (t.find("<|im_start|>") != std::string_view::npos) {
    ct.format = ChatFormat::ChatML;
    ct.default_system = chatml_default_system(t);
    ct.system_with_first_message = t.find("loop.first") != std::string_view::npos;
    ct.qwen3_thinking = t.find("<think>") != std::string_view::npos;
    return ct;
  }
  throw Error("unknown chat template (neither ChatML nor Llama 3)" + hint);
}

std::string apply_chat_template(const ChatTemplate& t, std::span<const ChatMessage> messages,
                                bool add_generation_prompt) {
  std::string out;
  if (t.format == ChatFormat::Llama3) {
    auto block = [&](const std::string& role, const std::string& content) {
      out += "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>";
    };
    size_t first = 0;
    if (t.llama_dated_system) {
      out += t.bos_text;
      std::string system;
      if (!messages.empty() && messages[0].role == "system") {
        system = py_strip(messages[0].content);
        first = 1;
      }
      const std::string date = t.date_from_clock ? today_dmy() : t.date_string;
      block("system", "Cutting Knowledge Date: " + t.knowledge_date + "\nToday Date: " + date + "\n\n" + system);
    } else if (!messages.empty()) {
      out += t.bos_text;
    }
    for (size_t i = first; i < messages.size(); ++i) block(messages[i].role, py_strip(messages[i].content));
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
  }

  // ChatML.
  auto block = [&](const std::string& role, const std::string& content) {
    out += "<|im_start|>" + role + "\n" + content + "<|im_end|>\n";
  };
  if (!t.default_system.empty() && (messages.empty() || messages[0].role != "system")) {
    // SmolLM2 inserts it inside its message loop (so not without messages); Qwen2.5 before the loop.
    if (!messages.empty() || !t.system_with_first_message) block("system", t.default_system);
  }
  size_t last_user = messages.size();
  for (size_t i = 0; i < messages.size(); ++i)
    if (messages[i].role == "user") last_user = i;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (t.qwen3_thinking && m.role == "assistant") {
      std::string content = m.content, reasoning;
      const size_t close = content.rfind("</think>");
      if (content.find("</think>") != std::string::npos) {
        std::string before = strip_char(content.substr(0, content.find("</think>")), '\n', false, true);
        const size_t open = before.rfind("<think>");
        reasoning = strip_char(open == std::string::npos ? before : before.substr(open + 7), '\n', true, false);
        content = strip_char(content.substr(close + 8), '\n', true, false);
      }
      const bool after_last_query = last_user != messages.size() && i > last_user;
      if (after_last_query && (i + 1 == messages.size() || !reasoning.empty()))
        out += "<|im_start|>assistant\n<think>\n" + strip_char(reasoning, '\n', true, true) + "\n</think>\n\n" +
               strip_char(content, '\n', true, false) + "<|im_end|>\n";
      else
        out += "<|im_start|>assistant\n" + content + "<|im_end|>\n";
      continue;
    }
    block(m.role, m.content);
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace kvf
