// Character classes of the pre-tokenizer patterns: \p{L}, \p{N}, \s and "other" (everything else,
// [^\s\p{L}\p{N}]). ASCII goes through a small table, the rest through a binary search of the
// generated range tables (unicode_tables.hpp). An invalid UTF-8 byte is classified as other.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <span>

#include "specdec/tokenizer/unicode_tables.hpp"

namespace specdec::unicode {

enum class char_class : std::uint8_t { other, letter, number, white_space };

constexpr bool in_ranges(std::span<const code_range> ranges, char32_t cp) noexcept {
  // First range whose hi >= cp; the code point is in the table when that range starts at or before it.
  const auto it = std::lower_bound(ranges.begin(), ranges.end(), cp,
                                   [](const code_range& r, char32_t c) { return r.hi < c; });
  return it != ranges.end() && it->lo <= cp;
}

constexpr char_class classify_slow(char32_t cp) noexcept {
  if (in_ranges(letter_ranges, cp)) return char_class::letter;
  if (in_ranges(number_ranges, cp)) return char_class::number;
  if (in_ranges(white_space_ranges, cp)) return char_class::white_space;
  return char_class::other;
}

inline constexpr std::array<char_class, 128> ascii_classes = [] {
  std::array<char_class, 128> table{};
  for (char32_t c = 0; c < 128; ++c) table[c] = classify_slow(c);
  return table;
}();

constexpr char_class classify(char32_t cp) noexcept {
  return cp < 128 ? ascii_classes[cp] : classify_slow(cp);
}

}  // namespace specdec::unicode
