// The Qwen2 vocabulary (151,936 tokens, tokenizer.ggml.pre = "qwen2") against Hugging Face: token
// ids of every dev prompt turn, a stress text, a code text, edge and random strings; the four
// pre-tokenizer splits against Oniguruma; special tokens; the file's own chat template rendered by
// jinja2. Expected values come from tools/reference/qwen2_fixtures.py (tokenizer_reference.json).
#include "qwen2_support.hpp"

#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/from_gguf.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

using specdec::token_id;
using ids = std::vector<token_id>;
using json = nlohmann::json;

namespace {

const json& reference() {
  static const json doc = specdec::test::read_qwen2_json("tokenizer_reference.json");
  return doc;
}

const specdec::tokenizer& shared_tokenizer() {
  static const specdec::tokenizer t = specdec::tokenizer_from_gguf(specdec::test::qwen2_file());
  return t;
}

const json& find_case(const std::string& name) {
  const json& cases = reference().at("cases");
  const auto it = std::find_if(cases.begin(), cases.end(), [&](const json& c) { return c.at("name") == name; });
  if (it == cases.end()) FAIL("no case " << name);
  return *it;
}

}  // namespace

TEST_CASE("qwen2 vocabulary: size, pre-tokenizer, special ids", "[qwen2][tokenizer]") {
  const specdec::tokenizer& t = shared_tokenizer();
  CHECK(t.n_vocab() == reference().at("n_vocab").get<int>());
  CHECK(t.n_vocab() == 151936);
  CHECK(reference().at("pre_tokenizer") == "qwen2");
  CHECK(t.pre() == specdec::pre_tokenizer::qwen2);
  CHECK(t.find("<|endoftext|>") == std::optional<token_id>(151643));
  CHECK(t.find("<|im_start|>") == std::optional<token_id>(151644));
  CHECK(t.find("<|im_end|>") == std::optional<token_id>(151645));
  CHECK(t.eos_id() == 151645);
  CHECK(t.bos_id() == 151643);
  CHECK_FALSE(t.add_bos());
  CHECK(t.type_of(151645) == specdec::token_type::control);
  CHECK(t.token_to_piece(151645).empty());
  CHECK(t.token_to_piece(151645, {.include_control = true}) == "<|im_end|>");
  CHECK(t.bytes_without_token().empty());  // every byte has a token: decode(encode(s)) == s
}

TEST_CASE("qwen2 ids and splits match Hugging Face on prompts, stress, code, edge and random strings",
          "[qwen2][tokenizer]") {
  specdec::tokenizer t = shared_tokenizer();
  const json& cases = reference().at("cases");
  int n_prompts = 0;
  for (const json& c : cases) {
    const std::string name = c.at("name");
    const std::string text = c.at("text");
    CAPTURE(name, text);
    const bool generated =
        name == "stress" || name == "code" || name.starts_with("edge/") || name.starts_with("random/");
    n_prompts += generated ? 0 : 1;
    const ids got = t.encode(text);
    CHECK(got == c.at("ids").get<ids>());
    CHECK(t.decode(got) == text);
    for (const auto& [pre, expected] : c.at("splits").items()) {
      CAPTURE(pre);
      std::vector<std::string> pieces;
      for (const std::string_view p : specdec::pretokenize(text, specdec::pre_tokenizer_from_name(pre))) {
        pieces.emplace_back(p);
      }
      CHECK(pieces == expected.get<std::vector<std::string>>());
    }
  }
  CHECK(n_prompts == 36);
  CHECK(find_case("code").at("ids").size() > 400);
}

TEST_CASE("qwen2 special tokens in text match Hugging Face with and without parsing", "[qwen2][tokenizer]") {
  specdec::tokenizer t = shared_tokenizer();
  const json& s = reference().at("special");
  const std::string text = s.at("text");
  const ids parsed = t.encode(text, {.parse_special = true});
  CHECK(parsed == s.at("ids_parse_special").get<ids>());
  CHECK(t.encode(text) == s.at("ids_plain").get<ids>());
  CHECK(t.decode(parsed, {.include_control = true}) == text);
}

TEST_CASE("qwen2 chat template: same text and ids as jinja2 + Hugging Face; tool roles refused",
          "[qwen2][tokenizer]") {
  specdec::tokenizer t = shared_tokenizer();
  REQUIRE(t.chat_template() == reference().at("chat_template").get<std::string>());
  const auto chat = specdec::chat_template::detect(t.chat_template());
  CHECK(chat.default_system() ==
        std::optional<std::string>("You are Qwen, created by Alibaba Cloud. You are a helpful assistant."));
  CHECK(chat.has_tool_use());
  const json& chats = reference().at("chats");
  CHECK(chats.size() >= 36 + 3);
  for (const json& c : chats) {
    CAPTURE(c.at("name").get<std::string>());
    std::vector<specdec::chat_message> messages;
    for (const json& m : c.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    const std::string text = chat.apply(messages, c.at("add_generation_prompt").get<bool>());
    CHECK(text == c.at("text").get<std::string>());
    CHECK(t.encode(text, {.parse_special = true}) == c.at("ids").get<ids>());
  }
  const std::vector<specdec::chat_message> tool = {{"user", "2+2?"}, {"tool", "4"}};
  CHECK_THROWS_AS(chat.apply(tool, true), specdec::error);
}

TEST_CASE("qwen2 random bytes: round trip and deterministic", "[qwen2][tokenizer]") {
  specdec::tokenizer t = shared_tokenizer();
  const std::string seed_text = find_case("stress").at("text").get<std::string>() +
                                find_case("code").at("text").get<std::string>();
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 96), pick(0, 3);
  std::uniform_int_distribution<std::size_t> at(0, seed_text.size() - 1);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s;
    for (int i = length(rng); i > 0; --i) s += pick(rng) == 0 ? static_cast<char>(byte(rng)) : seed_text[at(rng)];
    const specdec::encode_options options{.parse_special = iter % 2 == 0};
    const ids a = t.encode(s, options);
    REQUIRE(t.decode(a, {.include_control = true}) == s);
    REQUIRE(t.encode(s, options) == a);
  }
}

TEST_CASE("qwen2 encode rate on the code text (reported, not asserted)", "[qwen2][tokenizer]") {
  const std::string code = find_case("code").at("text");
  std::string text;
  while (text.size() < (1u << 20)) text += code;
  specdec::tokenizer t = shared_tokenizer();
  t.encode(code);  // warm the word cache on the text's own words, as a long session would
  const auto start = std::chrono::steady_clock::now();
  const std::size_t n = t.encode(text).size();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(n > text.size() / 8);
  WARN("encoded " << text.size() / 1024 << " KiB of code into " << n << " tokens in " << s * 1e3 << " ms ("
                  << static_cast<double>(text.size()) / s / 1e6 << " MB/s)");
}
