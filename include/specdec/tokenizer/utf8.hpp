// Strict UTF-8 decoding for the tokenizer, one code point at a time, that never fails.
// A byte that does not start a well-formed sequence (stray continuation, overlong form, surrogate,
// value past U+10FFFF, truncated sequence) comes back as a unit of its own with valid = false; the
// next call starts at the following byte. So every input splits into units that cover it exactly,
// and invalid bytes survive tokenization unchanged instead of becoming U+FFFD.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace specdec::utf8 {

struct unit {
  char32_t code_point;   // the decoded value; for an invalid byte, the byte value itself
  std::uint8_t n_bytes;  // 1..4; always 1 when !valid
  bool valid;
};

// Decodes the unit that starts at text[pos]; pos < text.size().
constexpr unit decode(std::string_view text, std::size_t pos) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(text[i]); };
  const std::uint8_t b0 = byte(pos);
  if (b0 < 0x80) return {b0, 1, true};
  const unit invalid{b0, 1, false};
  std::size_t n = 0;
  char32_t cp = 0;
  std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte (excludes overlongs etc.)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2, cp = b0 & 0x1Fu;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3, cp = b0 & 0x0Fu;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4, cp = b0 & 0x07u;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // past U+10FFFF
  } else {
    return invalid;  // continuation byte, C0, C1, F5..FF
  }
  if (pos + n > text.size()) return invalid;
  for (std::size_t i = 1; i < n; ++i) {
    const std::uint8_t b = byte(pos + i);
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return invalid;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  return {cp, static_cast<std::uint8_t>(n), true};
}

// Appends the UTF-8 form of a valid code point (not a surrogate, at most U+10FFFF).
inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace specdec::utf8
