// Small hand-made byte-level vocabularies for the tokenizer unit tests: the 256 byte tokens first (so
// the id of a byte's token is the byte value), then the extra tokens (from id 256), then one token per
// merge whose result is not a token yet.
#pragma once

#include <algorithm>
#include <cstdint>
#include <specdec/tokenizer/byte_alphabet.hpp>
#include <specdec/tokenizer/vocabulary.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace toy {

struct extra_token {
  std::string text;
  specdec::token_type type;
};

// The byte alphabet spelling of raw text: toy::spell("a b") == "aĠb".
inline std::string spell(std::string_view raw) { return specdec::byte_alphabet::spell(raw); }

// `merges` are spelled in the byte alphabet, as in a GGUF file: "l l", "Ġ t".
inline specdec::vocabulary make(const std::vector<std::string>& merges,
                                const std::vector<extra_token>& extra = {}, std::string pre = "gpt2") {
  specdec::vocabulary v;
  v.pre = std::move(pre);
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(spell(std::string(1, static_cast<char>(b))));
    v.token_types.push_back(static_cast<std::int32_t>(specdec::token_type::normal));
  }
  for (const extra_token& t : extra) {
    v.tokens.push_back(t.text);
    v.token_types.push_back(static_cast<std::int32_t>(t.type));
  }
  for (const std::string& m : merges) {
    const std::size_t space = m.find(' ');
    std::string joined = m.substr(0, space) + m.substr(space + 1);
    if (std::find(v.tokens.begin(), v.tokens.end(), joined) == v.tokens.end()) {
      v.tokens.push_back(std::move(joined));
      v.token_types.push_back(static_cast<std::int32_t>(specdec::token_type::normal));
    }
    v.merges.push_back(m);
  }
  return v;
}

// Id of a token of `v` by its spelling; -1 when absent.
inline specdec::token_id id_of(const specdec::vocabulary& v, const std::string& spelled) {
  const auto it = std::find(v.tokens.begin(), v.tokens.end(), spelled);
  return it == v.tokens.end() ? -1 : static_cast<specdec::token_id>(it - v.tokens.begin());
}

}  // namespace toy
