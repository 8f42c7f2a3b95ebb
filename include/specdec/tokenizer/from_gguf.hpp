// Glue from a GGUF file to the tokenizer: copies the tokenizer.* metadata into a plain vocabulary
// (vocabulary.hpp) and builds the tokenizer from it. Errors name the file: a missing or mistyped
// key comes from the reader, a bad vocabulary from the tokenizer's validation.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "specdec/error.hpp"
#include "specdec/model/gguf/reader.hpp"
#include "specdec/tokenizer/tokenizer.hpp"
#include "specdec/tokenizer/vocabulary.hpp"

namespace specdec {

inline vocabulary vocabulary_from_gguf(const gguf::file& f) {
  vocabulary v;
  v.model = f.get<std::string>("tokenizer.ggml.model");
  if (v.model != "gpt2") {
    throw error(error_category::unsupported, f.source() + ": tokenizer.ggml.model is '" + v.model +
                                                 "'; only 'gpt2' (byte-level BPE) is implemented");
  }
  v.tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
  if (f.contains("tokenizer.ggml.token_type")) {
    v.token_types = f.get_array<std::int32_t>("tokenizer.ggml.token_type");
  }
  v.merges = f.get_array<std::string>("tokenizer.ggml.merges");
  v.pre = f.get_or<std::string>("tokenizer.ggml.pre", "");
  const auto id = [&](std::string_view key) -> token_id {
    const std::optional<std::int64_t> value = f.get_optional<std::int64_t>(key);
    if (!value) return -1;
    if (*value < 0 || *value > std::numeric_limits<token_id>::max()) {
      throw error(error_category::format, f.source() + ": " + std::string(key) + " = " +
                                              std::to_string(*value) + " is not a token id");
    }
    return static_cast<token_id>(*value);
  };
  v.bos_id = id("tokenizer.ggml.bos_token_id");
  v.eos_id = id("tokenizer.ggml.eos_token_id");
  v.unk_id = id("tokenizer.ggml.unknown_token_id");
  v.pad_id = id("tokenizer.ggml.padding_token_id");
  v.add_bos = f.get_or<bool>("tokenizer.ggml.add_bos_token", false);
  v.chat_template = f.get_or<std::string>("tokenizer.chat_template", "");
  return v;
}

inline tokenizer tokenizer_from_gguf(const gguf::file& f) {
  try {
    return tokenizer(vocabulary_from_gguf(f));
  } catch (const error& e) {
    const std::string what = e.what();
    if (what.rfind(f.source(), 0) == 0) throw;  // already names the file
    throw error(e.category(), f.source() + ": " + what);
  }
}

}  // namespace specdec
