// Pre-tokenizer splits on tricky strings. The expected pieces are what Oniguruma (Hugging Face
// tokenizers' regex engine) gives for the same patterns; the reference test compares many more.
#include <catch2/catch.hpp>
#include <random>
#include <specdec/error.hpp>
#include <specdec/tokenizer/pretokenize.hpp>
#include <string>
#include <vector>

using specdec::pre_tokenizer;
using pieces = std::vector<std::string_view>;

TEST_CASE("pre-tokenizer names map to the four patterns; others are unsupported", "[tokenizer]") {
  CHECK(specdec::pre_tokenizer_from_name("gpt2") == pre_tokenizer::gpt2);
  CHECK(specdec::pre_tokenizer_from_name("default") == pre_tokenizer::gpt2);
  CHECK(specdec::pre_tokenizer_from_name("") == pre_tokenizer::gpt2);
  CHECK(specdec::pre_tokenizer_from_name("smollm") == pre_tokenizer::smollm);
  CHECK(specdec::pre_tokenizer_from_name("llama-bpe") == pre_tokenizer::llama3);
  CHECK(specdec::pre_tokenizer_from_name("llama3") == pre_tokenizer::llama3);
  CHECK(specdec::pre_tokenizer_from_name("qwen2") == pre_tokenizer::qwen2);
  CHECK(specdec::pre_tokenizer_from_name("deepseek-r1-qwen") == pre_tokenizer::qwen2);
  CHECK(specdec::to_string(pre_tokenizer::qwen2) == "qwen2");
  try {
    (void)specdec::pre_tokenizer_from_name("qwen35");
    FAIL("no error");
  } catch (const specdec::error& e) {
    CHECK(e.category() == specdec::error_category::unsupported);
    CHECK_THAT(e.what(), Catch::Contains("'qwen35'"));
  }
}

TEST_CASE("gpt2 split: contractions, optional space, whitespace lookahead", "[tokenizer]") {
  const auto split = [](std::string_view s) { return specdec::pretokenize(s, pre_tokenizer::gpt2); };
  CHECK(split("") == pieces{});
  CHECK(split("Hello  world") == pieces{"Hello", " ", " world"});
  CHECK(split("it's IT'S") == pieces{"it", "'s", " IT", "'", "S"});
  CHECK(split(" 123abc") == pieces{" 123", "abc"});
  CHECK(split("a  1") == pieces{"a", " ", " 1"});
  CHECK(split("end   ") == pieces{"end", "   "});
  CHECK(split("\n\n x") == pieces{"\n\n", " x"});
  CHECK(split("!!! ?") == pieces{"!!!", " ?"});
  CHECK(split("x\r\n\r\n y") == pieces{"x", "\r\n\r\n", " y"});
  CHECK(split("a'b 'll") == pieces{"a", "'", "b", " '", "ll"});
  CHECK(split("\t\tfoo") == pieces{"\t", "\t", "foo"});
  CHECK(split("x \xC2\xBD 2\xC2\xB3") == pieces{"x", " \xC2\xBD", " 2\xC2\xB3"});  // x ½ 2³
}

TEST_CASE("smollm split isolates every number character first", "[tokenizer]") {
  const auto split = [](std::string_view s) { return specdec::pretokenize(s, pre_tokenizer::smollm); };
  CHECK(split(" 123abc") == pieces{" ", "1", "2", "3", "abc"});
  CHECK(split("a  1") == pieces{"a", "  ", "1"});  // the lookahead stops at the cut
  CHECK(split("12345") == pieces{"1", "2", "3", "4", "5"});
  CHECK(split("x \xC2\xBD 2\xC2\xB3") == pieces{"x", " ", "\xC2\xBD", " ", "2", "\xC2\xB3"});
  CHECK(split("Hello  world") == pieces{"Hello", " ", " world"});
}

TEST_CASE("llama3 split: case-folded contractions, \\p{N}{1,3}, newline runs", "[tokenizer]") {
  const auto split = [](std::string_view s) { return specdec::pretokenize(s, pre_tokenizer::llama3); };
  CHECK(split("it's IT'S") == pieces{"it", "'s", " IT", "'S"});
  CHECK(split("it'\xC5\xBFt") == pieces{"it", "'\xC5\xBF", "t"});  // long s folds to s
  CHECK(split(" 123abc") == pieces{" ", "123", "abc"});
  CHECK(split("12345") == pieces{"123", "45"});
  CHECK(split("a  1") == pieces{"a", " ", " ", "1"});
  CHECK(split("!!\n\n") == pieces{"!!\n\n"});
  CHECK(split("a'b 'll") == pieces{"a", "'b", " '", "ll"});
  CHECK(split("\t\tfoo") == pieces{"\t", "\tfoo"});
  CHECK(split("x\r\n\r\n y") == pieces{"x", "\r\n\r\n", " y"});
  CHECK(split("a \n \n  b") == pieces{"a", " \n \n", " ", " b"});
}

TEST_CASE("qwen2 split: llama3's pattern with every digit a piece of its own", "[tokenizer]") {
  const auto split = [](std::string_view s) { return specdec::pretokenize(s, pre_tokenizer::qwen2); };
  CHECK(split("it's IT'S") == pieces{"it", "'s", " IT", "'S"});
  CHECK(split("it'\xC5\xBFt") == pieces{"it", "'\xC5\xBF", "t"});
  CHECK(split(" 123abc") == pieces{" ", "1", "2", "3", "abc"});
  CHECK(split("12345") == pieces{"1", "2", "3", "4", "5"});
  CHECK(split("a  1") == pieces{"a", " ", " ", "1"});
  CHECK(split("x1.25e-3") == pieces{"x", "1", ".", "2", "5", "e", "-", "3"});
  CHECK(split("0x1F") == pieces{"0", "x", "1", "F"});
  CHECK(split("v2.0 \xC2\xBD\xC2\xB2") == pieces{"v", "2", ".", "0", " ", "\xC2\xBD", "\xC2\xB2"});  // ½²
  CHECK(split("for i in range(10):\n    x += 1\n") ==
        pieces{"for", " i", " in", " range", "(", "1", "0", "):\n", "   ", " x", " +=", " ", "1", "\n"});
  CHECK(split("\t\tfoo") == pieces{"\t", "\tfoo"});
  CHECK(split("a \n \n  b") == pieces{"a", " \n \n", " ", " b"});
}

TEST_CASE("invalid UTF-8 bytes are units of class other and pieces cover the input", "[tokenizer]") {
  CHECK(specdec::pretokenize("ab\xFF\xFE!c", pre_tokenizer::gpt2) == pieces{"ab", "\xFF\xFE!", "c"});
  CHECK(specdec::pretokenize(" \x80x", pre_tokenizer::gpt2) == pieces{" \x80", "x"});
  CHECK(specdec::pretokenize("\xC3", pre_tokenizer::smollm) == pieces{"\xC3"});

  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 40);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    for (int i = length(rng); i > 0; --i) s += static_cast<char>(byte(rng));
    for (const pre_tokenizer p :
         {pre_tokenizer::gpt2, pre_tokenizer::smollm, pre_tokenizer::llama3, pre_tokenizer::qwen2}) {
      std::string joined;
      for (const std::string_view piece : specdec::pretokenize(s, p)) {
        CHECK_FALSE(piece.empty());
        joined += piece;
      }
      REQUIRE(joined == s);
    }
  }
}
