// Finds special tokens written literally in text, before any pre-tokenization: leftmost match first,
// and the longest token among those starting there (Hugging Face's added-vocabulary rule). Control
// tokens (<|im_start|>) are looked for only when the caller parses specials; user-defined tokens are
// always looked for, as in Hugging Face and llama.cpp. Tokens are bucketed by their first byte.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "specdec/core/types.hpp"

namespace specdec {

class special_token_matcher {
 public:
  struct match {
    std::size_t pos;  // byte offset of the token text
    std::size_t size;
    token_id id;
  };

  // `always`: matched even when specials are not parsed (user-defined tokens). Empty texts are ignored.
  void add(std::string text, token_id id, bool always) {
    if (text.empty()) return;
    const auto first = static_cast<unsigned char>(text[0]);
    auto& bucket = buckets_[first];
    bucket.push_back({std::move(text), id, always});
    // Longest first, so the first hit at a position is the longest one.
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const entry& a, const entry& b) { return a.text.size() > b.text.size(); });
    first_any_[first] = true;
    if (always) first_always_[first] = true;
  }

  [[nodiscard]] bool empty(bool parse_special) const noexcept {
    const auto& first = parse_special ? first_any_ : first_always_;
    return std::none_of(first.begin(), first.end(), [](bool b) { return b; });
  }

  // The first special token in text[from, end), if any.
  [[nodiscard]] std::optional<match> find(std::string_view text, std::size_t from, bool parse_special) const {
    const auto& first = parse_special ? first_any_ : first_always_;
    for (std::size_t pos = from; pos < text.size(); ++pos) {
      const auto c = static_cast<unsigned char>(text[pos]);
      if (!first[c]) continue;
      for (const entry& e : buckets_[c]) {
        if ((parse_special || e.always) && text.substr(pos, e.text.size()) == e.text) {
          return match{pos, e.text.size(), e.id};
        }
      }
    }
    return std::nullopt;
  }

 private:
  struct entry {
    std::string text;
    token_id id;
    bool always;
  };
  std::array<std::vector<entry>, 256> buckets_{};
  std::array<bool, 256> first_any_{};     // some token starts with this byte
  std::array<bool, 256> first_always_{};  // some always-matched token starts with this byte
};

}  // namespace specdec
