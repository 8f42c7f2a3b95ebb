// Tokenizer unit tests on hand-made vocabularies: merge order, special tokens, decoding, invalid
// UTF-8 (a bounded random-bytes fuzz) and the errors a bad vocabulary raises.
#include <catch2/catch.hpp>
#include <random>
#include <specdec/error.hpp>
#include <specdec/tokenizer/tokenizer.hpp>
#include <string>
#include <vector>

#include "toy_vocabulary.hpp"

using specdec::token_id;
using specdec::token_type;
using ids = std::vector<token_id>;

namespace {

// Expects constructing a tokenizer from `v` to throw an error of `category` whose text contains `what`.
void expect_error(const specdec::vocabulary& v, specdec::error_category category, const std::string& what) {
  try {
    specdec::tokenizer t(v);
    FAIL("no error for: " << what);
  } catch (const specdec::error& e) {
    CHECK(e.category() == category);
    CHECK_THAT(e.what(), Catch::Contains(what));
  }
}

}  // namespace

TEST_CASE("bpe merges the lowest-ranked pair first", "[tokenizer]") {
  // hello: (l,l) has rank 0, then (h,e), then (he,ll); "ll o" comes too late to be used.
  const auto v = toy::make({"l l", "h e", "he ll", "ll o"});
  specdec::tokenizer t(v);
  CHECK(t.encode("hello") == ids{toy::id_of(v, "hell"), 'o'});

  // The same pairs in another order give another segmentation.
  const auto w = toy::make({"l l", "ll o", "h e", "he llo"});
  specdec::tokenizer u(w);
  CHECK(u.encode("hello") == ids{toy::id_of(w, "hello")});
  CHECK(u.encode("hell") == ids{toy::id_of(w, "he"), toy::id_of(w, "ll")});
}

TEST_CASE("bpe breaks rank ties leftmost first", "[tokenizer]") {
  const auto v = toy::make({"a a", "aa aa"});
  specdec::tokenizer t(v);
  const token_id aa = toy::id_of(v, "aa"), aaaa = toy::id_of(v, "aaaa");
  CHECK(t.encode("aaa") == ids{aa, 'a'});
  CHECK(t.encode("aaaa") == ids{aaaa});
  CHECK(t.encode("aaaaa") == ids{aaaa, 'a'});
  CHECK(t.encode("aaaaaa") == ids{aaaa, aa});
}

TEST_CASE("bpe works inside pre-tokenizer pieces only", "[tokenizer]") {
  const auto v = toy::make({"\xC4\xA0 w", "\xC4\xA0w o", "a \xC4\xA0"});  // "Ġ w", "Ġw o", "a Ġ"
  specdec::tokenizer t(v);
  // "a wo" splits into "a" and " wo": the merge "a Ġ" is never used across the cut.
  CHECK(t.encode("a wo") == ids{'a', toy::id_of(v, "\xC4\xA0wo")});
  CHECK(t.decode(t.encode("a wo")) == "a wo");
}

TEST_CASE("the word cache gives the same ids as a fresh tokenizer", "[tokenizer]") {
  const auto v = toy::make({"t h", "th e", "\xC4\xA0 th", "\xC4\xA0th e"});
  specdec::tokenizer warm(v);
  const std::string text = "the the then other the";
  const ids first = warm.encode(text);
  CHECK(warm.encode(text) == first);
  specdec::tokenizer cold(v);
  CHECK(cold.encode(text) == first);
  CHECK(first.front() == toy::id_of(v, "the"));
}

TEST_CASE("control tokens are never produced from plain text; parse_special matches them", "[tokenizer]") {
  // "<|>" is one pre-tokenizer piece, and the merges would build the control token from it.
  const auto v = toy::make(
      {"< |", "<| >"},
      {{"<|>", token_type::control}, {"<|>x", token_type::control}, {"<u>", token_type::user_defined}});
  specdec::tokenizer t(v);
  const token_id ctl = 256, ctl_x = 257, user = 258;
  REQUIRE(toy::id_of(v, "<|>") == ctl);

  const ids plain = t.encode("a<|>b");
  CHECK(plain == ids{'a', toy::id_of(v, "<|"), '>', 'b'});  // the merge "<| >" is dropped
  CHECK(t.decode(plain) == "a<|>b");

  CHECK(t.encode("a<|>b", {.parse_special = true}) == ids{'a', ctl, 'b'});
  CHECK(t.encode("<|>x<|>", {.parse_special = true}) == ids{ctl_x, ctl});  // longest match first
  CHECK(t.encode("<|", {.parse_special = true}) == t.encode("<|"));        // incomplete: plain text
  CHECK(t.decode(t.encode("<|>x<|>", {.parse_special = true}), {.include_control = true}) == "<|>x<|>");

  // User-defined tokens are added text: matched whole even without parse_special.
  CHECK(t.encode("a<u>b") == ids{'a', user, 'b'});
  CHECK(t.decode(t.encode("a<u>b")) == "a<u>b");
}

TEST_CASE("decode hides control tokens unless asked; token_to_piece agrees", "[tokenizer]") {
  auto v = toy::make({}, {{"<|bos|>", token_type::control}});
  v.bos_id = 256;
  v.add_bos = true;
  specdec::tokenizer t(v);
  const ids with_bos = t.encode("hi", {.add_special = true});
  CHECK(with_bos == ids{256, 'h', 'i'});
  CHECK(t.encode("hi") == ids{'h', 'i'});
  CHECK(t.decode(with_bos) == "hi");
  CHECK(t.decode(with_bos, {.include_control = true}) == "<|bos|>hi");
  CHECK(t.token_to_piece(256).empty());
  CHECK(t.token_to_piece(256, {.include_control = true}) == "<|bos|>");
  CHECK(t.token_to_piece(' ') == " ");
  CHECK(t.text_of(' ') == "\xC4\xA0");
  CHECK_THROWS_AS(t.decode(ids{257}), specdec::error);
  CHECK_THROWS_AS(t.token_to_piece(-1), specdec::error);
}

TEST_CASE("a byte without a token is dropped, as Hugging Face does", "[tokenizer]") {
  auto v = toy::make({"! !"});
  v.tokens[0x1D] = "<unused-1d>";  // the vocabulary has no token for byte 0x1D
  v.token_types[0x1D] = static_cast<std::int32_t>(token_type::unused);
  specdec::tokenizer t(v);
  CHECK(t.bytes_without_token() == std::vector<std::uint8_t>{0x1D});
  // Dropped before merging, so the neighbours merge across it.
  CHECK(t.encode("!\x1D!") == ids{toy::id_of(v, "!!")});
  CHECK(t.decode(t.encode("a\x1D"
                          "b")) == "ab");
}

TEST_CASE("encode never fails on random bytes and decode gives them back", "[tokenizer]") {
  const auto v = toy::make({"\xC4\xA0 t", "h e", "\xC3\x83 \xC2\xA9", "\xC4\xA0t he", "1 2"},
                           {{"<|s|>", token_type::control}});
  std::mt19937 rng(20240531);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 64), pick(0, 5);
  const std::vector<std::string> chunks = {" the", "\xC3\xA9", "<|s|>", "\xF0\x9F\x98\x80", "12", "\n\n  "};
  for (const char* pre : {"gpt2", "smollm", "llama-bpe"}) {
    auto w = v;
    w.pre = pre;
    specdec::tokenizer t(w);
    for (int iter = 0; iter < 2000; ++iter) {
      std::string s;
      for (int i = length(rng); i > 0; --i) {
        if (pick(rng) == 0) {
          s += chunks[static_cast<std::size_t>(pick(rng))];
        } else {
          s += static_cast<char>(byte(rng));
        }
      }
      const ids a = t.encode(s);
      REQUIRE(t.decode(a) == s);
      REQUIRE(t.encode(s) == a);  // deterministic, cached or not
      const ids b = t.encode(s, {.parse_special = true});
      REQUIRE(t.decode(b, {.include_control = true}) == s);
    }
  }
}

TEST_CASE("a bad vocabulary is rejected with an error naming the problem", "[tokenizer]") {
  using specdec::error_category;
  const auto good = toy::make({"a b"});
  CHECK_NOTHROW(specdec::tokenizer(good));

  auto v = good;
  v.tokens.push_back("ab");
  v.token_types.push_back(1);
  expect_error(v, error_category::format, "'ab' appears twice");

  v = good;
  v.merges.push_back("a zz");
  expect_error(v, error_category::format, "names 'zz', which is not a token");

  v = good;
  v.merges.push_back("b a");
  expect_error(v, error_category::format, "makes 'ba', which is not a token");

  v = good;
  v.merges.push_back("ab");
  expect_error(v, error_category::format, "is not of the form 'left right'");

  v = good;
  v.eos_id = static_cast<token_id>(v.tokens.size());
  expect_error(v, error_category::format, "eos id 257 is out of range");

  v = good;
  v.token_types[3] = 9;
  expect_error(v, error_category::format, "unknown token type 9");

  v = good;
  v.token_types.pop_back();
  expect_error(v, error_category::format, "257 tokens but 256 token types");

  v = good;
  v.tokens[5].clear();
  expect_error(v, error_category::format, "token 5 is empty");

  v = good;
  v.tokens.clear();
  v.token_types.clear();
  v.merges.clear();
  expect_error(v, error_category::format, "no tokens");

  v = good;
  v.pre = "falcon";
  expect_error(v, error_category::unsupported, "'falcon'");

  v = good;
  v.model = "llama";
  expect_error(v, error_category::unsupported, "tokenizer model (tokenizer.ggml.model) 'llama'");
}
