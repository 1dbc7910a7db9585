#pragma once
// Chat templates for the families kvforge loads, recognised from the jinja template text
// (we do not run jinja): ChatML (SmolLM2, Qwen2/2.5, Qwen3) and Llama 3.
// Rendering matches transformers' apply_chat_template for these templates.
#include <span>
#include <string>
#include <string_view>

namespace kvf {

enum class ChatFormat { ChatML, Llama3 };

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

struct ChatTemplate {
  ChatFormat format = ChatFormat::ChatML;
  std::string default_system;  // system prompt the template inserts when none is given ("" = none)
  bool system_with_first_message = false;  // SmolLM2: inserted in the message loop, so not for no messages
  std::string bos_text;        // text of the BOS token the template emits first ("" = none)
  // Llama 3.0 puts BOS in front of the first message (so no BOS without messages); 3.1+ emits it always.
  bool bos_with_first_message = false;
  // Llama 3.1+: a system block "Cutting Knowledge Date: {knowledge_date}\nToday Date: {date}\n\n{system}"
  // is always emitted. The date is the template's date_string default, or today's (strftime_now) if
  // date_from_clock.
  bool llama_dated_system = false;
  std::string knowledge_date;
  std::string date_string;
  bool date_from_clock = false;
  // Qwen3: assistant turns after the last user turn carry a <think>...</think> block; earlier ones lose it.
  bool qwen3_thinking = false;
};

// Throws kvf::Error ("unknown chat template ...; pass --no-chat-template to use the raw prompt")
// when the text is not one we recognise; also when it is empty.
ChatTemplate detect_chat_template(std::string_view template_text);
std::string apply_chat_template(const ChatTemplate& t, std::span<const ChatMessage> messages,
                                bool add_generation_prompt = true);

}  // namespace kvf
