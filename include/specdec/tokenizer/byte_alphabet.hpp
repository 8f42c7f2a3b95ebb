// The GPT-2 byte-level alphabet: a bijection from the 256 byte values to 256 printable code points,
// in which byte-level BPE vocabularies spell their tokens ("Ġ" is the space byte 0x20, "Ċ" is '\n').
// Printable Latin-1 bytes (! .. ~, ¡ .. ¬, ® .. ÿ) stand for themselves; the other 68 bytes map, in
// increasing order, to U+0100, U+0101, ... (bytes_to_unicode() of GPT-2's encoder.py).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "specdec/tokenizer/utf8.hpp"

namespace specdec::byte_alphabet {

constexpr bool stands_for_itself(std::uint8_t b) noexcept {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
}

// [256]: the code point that spells each byte.
inline constexpr std::array<char32_t, 256> code_point_of = [] {
  std::array<char32_t, 256> table{};
  char32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    table[b] = stands_for_itself(static_cast<std::uint8_t>(b)) ? static_cast<char32_t>(b) : next++;
  }
  return table;
}();

// The byte a code point spells, or -1 when it is not in the alphabet (all spellings are < U+0144).
constexpr int byte_of(char32_t cp) noexcept {
  if (cp < 0x100) return stands_for_itself(static_cast<std::uint8_t>(cp)) ? static_cast<int>(cp) : -1;
  for (int b = 0; b < 256; ++b) {
    if (code_point_of[b] == cp) return b;
  }
  return -1;
}

// The alphabet spelling of raw bytes: "a b" -> "aĠb".
inline std::string spell(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) utf8::append(out, code_point_of[static_cast<std::uint8_t>(c)]);
  return out;
}

// The raw bytes of an alphabet spelling, or nullopt when `spelled` is not made of alphabet
// code points only (invalid UTF-8 included).
inline std::optional<std::string> unspell(std::string_view spelled) {
  std::string out;
  out.reserve(spelled.size());
  for (std::size_t pos = 0; pos < spelled.size();) {
    const utf8::unit u = utf8::decode(spelled, pos);
    const int b = u.valid ? byte_of(u.code_point) : -1;
    if (b < 0) return std::nullopt;
    out += static_cast<char>(b);
    pos += u.n_bytes;
  }
  return out;
}

}  // namespace specdec::byte_alphabet
