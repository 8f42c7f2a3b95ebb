// A byte-level BPE vocabulary as plain data: the tokenizer.* metadata of a GGUF file (or any other
// source) copied into vectors and strings, with no file type in sight. The tokenizer validates it
// when it is built from it (tokenizer.hpp); from_gguf.hpp fills one from a GGUF file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "specdec/core/types.hpp"

namespace specdec {

// GGUF token type codes (tokenizer.ggml.token_type; llama.cpp's llama_token_type).
enum class token_type : std::int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,       // <|im_start|>, <|endoftext|>: matched in text only when asked, hidden by decode
  user_defined = 4,  // added tokens such as <think>: always matched whole in text, decoded as text
  unused = 5,
  byte = 6,
};

struct vocabulary {
  std::string model = "gpt2";             // tokenizer.ggml.model; only "gpt2" (byte-level BPE)
  std::vector<std::string> tokens;        // [n_vocab] tokenizer.ggml.tokens, in the byte alphabet
  std::vector<std::int32_t> token_types;  // [n_vocab] token_type codes, or empty: all normal
  std::vector<std::string> merges;        // [n_merges] "left right", best (lowest rank) first
  std::string pre;                        // tokenizer.ggml.pre: "gpt2", "smollm", "llama-bpe", ...
  token_id bos_id = -1;                   // -1 when absent
  token_id eos_id = -1;
  token_id unk_id = -1;
  token_id pad_id = -1;
  bool add_bos = false;       // tokenizer.ggml.add_bos_token
  std::string chat_template;  // tokenizer.chat_template (Jinja), may be empty
};

}  // namespace specdec
