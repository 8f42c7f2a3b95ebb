// Reference tests on the real model's vocabulary: token ids, pre-tokenizer splits, special-token
// handling and chat-templated prompts against Hugging Face, from the fixture that
// tools/reference/tokenizer_fixtures.py writes (every dev prompt turn, a stress text, edge strings).
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <string>
#include <vector>

using specdec::token_id;
using ids = std::vector<token_id>;
using json = nlohmann::json;

namespace {

const json& reference() {
  static const json doc = [] {
    const std::string path = std::string(SPECDEC_TEST_FIXTURES) + "/tokenizer_reference.json";
    std::ifstream in(path);
    if (!in) FAIL("cannot open " << path << " (run tools/reference/make_fixtures.py)");
    return json::parse(in);
  }();
  return doc;
}

const specdec::vocabulary& model_vocabulary() {
  static const specdec::vocabulary v = specdec::vocabulary_from_gguf(specdec::gguf::file(SPECDEC_TEST_MODEL));
  return v;
}

// The text as the tokenizer gives it back: bytes without a token of their own are dropped.
std::string without_bytes(std::string text, const std::vector<std::uint8_t>& dropped) {
  std::erase_if(text, [&](char c) {
    return std::find(dropped.begin(), dropped.end(), static_cast<std::uint8_t>(c)) != dropped.end();
  });
  return text;
}

}  // namespace

TEST_CASE("the real vocabulary loads from the GGUF with its special tokens", "[tokenizer]") {
  specdec::tokenizer t(model_vocabulary());
  CHECK(t.n_vocab() == reference().at("n_vocab").get<int>());
  CHECK(t.pre() == specdec::pre_tokenizer::smollm);
  CHECK(t.bos_id() == 1);
  CHECK(t.eos_id() == 2);
  CHECK(t.unk_id() == 0);
  CHECK(t.pad_id() == 2);
  CHECK_FALSE(t.add_bos());
  CHECK(t.find("<|im_start|>") == std::optional<token_id>(1));
  CHECK(t.type_of(2) == specdec::token_type::control);
  CHECK(t.token_to_piece(2, {.include_control = true}) == "<|im_end|>");
  CHECK(t.token_to_piece(t.find("\xC4\xA0the").value()) == " the");
  CHECK(t.bytes_without_token().size() == 21);  // SmolLM2 lacks 0x04, 0x1D, 0xC0, 0xF5..0xFF, ...
}

TEST_CASE("ids match Hugging Face on every dev prompt turn, the stress text, edge and random strings",
          "[tokenizer]") {
  specdec::tokenizer t(model_vocabulary());
  auto plain_gpt2 = model_vocabulary();
  plain_gpt2.pre = "gpt2";
  specdec::tokenizer gpt2(plain_gpt2);
  const auto dropped = t.bytes_without_token();
  const json& cases = reference().at("cases");
  REQUIRE(cases.size() > 40);
  int n_prompts = 0;
  for (const json& c : cases) {
    const std::string name = c.at("name");
    const std::string text = c.at("text");
    CAPTURE(name, text);
    const bool generated = name == "stress" || name == "code" || name.starts_with("edge/") || name.starts_with("random/");
    n_prompts += generated ? 0 : 1;
    CHECK(t.encode(text) == c.at("ids").get<ids>());
    // transformers' own GGUF conversion splits "smollm" text like GPT-2: the same vocabulary with
    // pre = "gpt2" must give its ids.
    CHECK(gpt2.encode(text) == c.at("ids_gguf_conversion").get<ids>());
    CHECK(t.decode(t.encode(text)) == without_bytes(text, dropped));
    for (const auto& [pre, expected] : c.at("splits").items()) {
      CAPTURE(pre);
      std::vector<std::string> got;
      for (const std::string_view p : specdec::pretokenize(text, specdec::pre_tokenizer_from_name(pre))) {
        got.emplace_back(p);
      }
      CHECK(got == expected.get<std::vector<std::string>>());
    }
  }
  CHECK(n_prompts == 36);
}

TEST_CASE("special tokens in text match Hugging Face with and without parsing", "[tokenizer]") {
  specdec::tokenizer t(model_vocabulary());
  const json& s = reference().at("special");
  const std::string text = s.at("text");
  const ids parsed = t.encode(text, {.parse_special = true});
  CHECK(parsed == s.at("ids_parse_special").get<ids>());
  CHECK(t.encode(text) == s.at("ids_plain").get<ids>());
  CHECK(t.decode(parsed, {.include_control = true}) == text);
  CHECK(t.decode(parsed) == "user\nhi x<|im_end|\n");
}

TEST_CASE("chat-templated prompts: same text and same ids as jinja2 + Hugging Face", "[tokenizer]") {
  specdec::tokenizer t(model_vocabulary());
  REQUIRE(t.chat_template() == reference().at("chat_template").get<std::string>());
  const auto chat = specdec::chat_template::detect(t.chat_template());
  for (const json& c : reference().at("chats")) {
    CAPTURE(c.at("name").get<std::string>());
    std::vector<specdec::chat_message> messages;
    for (const json& m : c.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    const std::string text = chat.apply(messages, c.at("add_generation_prompt").get<bool>());
    CHECK(text == c.at("text").get<std::string>());
    CHECK(t.encode(text, {.parse_special = true}) == c.at("ids").get<ids>());
  }
}

TEST_CASE("random bytes through the real vocabulary: no crash, round trip, deterministic", "[tokenizer]") {
  specdec::tokenizer t(model_vocabulary());
  const auto dropped = t.bytes_without_token();
  const json& cases = reference().at("cases");
  const auto stress =
      std::find_if(cases.begin(), cases.end(), [](const json& c) { return c.at("name") == "stress"; });
  REQUIRE(stress != cases.end());
  const std::string seed_text = stress->at("text");
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 96), pick(0, 3);
  std::uniform_int_distribution<std::size_t> at(0, seed_text.size() - 1);
  for (int iter = 0; iter < 3000; ++iter) {
    // Random bytes mixed with bytes of the stress text (which cut its UTF-8 sequences anywhere).
    std::string s;
    for (int i = length(rng); i > 0; --i)
      s += pick(rng) == 0 ? static_cast<char>(byte(rng)) : seed_text[at(rng)];
    const specdec::encode_options options{.parse_special = iter % 2 == 0};
    const ids a = t.encode(s, options);
    REQUIRE(t.decode(a, {.include_control = true}) == without_bytes(s, dropped));
    REQUIRE(t.encode(s, options) == a);  // from the word cache now
  }
}

TEST_CASE("tokenizer_from_gguf builds the same tokenizer as the plain vocabulary", "[tokenizer]") {
  const specdec::gguf::file f(SPECDEC_TEST_MODEL);
  specdec::tokenizer t = specdec::tokenizer_from_gguf(f);
  specdec::tokenizer u(model_vocabulary());
  CHECK(t.n_vocab() == 49152);
  const std::string text = reference().at("cases").at(0).at("text");
  CHECK(t.encode(text) == u.encode(text));
}
