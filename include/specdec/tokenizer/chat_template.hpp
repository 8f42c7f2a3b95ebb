// Chat templates without a Jinja engine: the template string of the GGUF (tokenizer.chat_template)
// is recognised by family and reproduced in C++. Only ChatML is known (the template contains
// "<|im_start|>"), including the default system message that templates such as SmolLM2's and
// Qwen2's inject when the first message is not a system one, read out of the template string:
//   <|im_start|>system\n{default}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n
// Templates with a tool-use branch (Qwen2's: "tool_call" in the source) render only the system,
// user and assistant roles as plain turns: a "tool" message becomes a <tool_response> inside a user
// turn and other roles are dropped, which this renderer does not reproduce, so apply() refuses any
// other role for them (unsupported) rather than write a prompt the model was not trained on.
// Anything else throws (unsupported), telling the user to pass --no-chat-template.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "specdec/error.hpp"

namespace specdec {

struct chat_message {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

class chat_template {
 public:
  // Recognises the family of a Jinja chat template; throws specdec::error (unsupported) otherwise.
  static chat_template detect(std::string_view source) {
    if (source.empty()) {
      throw error(error_category::unsupported,
                  "chat template: the model has no chat template (tokenizer.chat_template); pass "
                  "--no-chat-template to use the prompt as plain text");
    }
    if (source.find("<|im_start|>") == std::string_view::npos) {
      throw error(
          error_category::unsupported,
          "chat template: unsupported chat template (only ChatML, with <|im_start|>, is built in); pass "
          "--no-chat-template to use the prompt as plain text");
    }
    const bool tool_use = source.find("tool_call") != std::string_view::npos;
    return chat_template(default_system_of(source), tool_use);
  }

  // A ChatML template, with or without a default system message.
  static chat_template chatml(std::optional<std::string> default_system = std::nullopt) {
    return chat_template(std::move(default_system), false);
  }

  // The text of the conversation; with add_generation_prompt, ends with the assistant's opening.
  // Throws specdec::error (unsupported) for a role the template renders in a way this does not.
  [[nodiscard]] std::string apply(std::span<const chat_message> messages, bool add_generation_prompt) const {
    if (tool_use_) {
      for (const chat_message& m : messages) {
        if (m.role != "system" && m.role != "user" && m.role != "assistant") {
          throw error(error_category::unsupported,
                      "chat template: role '" + m.role +
                          "' is not supported for this model's template (its tool-use branches are not "
                          "built in; roles: system, user, assistant)");
        }
      }
    }
    std::string out;
    if (default_system_ && !messages.empty() && messages.front().role != "system") {
      append_turn(out, "system", *default_system_);
    }
    for (const chat_message& m : messages) append_turn(out, m.role, m.content);
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }

  [[nodiscard]] const std::optional<std::string>& default_system() const noexcept { return default_system_; }
  // The template has tool-use branches (only system, user and assistant turns are rendered).
  [[nodiscard]] bool has_tool_use() const noexcept { return tool_use_; }

  // The literal default system message of a ChatML template: the text of a Jinja string literal
  // between "<|im_start|>system" plus a newline and "<|im_end|>". None when the system turn is built
  // from an expression (message['content']) rather than written out.
  static std::optional<std::string> default_system_of(std::string_view source) {
    constexpr std::string_view open = "<|im_start|>system";
    constexpr std::string_view close = "<|im_end|>";
    for (std::size_t at = source.find(open); at != std::string_view::npos; at = source.find(open, at + 1)) {
      std::size_t begin = at + open.size();
      if (source.substr(begin, 1) == "\n") {
        begin += 1;
      } else if (source.substr(begin, 2) == "\\n") {
        begin += 2;
      } else {
        continue;
      }
      const std::size_t end = source.find(close, begin);
      if (end == std::string_view::npos) break;
      const std::string_view body = source.substr(begin, end - begin);
      if (body.empty() || body.find_first_of("'\"{}") != std::string_view::npos) continue;
      return unescape(body);
    }
    return std::nullopt;
  }

 private:
  chat_template(std::optional<std::string> default_system, bool tool_use)
      : default_system_(std::move(default_system)), tool_use_(tool_use) {}

  static void append_turn(std::string& out, std::string_view role, std::string_view content) {
    out += "<|im_start|>";
    out += role;
    out += '\n';
    out += content;
    out += "<|im_end|>\n";
  }

  // Jinja string-literal escapes: \n \t \\ (quotes were ruled out by the caller).
  static std::string unescape(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) {
        const char c = s[++i];
        out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
      } else {
        out += s[i];
      }
    }
    return out;
  }

  std::optional<std::string> default_system_;
  bool tool_use_ = false;
};

}  // namespace specdec
