// Decoding methods by name, shared by specdec-generate and specdec-eval: the drafter, its default
// tree budget, and one call that runs the decode loop with the right acceptance rule.
//   ar                autoregressive baseline (root-only trees)
//   token-recycling   Token Recycling (arXiv 2408.08696)
//   lookahead         Lookahead trie (arXiv 2312.12728)
#pragma once

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/drafters/any_drafter.hpp>
#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/drafters/token_recycling.hpp>
#include <specdec/error.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/sampling.hpp>

#include <string>
#include <vector>

namespace specdec::programs {

inline std::vector<std::string> method_names() { return {"ar", "token-recycling", "lookahead"}; }

// Default tree budgets (nodes per step, root included) for this CPU, from the budget sweep in
// docs/benchmarks.md.
inline constexpr std::int32_t default_token_recycling_budget = 5;
inline constexpr std::int32_t default_lookahead_budget = 5;

struct method {
  std::string name;
  any_drafter drafter;
  std::int32_t budget = 1;  // tree nodes per step, root included
};

// budget 0 = the method's default for this CPU.
inline method make_method(const std::string& name, std::int32_t n_vocab, std::int32_t budget = 0) {
  if (name == "ar") return method{name, any_drafter(null_drafter{}), 1};
  if (name == "token-recycling") {
    // The greedy static tree of exactly budget - 1 drafted nodes (tree_template.hpp).
    const std::int32_t b = budget > 0 ? budget : default_token_recycling_budget;
    if (b < 2) throw error(error_category::invalid_argument, "token-recycling needs a budget of at least 2 nodes");
    token_recycling_options o;
    o.tree = "tr-" + std::to_string(b - 1);
    return method{name, any_drafter(token_recycling_drafter(n_vocab, o)), b};
  }
  if (name == "lookahead") {
    lookahead_options o;
    o.decoding_length = budget > 0 ? budget : default_lookahead_budget;
    o.validate();
    return method{name, any_drafter(lookahead_trie_drafter(o)), o.decoding_length};
  }
  std::string valid;
  for (const auto& n : method_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw error(error_category::invalid_argument, "unknown method '" + name + "' (valid: " + valid + ")");
}

// Runs the decode loop: greedy rule at temperature 0, the lossless sampling rule otherwise. Model is
// llama_cpu or a wrapper of it (skip::skip_decode).
template <class Model>
generate_result run_method(Model& model, method& m, std::span<const token_id> prompt, const sampling_params& sp,
                           generate_options opt) {
  opt.budget = m.budget;
  if (sp.greedy()) {
    greedy_rule rule;
    return generate(model, m.drafter, rule, prompt, opt);
  }
  sampling_rule rule{sp};
  return generate(model, m.drafter, rule, prompt, opt);
}

}  // namespace specdec::programs
