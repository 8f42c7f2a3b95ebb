// Pre-tokenizers: the regex splits that cut text into pieces before byte-level BPE, written by hand
// (std::regex is slow and has no Unicode classes). Each matcher does at one position what a
// backtracking engine (Oniguruma, used by Hugging Face tokenizers) does with the pattern. Text is
// decoded as UTF-8 first; an invalid byte is one unit of class "other" (like punctuation), so the
// pieces always cover the input bytes exactly, invalid ones included.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "specdec/error.hpp"
#include "specdec/tokenizer/unicode.hpp"
#include "specdec/tokenizer/utf8.hpp"

namespace specdec {

// gpt2: the GPT-2 pattern; smollm: every \p{N} character cut out on its own first (llama.cpp's
// definition; SmolLM's vocabulary has no token joining a digit to anything), then gpt2 on the rest;
// llama3: the Llama 3 pattern; qwen2: the Qwen2 pattern, Llama 3's with \p{N} instead of \p{N}{1,3}
// (every digit a piece of its own).
enum class pre_tokenizer { gpt2, smollm, llama3, qwen2 };

// tokenizer.ggml.pre names: "gpt2", "default" and "" (absent; Hugging Face falls back to GPT-2 too),
// "smollm", "llama3" / "llama-v3" / "llama-bpe", and "qwen2" / "deepseek-r1-qwen" (the names
// transformers' GGUF converter maps to the Qwen2 pattern and llama.cpp to LLAMA_VOCAB_PRE_TYPE_QWEN2).
// Anything else throws (unsupported).
inline pre_tokenizer pre_tokenizer_from_name(std::string_view name) {
  if (name == "gpt2" || name == "default" || name.empty()) return pre_tokenizer::gpt2;
  if (name == "smollm") return pre_tokenizer::smollm;
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe") return pre_tokenizer::llama3;
  if (name == "qwen2" || name == "deepseek-r1-qwen") return pre_tokenizer::qwen2;
  throw error(error_category::unsupported,
              "tokenizer: unsupported pre-tokenizer (tokenizer.ggml.pre) '" + std::string(name) +
                  "'; supported: gpt2, default, smollm, llama3, llama-v3, llama-bpe, qwen2, deepseek-r1-qwen");
}

constexpr std::string_view to_string(pre_tokenizer p) noexcept {
  switch (p) {
    case pre_tokenizer::gpt2:
      return "gpt2";
    case pre_tokenizer::smollm:
      return "smollm";
    case pre_tokenizer::llama3:
      return "llama3";
    case pre_tokenizer::qwen2:
      return "qwen2";
  }
  return "unknown";
}

namespace pretokenize_detail {

using unicode::char_class;

struct unit {
  char32_t cp;  // code point; 0x110000 + byte for an invalid byte (never equal to a real one)
  char_class cls;
  std::size_t begin;  // byte offset in the text
};

// [n_units + 1]: the units of `text`, then a sentinel whose begin is text.size().
inline std::vector<unit> decode_units(std::string_view text) {
  std::vector<unit> units;
  units.reserve(text.size() + 1);
  for (std::size_t pos = 0; pos < text.size();) {
    const utf8::unit u = utf8::decode(text, pos);
    const std::size_t begin = pos;
    if (u.valid) {
      units.push_back({u.code_point, unicode::classify(u.code_point), begin});
    } else {
      units.push_back({0x110000 + u.code_point, char_class::other, begin});
    }
    pos += u.n_bytes;
  }
  units.push_back({0, char_class::other, text.size()});
  return units;
}

// The matchers: end (exclusive) of the match at i in units [i, n); i < n. Every unit is matched by
// some alternative of both patterns, so the result is always > i.
struct cursor {
  const unit* u;
  std::size_t n;

  bool is(std::size_t i, char_class c) const { return i < n && u[i].cls == c; }
  bool is_cp(std::size_t i, char32_t c) const { return i < n && u[i].cp == c; }
  std::size_t run(std::size_t i, char_class c) const {
    while (i < n && u[i].cls == c) ++i;
    return i;
  }
  // \s+(?!\S) then \s+, for a whitespace run starting at i: all of it at the end of the text, or
  // all but its last unit when more than one (that one goes with the next piece), else the one unit.
  std::size_t white_space_tail(std::size_t i) const {
    const std::size_t end = run(i, char_class::white_space);
    if (end == n || end - i == 1) return end;
    return end - 1;
  }
};

// The contractions 's 't 're 've 'm 'll 'd after an apostrophe at i; `fold` maps case.
template <class Fold>
std::size_t contraction(const cursor& c, std::size_t i, Fold fold) {
  if (!c.is_cp(i, U'\'') || i + 1 >= c.n) return i;
  const char32_t a = fold(c.u[i + 1].cp);
  if (a == U's' || a == U't' || a == U'm' || a == U'd') return i + 2;
  if (i + 2 >= c.n) return i;
  const char32_t b = fold(c.u[i + 2].cp);
  if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return i + 3;
  return i;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+      (GPT-2)
inline std::size_t match_gpt2(const cursor& c, std::size_t i) {
  if (const std::size_t e = contraction(c, i, [](char32_t x) { return x; }); e != i) return e;
  const std::size_t j = c.is_cp(i, U' ') ? i + 1 : i;  // the optional leading space
  if (c.is(j, char_class::letter)) return c.run(j, char_class::letter);
  if (c.is(j, char_class::number)) return c.run(j, char_class::number);
  if (c.is(j, char_class::other)) return c.run(j, char_class::other);
  return c.white_space_tail(i);
}

// Oniguruma's case-insensitive match of the contraction letters: ASCII case, and U+017F (long s)
// folds to 's'. No other code point folds to one of s t r e v m l d.
constexpr char32_t fold_contraction(char32_t x) noexcept {
  if (x >= U'A' && x <= U'Z') return x + 32;
  return x == 0x17F ? U's' : x;
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+
// |\s+(?!\S)|\s+                                             (Llama 3: D = 3; Qwen2: D = 1, i.e. \p{N})
// A digit ends the optional prefix of the letter branch either way, so D changes only how long a
// run of digits one piece takes.
template <std::size_t MaxDigits>
std::size_t match_llama3_family(const cursor& c, std::size_t i) {
  if (const std::size_t e = contraction(c, i, fold_contraction); e != i) return e;
  const auto is_cr_lf = [&](std::size_t k) { return c.is_cp(k, U'\r') || c.is_cp(k, U'\n'); };
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.is(i, char_class::letter)) return c.run(i, char_class::letter);
  if (!c.is(i, char_class::number) && !is_cr_lf(i) && c.is(i + 1, char_class::letter)) {
    return c.run(i + 1, char_class::letter);
  }
  // \p{N}{1,D}
  if (c.is(i, char_class::number)) {
    std::size_t e = i;
    while (e < i + MaxDigits && c.is(e, char_class::number)) ++e;
    return e;
  }
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  const std::size_t j = c.is_cp(i, U' ') ? i + 1 : i;
  if (c.is(j, char_class::other)) {
    std::size_t e = c.run(j, char_class::other);
    while (is_cr_lf(e)) ++e;
    return e;
  }
  // \s*[\r\n]+ : up to and including the last \r or \n of the whitespace run
  const std::size_t end = c.run(i, char_class::white_space);
  for (std::size_t k = end; k > i; --k) {
    if (is_cr_lf(k - 1)) return k;
  }
  return c.white_space_tail(i);
}

inline std::size_t match_llama3(const cursor& c, std::size_t i) { return match_llama3_family<3>(c, i); }
inline std::size_t match_qwen2(const cursor& c, std::size_t i) { return match_llama3_family<1>(c, i); }

}  // namespace pretokenize_detail

// Calls emit(std::string_view piece) for each piece of `text`, in order; the pieces concatenate to
// `text`. Empty text gives no piece.
template <class Emit>
void for_each_piece(std::string_view text, pre_tokenizer kind, Emit&& emit) {
  using namespace pretokenize_detail;
  const std::vector<unit> units = decode_units(text);
  const std::size_t n = units.size() - 1;
  const auto piece = [&](std::size_t a, std::size_t b) {
    emit(text.substr(units[a].begin, units[b].begin - units[a].begin));
  };
  const auto split = [&](std::size_t a, std::size_t b, auto match) {
    const cursor c{units.data(), b};
    for (std::size_t i = a; i < b;) {
      const std::size_t e = match(c, i);
      SPECDEC_ASSERT(e > i && e <= b);
      piece(i, e);
      i = e;
    }
  };
  switch (kind) {
    case pre_tokenizer::gpt2:
      split(0, n, match_gpt2);
      break;
    case pre_tokenizer::llama3:
      split(0, n, match_llama3);
      break;
    case pre_tokenizer::qwen2:
      split(0, n, match_qwen2);
      break;
    case pre_tokenizer::smollm:
      for (std::size_t a = 0; a < n;) {
        if (units[a].cls == char_class::number) {
          piece(a, a + 1);
          ++a;
          continue;
        }
        std::size_t b = a;
        while (b < n && units[b].cls != char_class::number) ++b;
        split(a, b, match_gpt2);
        a = b;
      }
      break;
  }
}

inline std::vector<std::string_view> pretokenize(std::string_view text, pre_tokenizer kind) {
  std::vector<std::string_view> pieces;
  for_each_piece(text, kind, [&](std::string_view p) { pieces.push_back(p); });
  return pieces;
}

}  // namespace specdec
