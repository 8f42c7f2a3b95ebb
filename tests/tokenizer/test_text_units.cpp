// Unit tests of the tokenizer's text layer: strict UTF-8 decoding, the GPT-2 byte alphabet and the
// Unicode classes of the pre-tokenizer patterns.
#include <catch2/catch.hpp>
#include <set>
#include <specdec/tokenizer/byte_alphabet.hpp>
#include <specdec/tokenizer/unicode.hpp>
#include <specdec/tokenizer/utf8.hpp>
#include <string>
#include <vector>

using specdec::unicode::char_class;

namespace {

// (code point or byte, n_bytes, valid) for every unit of s.
std::vector<specdec::utf8::unit> units_of(std::string_view s) {
  std::vector<specdec::utf8::unit> out;
  for (std::size_t pos = 0; pos < s.size(); pos += out.back().n_bytes)
    out.push_back(specdec::utf8::decode(s, pos));
  return out;
}

}  // namespace

TEST_CASE("utf8 decodes well-formed sequences of 1 to 4 bytes", "[tokenizer]") {
  const auto u = units_of("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80");  // a é 中 😀
  REQUIRE(u.size() == 4);
  CHECK(u[0].code_point == U'a');
  CHECK(u[1].code_point == 0xE9);
  CHECK(u[2].code_point == 0x4E2D);
  CHECK(u[3].code_point == 0x1F600);
  CHECK(u[3].n_bytes == 4);
  for (const auto& x : u) CHECK(x.valid);
}

TEST_CASE("utf8 turns each byte of an ill-formed sequence into its own invalid unit", "[tokenizer]") {
  const std::vector<std::string> bad = {
      "\x80",              // stray continuation
      "\xC0\x80",          // overlong NUL
      "\xC1\xBF",          // overlong
      "\xE0\x80\xAF",      // overlong 3-byte
      "\xED\xA0\x80",      // surrogate U+D800
      "\xF4\x90\x80\x80",  // U+110000
      "\xF5\x80\x80\x80",  // lead byte past F4
      "\xFF",
      "\xE4\xB8",      // truncated
      "\xF0\x9F\x98",  // truncated
  };
  for (const std::string& s : bad) {
    const auto u = units_of(s);
    CAPTURE(s);
    REQUIRE(u.size() == s.size());
    for (std::size_t i = 0; i < u.size(); ++i) {
      CHECK_FALSE(u[i].valid);
      CHECK(u[i].n_bytes == 1);
      CHECK(u[i].code_point == static_cast<unsigned char>(s[i]));
    }
  }
  // A truncated sequence does not swallow the valid character after it.
  const auto u = units_of(
      "\xE4\xB8"
      "a");
  REQUIRE(u.size() == 3);
  CHECK(u[2].valid);
  CHECK(u[2].code_point == U'a');
}

TEST_CASE("byte alphabet is a bijection with GPT-2's spellings", "[tokenizer]") {
  namespace ba = specdec::byte_alphabet;
  std::set<char32_t> seen(ba::code_point_of.begin(), ba::code_point_of.end());
  CHECK(seen.size() == 256);
  CHECK(ba::code_point_of[' '] == 0x120);   // Ġ
  CHECK(ba::code_point_of['\n'] == 0x10A);  // Ċ
  CHECK(ba::code_point_of['\t'] == 0x109);  // ĉ
  CHECK(ba::code_point_of['a'] == U'a');
  CHECK(ba::code_point_of[0xAD] == 0x143);  // soft hyphen is not printable: the last of the 68
  for (int b = 0; b < 256; ++b) CHECK(ba::byte_of(ba::code_point_of[static_cast<std::size_t>(b)]) == b);
  CHECK(ba::byte_of(U' ') == -1);
  CHECK(ba::byte_of(0x144) == -1);

  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  CHECK(ba::unspell(ba::spell(all)) == all);
  CHECK(ba::spell("a b") ==
        "a\xC4\xA0"
        "b");
  CHECK_FALSE(ba::unspell("a b").has_value());  // a raw space is not in the alphabet
  CHECK_FALSE(ba::unspell("\xFF").has_value());
}

TEST_CASE("unicode classes follow Oniguruma's \\p{L}, \\p{N} and \\s", "[tokenizer]") {
  using specdec::unicode::classify;
  CHECK(classify(U'a') == char_class::letter);
  CHECK(classify(U'Z') == char_class::letter);
  CHECK(classify(0x4E2D) == char_class::letter);  // 中
  CHECK(classify(0x17F) == char_class::letter);   // ſ
  CHECK(classify(0x1C89) == char_class::letter);  // Unicode 16: Python 3.11's unicodedata lacks it
  CHECK(classify(U'7') == char_class::number);
  CHECK(classify(0xBD) == char_class::number);    // ½
  CHECK(classify(0x2167) == char_class::number);  // Ⅷ (Nl)
  CHECK(classify(0x663) == char_class::number);   // Arabic-Indic three
  CHECK(classify(U' ') == char_class::white_space);
  CHECK(classify(U'\t') == char_class::white_space);
  CHECK(classify(0x0B) == char_class::white_space);
  CHECK(classify(0x85) == char_class::white_space);
  CHECK(classify(0xA0) == char_class::white_space);
  CHECK(classify(0x3000) == char_class::white_space);
  CHECK(classify(0x1C) == char_class::other);    // Python's isspace() says yes, Oniguruma no
  CHECK(classify(0x200B) == char_class::other);  // zero width space is Cf
  CHECK(classify(0x301) == char_class::other);   // combining acute is Mn
  CHECK(classify(U'\'') == char_class::other);
  CHECK(classify(0x1F600) == char_class::other);
  CHECK(classify(0x10FFFF) == char_class::other);
}
