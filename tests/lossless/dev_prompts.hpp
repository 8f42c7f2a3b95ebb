// Test helper: prompts of data/prompts/dev.jsonl with the model's chat template applied, as the
// programs encode them.
#pragma once

#include <specdec/model/gguf/reader.hpp>
#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/from_gguf.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace specdec::test {

struct dev_prompt {
  std::string id;
  std::vector<token_id> tokens;
};

// The first prompt of every category, in file order.
inline std::vector<dev_prompt> first_prompt_per_category(const gguf::file& f) {
  tokenizer tok = tokenizer_from_gguf(f);  // not const: encode() updates its word cache
  const auto tmpl = chat_template::detect(f.get<std::string>("tokenizer.chat_template"));
  std::ifstream in(SPECDEC_DEV_PROMPTS);
  if (!in) throw std::runtime_error("cannot open " + std::string(SPECDEC_DEV_PROMPTS));
  std::vector<dev_prompt> out;
  std::set<std::string> seen;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    if (!seen.insert(j["category"].get<std::string>()).second) continue;
    const std::vector<chat_message> messages = {{"user", j["turns"][0].get<std::string>()}};
    out.push_back({j["id"].get<std::string>(), tok.encode(tmpl.apply(messages, true), {.parse_special = true})});
  }
  return out;
}

}  // namespace specdec::test
