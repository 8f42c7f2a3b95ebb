// Chat template unit tests: ChatML detection, the default system message read out of the template
// string, and the error that sends users to --no-chat-template.
#include <catch2/catch.hpp>
#include <specdec/error.hpp>
#include <specdec/tokenizer/chat_template.hpp>
#include <string>
#include <vector>

using specdec::chat_message;
using specdec::chat_template;

namespace {

// SmolLM2's template, as stored in its GGUF (real newlines inside the Jinja string literals).
const std::string smollm2_template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' "
    "}}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

}  // namespace

TEST_CASE("ChatML templates are detected and their default system message read", "[tokenizer]") {
  const chat_template t = chat_template::detect(smollm2_template);
  REQUIRE(t.default_system().has_value());
  CHECK(*t.default_system() == "You are a helpful AI assistant named SmolLM, trained by Hugging Face");

  // Escaped newlines in the literal, as some converters write them.
  const auto escaped =
      chat_template::default_system_of("{{ '<|im_start|>system\\nBe kind.\\tOK<|im_end|>\\n' }}");
  CHECK(escaped == std::optional<std::string>("Be kind.\tOK"));

  // A system turn built from an expression is not a default message.
  const std::string plain =
      "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + "
      "'<|im_end|>\n'}}{% endfor %}{{ '<|im_start|>system\n' + x + '<|im_end|>' }}";
  CHECK_FALSE(chat_template::detect(plain).default_system().has_value());
}

TEST_CASE("ChatML apply injects the default system message only before a non-system first turn",
          "[tokenizer]") {
  const chat_template t = chat_template::detect(smollm2_template);
  const std::string sys =
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
  const std::vector<chat_message> user = {{"user", "Hi!"}};
  CHECK(t.apply(user, true) == sys + "<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
  CHECK(t.apply(user, false) == sys + "<|im_start|>user\nHi!<|im_end|>\n");

  const std::vector<chat_message> with_system = {{"system", "Be brief."}, {"user", "Hi!"}};
  CHECK(t.apply(with_system, true) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n");
  CHECK(t.apply({}, true) == "<|im_start|>assistant\n");
  CHECK(chat_template::chatml().apply(user, false) == "<|im_start|>user\nHi!<|im_end|>\n");
}

TEST_CASE("a template with tool-use branches: default system read past them, tool roles refused",
          "[tokenizer]") {
  // The shape of Qwen2.5's template: a tools branch first (system turn built from expressions), then
  // the plain branch with the default written out, then per-role branches.
  const std::string qwen_like =
      "{%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}"
      "{{- messages[0]['content'] }}{%- else %}{{- 'You are Q.' }}{%- endif %}{%- else %}"
      "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + "
      "'<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Q, a helper.<|im_end|>\\n' }}"
      "{%- endif %}{%- endif %}{%- for message in messages %}{%- if message.role == \"user\" %}...{%- elif "
      "message.role == \"assistant\" %}{%- for tool_call in message.tool_calls %}<tool_call>{%- endfor %}"
      "{%- elif message.role == \"tool\" %}<tool_response>{%- endif %}{%- endfor %}";
  const chat_template t = chat_template::detect(qwen_like);
  CHECK(t.has_tool_use());
  CHECK(t.default_system() == std::optional<std::string>("You are Q, a helper."));
  const std::vector<chat_message> ok = {{"user", "Hi!"}, {"assistant", "Hello."}, {"system", "Later."}};
  CHECK(t.apply(ok, false) ==
        "<|im_start|>system\nYou are Q, a helper.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>system\nLater.<|im_end|>\n");
  for (const char* role : {"tool", "ipython", "function"}) {
    const std::vector<chat_message> bad = {{"user", "Hi!"}, {role, "42"}};
    try {
      (void)t.apply(bad, true);
      FAIL("no error for role " << role);
    } catch (const specdec::error& e) {
      CHECK(e.category() == specdec::error_category::unsupported);
      CHECK_THAT(e.what(), Catch::Contains(std::string("'") + role + "'") && Catch::Contains("tool-use"));
    }
  }
  // Without tool-use branches (SmolLM2's template) any role is written as a ChatML turn.
  const std::vector<chat_message> tool = {{"tool", "42"}};
  CHECK_FALSE(chat_template::detect(smollm2_template).has_tool_use());
  CHECK(chat_template::chatml().apply(tool, false) == "<|im_start|>tool\n42<|im_end|>\n");
}

TEST_CASE("unknown or missing templates are unsupported and point to --no-chat-template", "[tokenizer]") {
  for (const std::string& source :
       {std::string("{{ bos_token }}[INST] {{ messages[0]['content'] }} [/INST]"), std::string()}) {
    try {
      (void)chat_template::detect(source);
      FAIL("no error");
    } catch (const specdec::error& e) {
      CHECK(e.category() == specdec::error_category::unsupported);
      CHECK_THAT(e.what(), Catch::Contains("--no-chat-template"));
    }
  }
}
