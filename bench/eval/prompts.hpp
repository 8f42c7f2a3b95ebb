// Evaluation prompts read from JSONL in the MT-bench shape, one object per line:
//   {"id" or "question_id": string or number, "category": string, "turns": [string, ...]}
// Only the first turn is used. A bad file or line is a specdec::error naming the file and line, so
// specdec-eval can print one clear "error:" line and exit 2.
#pragma once

#include <specdec/error.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace specdec::eval {

struct eval_prompt {
  std::string id;
  std::string category;
  std::string text;  // the first turn
};

inline constexpr const char* default_prompts_name = "data/prompts/dev.jsonl";

// The prompt file used when --prompts is not given: the source tree's file the build was configured
// with, then data/prompts/dev.jsonl in the working directory, then above the executable.
inline std::string default_prompts_path() {
  namespace fs = std::filesystem;
  std::error_code ec;
#ifdef SPECDEC_DEV_PROMPTS
  if (fs::is_regular_file(SPECDEC_DEV_PROMPTS, ec)) return SPECDEC_DEV_PROMPTS;
#endif
  if (fs::is_regular_file(default_prompts_name, ec)) return default_prompts_name;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      if (fs::path p = dir / default_prompts_name; fs::is_regular_file(p, ec)) return p.string();
    }
  }
  throw error(error_category::io, std::string("default prompt file ") + default_prompts_name +
                                      " not found (pass --prompts FILE)");
}

namespace detail {

inline std::string id_of(const nlohmann::json& j, const std::string& where) {
  for (const char* key : {"id", "question_id"}) {
    const auto it = j.find(key);
    if (it == j.end()) continue;
    if (it->is_string() && !it->get<std::string>().empty()) return it->get<std::string>();
    if (it->is_number_integer()) return std::to_string(it->get<std::int64_t>());
    throw error(error_category::format, where + ": \"" + key + "\" must be a non-empty string or an integer");
  }
  throw error(error_category::format, where + ": no \"id\" or \"question_id\"");
}

}  // namespace detail

// Reads every non-blank line of `path`; ids must be unique and every prompt non-empty.
inline std::vector<eval_prompt> read_prompts(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw error(error_category::io, "cannot read prompt file " + path + ": no such file");
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw error(error_category::io, "cannot read prompt file " + path + ": not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(error_category::io, "cannot read prompt file " + path);

  std::vector<eval_prompt> prompts;
  std::string line;
  for (std::int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw error(error_category::format, where + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw error(error_category::format, where + ": expected a JSON object");
    eval_prompt p;
    p.id = detail::id_of(j, where);
    const auto cat = j.find("category");
    if (cat != j.end() && !(cat->is_string() && !cat->get<std::string>().empty())) {
      throw error(error_category::format, where + ": \"category\" must be a non-empty string");
    }
    p.category = cat != j.end() ? cat->get<std::string>() : "uncategorized";
    const auto turns = j.find("turns");
    if (turns == j.end() || !turns->is_array() || turns->empty() || !(*turns)[0].is_string() ||
        (*turns)[0].get<std::string>().empty()) {
      throw error(error_category::format, where + ": \"turns\" must be an array whose first element is a non-empty string");
    }
    p.text = (*turns)[0].get<std::string>();
    for (const auto& q : prompts) {
      if (q.id == p.id) throw error(error_category::format, where + ": duplicate id \"" + p.id + "\"");
    }
    prompts.push_back(std::move(p));
  }
  if (in.bad()) throw error(error_category::io, "cannot read prompt file " + path);
  if (prompts.empty()) throw error(error_category::format, path + ": no prompts");
  return prompts;
}

}  // namespace specdec::eval
