// Byte-level BPE tokenizer for GGUF vocabularies with tokenizer.ggml.model = "gpt2", matching the
// token ids of Hugging Face tokenizers. encode: special tokens found in the text (control ones only
// with parse_special), the text between them pre-tokenized (pretokenize.hpp), each piece's bytes
// spelled as byte tokens and merged (bpe.hpp), with a cache of words already seen. decode: the bytes
// of each token; control tokens are left out unless include_control. For any byte string s,
// decode(encode(s)) == s, less the bytes that have no byte token (Hugging Face drops those too).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "specdec/error.hpp"
#include "specdec/tokenizer/compiled_vocabulary.hpp"

namespace specdec {

struct encode_options {
  // Match control tokens (<|im_start|>) written in the text, longest first.
  bool parse_special = false;
  // Prepend BOS when the vocabulary asks for it (add_bos), as Hugging Face's add_special_tokens.
  bool add_special = false;
};

struct decode_options {
  bool include_control = false;  // write control, unknown and unused tokens as their text
};

// Not thread-safe: encode updates the word cache. Copies share the immutable tables and are cheap, so
// give each thread its own copy.
class tokenizer {
 public:
  static constexpr std::size_t max_cached_words = std::size_t{1} << 16;

  // Validates the vocabulary; throws specdec::error naming the problem.
  explicit tokenizer(const vocabulary& vocab) : vocab_(std::make_shared<const compiled_vocabulary>(vocab)) {}

  std::vector<token_id> encode(std::string_view text, encode_options options = {}) {
    const compiled_vocabulary& v = *vocab_;
    std::vector<token_id> out;
    out.reserve(text.size() / 3 + 2);
    if (options.add_special && v.add_bos && v.bos_id >= 0) out.push_back(v.bos_id);
    if (v.specials.empty(options.parse_special)) {
      encode_text(text, out);
      return out;
    }
    for (std::size_t pos = 0; pos < text.size();) {
      const auto match = v.specials.find(text, pos, options.parse_special);
      const std::size_t end = match ? match->pos : text.size();
      encode_text(text.substr(pos, end - pos), out);
      if (!match) break;
      out.push_back(match->id);
      pos = match->pos + match->size;
    }
    return out;
  }

  [[nodiscard]] std::string decode(std::span<const token_id> ids, decode_options options = {}) const {
    std::string out;
    for (const token_id id : ids) append_piece(out, id, options);
    return out;
  }

  // The bytes one token stands for ("" for a control token unless include_control).
  [[nodiscard]] std::string token_to_piece(token_id id, decode_options options = {}) const {
    std::string out;
    append_piece(out, id, options);
    return out;
  }

  [[nodiscard]] std::int32_t n_vocab() const noexcept {
    return static_cast<std::int32_t>(vocab_->texts.size());
  }
  [[nodiscard]] pre_tokenizer pre() const noexcept { return vocab_->pre; }
  [[nodiscard]] token_id bos_id() const noexcept { return vocab_->bos_id; }
  [[nodiscard]] token_id eos_id() const noexcept { return vocab_->eos_id; }
  [[nodiscard]] token_id unk_id() const noexcept { return vocab_->unk_id; }
  [[nodiscard]] token_id pad_id() const noexcept { return vocab_->pad_id; }
  [[nodiscard]] bool add_bos() const noexcept { return vocab_->add_bos; }
  [[nodiscard]] const std::string& chat_template() const noexcept { return vocab_->chat_template; }

  [[nodiscard]] token_type type_of(token_id id) const { return vocab_->types[checked(id)]; }
  // The token as the vocabulary spells it (byte alphabet: "Ġthe").
  [[nodiscard]] const std::string& text_of(token_id id) const { return vocab_->texts[checked(id)]; }
  // The id of a token from its spelling, if there is one.
  [[nodiscard]] std::optional<token_id> find(std::string_view text) const { return vocab_->find(text); }

  // Byte values with no token of their own: encode drops them (Hugging Face does the same).
  [[nodiscard]] std::vector<std::uint8_t> bytes_without_token() const {
    std::vector<std::uint8_t> out;
    for (int b = 0; b < 256; ++b) {
      if (vocab_->byte_ids[static_cast<std::size_t>(b)] < 0) out.push_back(static_cast<std::uint8_t>(b));
    }
    return out;
  }

 private:
  std::size_t checked(token_id id) const {
    if (id < 0 || id >= n_vocab()) {
      const std::string range = "[0, " + std::to_string(n_vocab()) + ")";
      throw error(error_category::invalid_argument,
                  "tokenizer: token id " + std::to_string(id) + " is out of range " + range);
    }
    return static_cast<std::size_t>(id);
  }

  void append_piece(std::string& out, token_id id, decode_options options) const {
    const std::size_t i = checked(id);
    if (!options.include_control && vocab_->is_hidden(id)) return;
    out += vocab_->pieces[i];
  }

  // Plain text, no special tokens in it.
  void encode_text(std::string_view text, std::vector<token_id>& out) {
    for_each_piece(text, vocab_->pre, [&](std::string_view piece) { encode_word(piece, out); });
  }

  void encode_word(std::string_view word, std::vector<token_id>& out) {
    const compiled_vocabulary& v = *vocab_;
    if (word.size() == 1) {
      if (const token_id id = v.byte_ids[static_cast<unsigned char>(word[0])]; id >= 0) out.push_back(id);
      return;
    }
    if (const auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
    symbols_.clear();
    for (const char c : word) {
      if (const token_id id = v.byte_ids[static_cast<unsigned char>(c)]; id >= 0) symbols_.push_back(id);
    }
    const std::size_t first = out.size();
    bpe_merge(symbols_, v.merges, scratch_, out);
    if (cache_.size() >= max_cached_words) cache_.clear();
    cache_.emplace(std::string(word),
                   std::vector<token_id>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
  }

  std::shared_ptr<const compiled_vocabulary> vocab_;
  std::unordered_map<std::string, std::vector<token_id>, tokenizer_detail::string_hash, std::equal_to<>>
      cache_;
  std::vector<token_id> symbols_;  // [n_bytes] of the word being merged
  bpe_scratch scratch_;
};

}  // namespace specdec
