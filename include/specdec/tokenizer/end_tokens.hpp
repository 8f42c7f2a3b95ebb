// The tokens that end a generation: the vocabulary's EOS plus the end-of-turn control tokens that
// chat models use (ChatML's <|im_end|>, Llama 3's <|eot_id|>, ...) when the vocabulary has them.
#pragma once

#include <specdec/tokenizer/tokenizer.hpp>

#include <algorithm>
#include <vector>

namespace specdec {

inline std::vector<token_id> end_of_generation_tokens(const tokenizer& tok) {
  std::vector<token_id> ends;
  if (tok.eos_id() >= 0) ends.push_back(tok.eos_id());
  for (const char* text : {"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>"}) {
    if (const auto id = tok.find(text); id && std::find(ends.begin(), ends.end(), *id) == ends.end()) {
      ends.push_back(*id);
    }
  }
  return ends;
}

}  // namespace specdec
