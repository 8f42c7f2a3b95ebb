// A vocabulary checked and turned into lookup tables: token text -> id, byte -> id, the merge table,
// the decoded bytes of every token, and the special-token matcher. Building one validates the plain
// vocabulary and throws specdec::error naming the first problem (duplicate token, merge naming an
// unknown token, id out of range, unsupported model or pre-tokenizer, ...).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "specdec/error.hpp"
#include "specdec/tokenizer/bpe.hpp"
#include "specdec/tokenizer/byte_alphabet.hpp"
#include "specdec/tokenizer/pretokenize.hpp"
#include "specdec/tokenizer/special_tokens.hpp"
#include "specdec/tokenizer/vocabulary.hpp"

namespace specdec {

namespace tokenizer_detail {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// For messages: the token text, cut short.
inline std::string quote_token(std::string_view text) {
  constexpr std::size_t max_chars = 40;
  std::string out(1, '\'');
  out.append(text.substr(0, max_chars));
  out.append(text.size() > max_chars ? "...'" : "'");
  return out;
}

[[noreturn]] inline void fail(error_category category, const std::string& what) {
  throw error(category, "tokenizer: " + what);
}

}  // namespace tokenizer_detail

struct compiled_vocabulary {
  pre_tokenizer pre = pre_tokenizer::gpt2;
  std::vector<std::string> texts;   // [n_vocab] token text in the byte alphabet (respelled if needed)
  std::vector<token_type> types;    // [n_vocab]
  std::vector<std::string> pieces;  // [n_vocab] the bytes each token stands for
  std::unordered_map<std::string, token_id, tokenizer_detail::string_hash, std::equal_to<>> ids;
  std::array<token_id, 256> byte_ids{};  // [256] token of each single byte, -1 when the vocabulary has none
  merge_table merges;
  special_token_matcher specials;
  token_id bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false;
  std::string chat_template;

  explicit compiled_vocabulary(const vocabulary& v) {
    using tokenizer_detail::fail;
    using tokenizer_detail::quote_token;
    if (v.model != "gpt2") {
      fail(error_category::unsupported, "unsupported tokenizer model (tokenizer.ggml.model) " +
                                            quote_token(v.model) +
                                            "; only 'gpt2' (byte-level BPE) is implemented");
    }
    pre = pre_tokenizer_from_name(v.pre);
    const std::size_t n = v.tokens.size();
    if (n == 0) fail(error_category::format, "the vocabulary has no tokens");
    if (n > static_cast<std::size_t>(std::numeric_limits<token_id>::max())) {
      fail(error_category::format, "the vocabulary has too many tokens (" + std::to_string(n) + ")");
    }
    if (!v.token_types.empty() && v.token_types.size() != n) {
      fail(error_category::format,
           std::to_string(n) + " tokens but " + std::to_string(v.token_types.size()) + " token types");
    }
    const auto check_id = [&](token_id id, const char* name) {
      if (id < -1 || id >= static_cast<token_id>(n)) {
        fail(error_category::format, std::string(name) + " " + std::to_string(id) + " is out of range [0, " +
                                         std::to_string(n) + ")");
      }
      return id;
    };
    bos_id = check_id(v.bos_id, "bos id");
    eos_id = check_id(v.eos_id, "eos id");
    unk_id = check_id(v.unk_id, "unk id");
    pad_id = check_id(v.pad_id, "pad id");
    add_bos = v.add_bos;
    chat_template = v.chat_template;

    compile_tokens(v);
    compile_merges(v);
  }

  [[nodiscard]] std::optional<token_id> find(std::string_view text) const {
    const auto it = ids.find(text);
    return it == ids.end() ? std::nullopt : std::optional<token_id>(it->second);
  }

  // Control, unknown and unused tokens: not text; decode shows them only when asked.
  [[nodiscard]] bool is_hidden(token_id id) const {
    const token_type t = types[static_cast<std::size_t>(id)];
    return t == token_type::control || t == token_type::unknown || t == token_type::unused;
  }

 private:
  void compile_tokens(const vocabulary& v) {
    using tokenizer_detail::fail;
    using tokenizer_detail::quote_token;
    const std::size_t n = v.tokens.size();
    texts.reserve(n);
    types.reserve(n);
    pieces.reserve(n);
    ids.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::string& raw = v.tokens[i];
      const auto id = static_cast<token_id>(i);
      const std::int32_t code = v.token_types.empty() ? 1 : v.token_types[i];
      if (code < 0 || code > 6) {
        fail(error_category::format, "token " + std::to_string(i) + " " + quote_token(raw) +
                                         " has unknown token type " + std::to_string(code));
      }
      if (raw.empty()) fail(error_category::format, "token " + std::to_string(i) + " is empty");
      const auto type = static_cast<token_type>(code);
      // Byte-level vocabularies spell tokens in the byte alphabet; a token that is not (some
      // converters write specials raw) is respelled from its UTF-8 bytes, as Hugging Face does.
      std::optional<std::string> bytes = byte_alphabet::unspell(raw);
      std::string text = bytes ? raw : byte_alphabet::spell(raw);
      const bool special = type == token_type::control || type == token_type::user_defined ||
                           type == token_type::unknown || type == token_type::unused;
      // Special tokens stand for their raw text, the others for the bytes they spell.
      pieces.push_back(special || !bytes ? raw : *bytes);
      if (const auto [it, inserted] = ids.try_emplace(text, id); !inserted) {
        fail(error_category::format, "token " + quote_token(raw) + " appears twice (ids " +
                                         std::to_string(it->second) + " and " + std::to_string(i) + ")");
      }
      if (type == token_type::control || type == token_type::user_defined) {
        specials.add(raw, id, type == token_type::user_defined);
      }
      texts.push_back(std::move(text));
      types.push_back(type);
    }
    for (int b = 0; b < 256; ++b) {
      std::string spelled;
      utf8::append(spelled, byte_alphabet::code_point_of[static_cast<std::size_t>(b)]);
      byte_ids[static_cast<std::size_t>(b)] = find(spelled).value_or(-1);
    }
  }

  void compile_merges(const vocabulary& v) {
    using tokenizer_detail::fail;
    using tokenizer_detail::quote_token;
    merges.reserve(v.merges.size());
    const auto lookup = [&](std::string_view part, std::size_t rank, std::string_view merge) {
      // A merge is written in the byte alphabet; respell a part that is not, like the tokens.
      const auto id = byte_alphabet::unspell(part) ? find(part) : find(byte_alphabet::spell(part));
      if (!id) {
        fail(error_category::format, "merge " + std::to_string(rank) + " " + quote_token(merge) + " names " +
                                         quote_token(part) + ", which is not a token");
      }
      return *id;
    };
    for (std::size_t rank = 0; rank < v.merges.size(); ++rank) {
      const std::string& merge = v.merges[rank];
      const std::size_t space = merge.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == merge.size() ||
          merge.find(' ', space + 1) != std::string::npos) {
        fail(error_category::format,
             "merge " + std::to_string(rank) + " " + quote_token(merge) + " is not of the form 'left right'");
      }
      const token_id left = lookup(std::string_view(merge).substr(0, space), rank, merge);
      const token_id right = lookup(std::string_view(merge).substr(space + 1), rank, merge);
      const std::string joined =
          texts[static_cast<std::size_t>(left)] + texts[static_cast<std::size_t>(right)];
      const std::optional<token_id> result = find(joined);
      if (!result) {
        fail(error_category::format, "merge " + std::to_string(rank) + " " + quote_token(merge) + " makes " +
                                         quote_token(joined) + ", which is not a token");
      }
      // Special tokens never come out of plain text: drop a merge that would build one.
      if (types[static_cast<std::size_t>(*result)] == token_type::control ||
          types[static_cast<std::size_t>(*result)] == token_type::user_defined) {
        continue;
      }
      merges.insert(left, right, {static_cast<std::int32_t>(rank), *result});
    }
  }
};

}  // namespace specdec
