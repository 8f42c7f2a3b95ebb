// Decoding methods by name, shared by specdec-generate and specdec-eval: the drafter, its default
// tree budget, and one call that runs the decode loop with the right acceptance rule.
//   ar                autoregressive baseline (root-only trees)
//   token-recycling   Token Recycling (arXiv 2408.08696)
//   lookahead         Lookahead trie (arXiv 2312.12728)
//   dyspec            DySpec, Algorithm 1 (arXiv 2410.11744): heap-grown tree, one draft forward per node
//   dyspec-level      DySpec, Algorithm 2: one batched draft forward per tree level, value threshold
//   sps               chain speculative sampling: budget - 1 tokens drawn from the draft
//   specinfer         a fixed k-ary tree drawn from the draft (SpecInfer-style)
//   ppd               parallel prompt decoding (arXiv 2405.18628): trained prompt tokens (--ppd-file)
// The last four need a draft model: --draft-model (a second GGUF with the target's vocabulary) or
// --draft-layers (self-speculation: the target on a subset of its layers; the default when neither
// is given is its first four fifths: on SmolLM2-135M fewer layers are accepted too rarely, see
// docs/methods/dyspec.md).
#pragma once

#include <specdec/core/auto_budget.hpp>
#include <specdec/core/layer_subset.hpp>
#include <specdec/core/restricted_head.hpp>
#include <specdec/drafters/model_drafter.hpp>
#include <specdec/drafters/ppd.hpp>
#include <specdec/drafters/ppd_file.hpp>
#include <specdec/model/gguf/reader.hpp>

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/drafters/any_drafter.hpp>
#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/drafters/token_recycling.hpp>
#include <specdec/error.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/sampling.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace specdec::programs {

inline std::vector<std::string> method_names() {
  return {"ar", "token-recycling", "lookahead", "dyspec", "dyspec-level", "sps", "specinfer", "ppd"};
}

inline bool is_draft_model_method(const std::string& name) {
  return name == "dyspec" || name == "dyspec-level" || name == "sps" || name == "specinfer";
}

// The draft-model flags of both programs.
struct draft_cli_options {
  std::string model;          // --draft-model: a second GGUF
  std::string layers;         // --draft-layers: self-speculation on these target layers
  float temperature = 0.6f;   // --draft-temp
  double threshold = 0;       // --threshold (dyspec-level); 0 = 1 / budget
  std::int32_t top_k = 32;    // --draft-top-k: tokens kept in each draft distribution
  std::int32_t vocab = 0;     // --draft-vocab: the draft's head covers the N most frequent tokens; 0 = all
  std::vector<token_id> always;  // tokens a restricted draft head keeps whatever N (the end tokens; set by the program)
  std::string ppd_file;       // --ppd-file: the prompt-token artifact (default: default_ppd_path)
  std::string model_path;     // the target's file (set by the program; finds the default artifact)
  const gguf::file* model_file = nullptr;  // the target's GGUF (set by the program; checks the artifact)
};

inline void add_draft_options(CLI::App& app, draft_cli_options& d) {
  app.add_option("--draft-model", d.model, "draft GGUF for dyspec / sps / specinfer (same vocabulary as the model)");
  app.add_option("--draft-layers", d.layers,
                 "self-speculation: draft with these layers of the model, e.g. first:24 or 0-20,25-29 (default: the first 4/5)");
  app.add_option("--draft-temp", d.temperature, "draft temperature (default 0.6; 0 = the draft's argmax)")
      ->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--threshold", d.threshold, "dyspec-level: smallest node value drawn from; 0 = 1 / budget")
      ->check(CLI::Range(0.0, 0.999999));
  app.add_option("--draft-top-k", d.top_k, "tokens kept in each draft distribution (default 32; 0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  app.add_option("--draft-vocab", d.vocab,
                 "restrict the draft's head to the N most frequent tokens (the vocabulary's first N ids, BPE merge "
                 "order) plus the end tokens; output stays exact (default 0 = the whole vocabulary)")
      ->check(CLI::Range(0, 1 << 30));
  app.add_option("--ppd-file", d.ppd_file,
                 "ppd: trained prompt tokens (tools/ppd/train.sh); default: data/ppd/<model file name without .gguf>.ppd");
}

// The default PPD artifact of a model file M.gguf: M.ppd in $SPECDEC_PPD_DIR, then data/ppd/ in the
// working directory, then data/ppd/ above the executable, then next to the model.
inline std::string default_ppd_path(const std::string& model_path) {
  namespace fs = std::filesystem;
  const std::string name = fs::path(model_path).stem().string() + ".ppd";
  std::error_code ec;
  std::vector<fs::path> tried;
  if (const char* env = std::getenv("SPECDEC_PPD_DIR"); env != nullptr && *env != '\0') tried.push_back(fs::path(env) / name);
  tried.push_back(fs::path("data") / "ppd" / name);
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      tried.push_back(dir / "data" / "ppd" / name);
    }
  }
  tried.push_back(fs::path(model_path).parent_path() / name);
  for (const auto& p : tried) {
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  throw error(error_category::io, "no PPD artifact " + name + " for " + model_path +
                                      " (looked in $SPECDEC_PPD_DIR, data/ppd/ and next to the model; train one with "
                                      "tools/ppd/train.sh or pass --ppd-file FILE)");
}

// Default tree budgets (nodes per step, root included) for this CPU, from the budget sweeps in
// docs/benchmarks.md. Token Recycling and Lookahead depend on the layer matrices' storage, which
// sets the cost curve: fp32 / bf16 weights (a flat curve: an n-row step costs ~1.1x one row at
// n = 5) take 5; block formats (--weights auto / native / q8: one row is 3x cheaper, a 5-row step
// ~1.6x it) take 2 and 3, the best of the sweep on the dev prompts (Lookahead 1.08-1.09x at 2-3,
// 0.95x at 5; Token Recycling 0.99x at 2, 0.79x at 5).
inline constexpr std::int32_t default_token_recycling_budget = 5;
inline constexpr std::int32_t default_lookahead_budget = 5;
inline constexpr std::int32_t default_token_recycling_budget_blocks = 2;
inline constexpr std::int32_t default_lookahead_budget_blocks = 3;
// Draft-model methods: the best equal-budget points of the 0.5B -> 1.5B sweep on the AVX-512 host
// (docs/methods/dyspec.md, 2026-12-06): DySpec 6 nodes (1.20x greedy, 1.11x at T = 0.7; 8 nodes gave
// 1.06x / 0.98x), the chain 4 (1.15x / 1.11x; 5 gave ~1.0x).
inline constexpr std::int32_t default_dyspec_budget = 6;
inline constexpr std::int32_t default_sps_budget = 4;
inline constexpr std::int32_t default_specinfer_budget = 8;
// PPD: rows per step (candidates plus their prompt-token rows), the best of the sweeps in
// docs/methods/ppd.md: 6 with fp32 / bf16 layer matrices (1.18x over AR), 4 with block formats
// (0.80x median: PPD does not pay with the default weights on this CPU).
inline constexpr std::int32_t default_ppd_budget = 6;
inline constexpr std::int32_t default_ppd_budget_blocks = 4;
// --budget auto (core/auto_budget.hpp, examples/common/auto_budget.hpp): each step's budget is the
// one with the most expected accepted tokens per second under the measured cost curve and the
// drafter's tracked acceptance, at most auto_budget_max rows (PPD: its largest tree, up to 64).
inline constexpr std::int32_t budget_auto = -1;  // what --budget auto parses to
inline constexpr std::int32_t auto_budget_max = 16;
// Whether a method's default budget (--budget 0 or absent) is auto: the one-line switch.
inline constexpr bool auto_budget_default = false;
inline std::int32_t resolve_budget(std::int32_t budget) {
  return budget == 0 && auto_budget_default ? budget_auto : budget;
}

struct method {
  std::string name;
  std::shared_ptr<void> keep;  // what the drafter points into (a draft model); outlives it
  any_drafter drafter;
  std::int32_t budget = 1;     // tree nodes per step, root included
  // Draft-model methods: the drafter's counters (forwards, time), and what drafts.
  std::function<model_drafter_counters()> draft_counters;
  std::string draft_source;
  // --budget auto: `budget` is the cap and auto_policy (given by enable_auto_budget once the cost
  // curve is known) chooses each step's budget; tune_auto_budget is the drafter's customisation.
  bool budget_is_auto = false;
  std::shared_ptr<specdec::auto_budget> auto_policy;
  std::function<void(specdec::auto_budget&)> tune_auto_budget;
};

namespace detail {

template <class Draft>
method model_method(const std::string& name, std::shared_ptr<void> keep, Draft& draft, const draft_cli_options& d,
                    std::int32_t budget, std::string source) {
  model_drafter_options o;
  o.shape = name == "dyspec" ? draft_shape::dyspec
          : name == "dyspec-level" ? draft_shape::dyspec_level
          : name == "sps" ? draft_shape::chain
                          : draft_shape::kary;
  o.temperature = d.temperature;
  o.threshold = d.threshold;
  o.top_k = d.top_k;
  budget = resolve_budget(budget);
  const std::int32_t b = budget == budget_auto ? auto_budget_max
                       : budget > 0 ? budget
                       : o.shape == draft_shape::chain ? default_sps_budget
                       : o.shape == draft_shape::kary ? default_specinfer_budget
                                                      : default_dyspec_budget;
  if (b < 2) throw error(error_category::invalid_argument, name + " needs a budget of at least 2 nodes");
  method m{name, std::move(keep), any_drafter(model_drafter<Draft>(draft, o)), b, {}, {}, false, {}, {}};
  m.budget_is_auto = budget == budget_auto;
  auto* md = m.drafter.target<model_drafter<Draft>>();
  m.draft_counters = [md] { return md->counters(); };
  m.draft_source = std::move(source);
  return m;
}

}  // namespace detail

namespace detail {

// --draft-layers, or the default: the first four fifths of the target's layers.
inline std::string draft_layer_spec(const draft_cli_options& d, std::int32_t n_layers) {
  return d.layers.empty() ? "first:" + std::to_string(std::max(1, 4 * n_layers / 5)) : d.layers;
}

inline std::vector<std::int32_t> draft_layers(const std::string& spec, std::int32_t n_layers) {
  try {
    std::vector<std::int32_t> layers = parse_layer_list(spec);
    check_layer_subset(layers, n_layers);
    return layers;
  } catch (const error& e) {
    throw error(e.category(), "--draft-layers " + spec + ": " + e.what());
  }
}

}  // namespace detail

// Self-speculation on any model that runs layer subsets (the CPU or the CUDA backend): a draft-model
// method whose draft is `target` itself on --draft-layers (default: the first four fifths).
template <layered_sequence_model Model>
method make_self_draft_method(const std::string& name, Model& target, std::int32_t budget, const draft_cli_options& d) {
  const std::string spec = detail::draft_layer_spec(d, target.n_layers());
  auto sub = std::make_shared<layer_subset<Model>>(target, detail::draft_layers(spec, target.n_layers()));
  auto& ref = *sub;
  return detail::model_method(name, sub, ref, d, budget, "layers " + spec);
}

// A draft-model method on `target`: --draft-model loads a second GGUF (same threads, context and
// weight format), else --draft-layers (default: the first four fifths of the target's layers).
inline method make_model_method(const std::string& name, cpu::llama_cpu& target, const cpu::llama_cpu_options& target_opt,
                                std::int32_t budget, const draft_cli_options& d) {
  if (!d.model.empty() && !d.layers.empty()) {
    throw error(error_category::invalid_argument, "--draft-model and --draft-layers exclude each other");
  }
  if (d.vocab > target.n_vocab()) {
    throw error(error_category::invalid_argument, "--draft-vocab " + std::to_string(d.vocab) + " exceeds the vocabulary of " +
                                                      std::to_string(target.n_vocab()) + " tokens");
  }
  const auto head_tokens = [&] { return frequent_tokens(d.vocab, target.n_vocab(), d.always); };
  const std::string head_note = d.vocab > 0 ? ", head " + std::to_string(d.vocab) + " tokens" : "";
  if (!d.model.empty()) {
    const gguf::file f(d.model);
    auto draft = std::make_shared<cpu::llama_cpu>(f, target_opt);
    if (draft->n_vocab() != target.n_vocab()) {
      throw error(error_category::invalid_argument, "--draft-model " + d.model + " has a vocabulary of " +
                                                        std::to_string(draft->n_vocab()) + " tokens, the model " +
                                                        std::to_string(target.n_vocab()));
    }
    if (d.vocab > 0) {
      struct owned {
        std::shared_ptr<cpu::llama_cpu> model;
        restricted_head<cpu::llama_cpu> head;
      };
      auto o = std::make_shared<owned>(owned{draft, restricted_head<cpu::llama_cpu>(*draft, head_tokens())});
      auto& ref = o->head;
      return detail::model_method(name, o, ref, d, budget, "model " + d.model + head_note);
    }
    auto& ref = *draft;
    return detail::model_method(name, draft, ref, d, budget, "model " + d.model);
  }
  if (d.vocab == 0) return make_self_draft_method(name, target, budget, d);
  const std::string spec = detail::draft_layer_spec(d, target.n_layers());
  auto sub = std::make_shared<restricted_head<cpu::llama_cpu>>(target, head_tokens(), detail::draft_layers(spec, target.n_layers()));
  auto& ref = *sub;
  return detail::model_method(name, sub, ref, d, budget, "layers " + spec + head_note);
}

// budget 0 = the method's default for this CPU and, with block_weights, for a model whose layer
// matrices are block-quantized (the steep cost curve). Methods without a draft model only.
inline method make_method(const std::string& name, std::int32_t n_vocab, std::int32_t budget = 0,
                          bool block_weights = false) {
  if (is_draft_model_method(name)) {
    throw error(error_category::invalid_argument, "method '" + name + "' needs a draft model (make_model_method)");
  }
  if (name == "ar") return method{name, nullptr, any_drafter(null_drafter{}), 1, {}, {}, false, {}, {}};
  budget = resolve_budget(budget);
  const bool automatic = budget == budget_auto;
  if (automatic) budget = auto_budget_max;  // the drafter can fill the cap; the policy picks below it
  if (name == "token-recycling") {
    // The greedy static tree of exactly budget - 1 drafted nodes (tree_template.hpp); a smaller
    // budget keeps its first nodes in greedy order, the greedy tree of that size.
    const std::int32_t b = budget > 0      ? budget
                           : block_weights ? default_token_recycling_budget_blocks
                                           : default_token_recycling_budget;
    if (b < 2) throw error(error_category::invalid_argument, "token-recycling needs a budget of at least 2 nodes");
    token_recycling_options o;
    o.tree = "tr-" + std::to_string(b - 1);
    method m{name, nullptr, any_drafter(token_recycling_drafter(n_vocab, o)), b, {}, {}, false, {}, {}};
    m.budget_is_auto = automatic;
    // --budget auto: a budget of k nodes keeps the template's k first nodes by priority, so the
    // expected accepted tokens are that shape's path products of the tracked (depth, rank)
    // acceptance (not the best tree's, which the template may not be: its order comes from a prior).
    // The shape is exact, so the model is used alone: measuring each budget's own steps would
    // rest on the few exploration steps of the budgets not in use.
    m.tune_auto_budget = [t = m.drafter.target<token_recycling_drafter>()->tree()](specdec::auto_budget& p) {
      p.set_measured_strength(0);
      p.set_accepted_model([t](std::int32_t rows, const acceptance_tracker& tr) {
        std::vector<double> value(static_cast<std::size_t>(t.size()), 0.0);
        std::vector<std::int32_t> kept_children(value.size(), 0);
        value[0] = 1.0;
        double sum = 0;
        for (std::int32_t i = 1; i < t.size(); ++i) {  // breadth-first: parents first, siblings by rank
          const auto u = static_cast<std::size_t>(i);
          const auto par = static_cast<std::size_t>(t.parent[u]);
          if (t.priority[u] >= rows || value[par] == 0.0) continue;
          value[u] = value[par] * tr.estimate(t.depth[u], kept_children[par]++);
          sum += value[u];
        }
        return sum;
      });
    };
    return m;
  }
  if (name == "lookahead") {
    lookahead_options o;
    o.decoding_length = budget > 0      ? budget
                        : block_weights ? default_lookahead_budget_blocks
                                        : default_lookahead_budget;
    o.validate();
    method m{name, nullptr, any_drafter(lookahead_trie_drafter(o)), o.decoding_length, {}, {}, false, {}, {}};
    m.budget_is_auto = automatic;
    return m;
  }
  std::string valid;
  for (const auto& n : method_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw error(error_category::invalid_argument, "unknown method '" + name + "' (valid: " + valid + ")");
}

// Parallel prompt decoding with the artifact of --ppd-file (or the model's default one), checked
// against the target's file.
inline method make_ppd_method(const draft_cli_options& d, std::int32_t budget, bool block_weights = false) {
  const std::string path = d.ppd_file.empty() ? default_ppd_path(d.model_path) : d.ppd_file;
  auto a = std::make_shared<const ppd_artifact>(load_ppd(path, d.model_file));
  budget = resolve_budget(budget);
  const bool automatic = budget == budget_auto;
  const std::int32_t b = automatic ? std::clamp(a->max_budget(), a->ensemble + 1, 64) : budget > 0 ? budget : block_weights ? default_ppd_budget_blocks : default_ppd_budget;
  const std::int32_t least = a->ensemble + 1;
  if (b < least) {
    throw error(error_category::invalid_argument, "ppd needs a budget of at least " + std::to_string(least) +
                                                      " rows (a root and one prompt token)");
  }
  char src[160];
  std::snprintf(src, sizeof src, " (k %d, ensemble %d, %.1f KB)", a->n_prompt_tokens, a->ensemble,
                static_cast<double>(a->bytes()) / 1024.0);
  method m{"ppd", nullptr, any_drafter(ppd_drafter(a)), b, {}, {}, false, {}, {}};
  m.draft_source = "prompt tokens " + path + src;
  m.budget_is_auto = automatic;
  // --budget auto: the artifact's tree budgets are the candidates; a budget runs the rows of its
  // tree for the full state (every offset guessed), and that tree's shape, valued with the tracked
  // per-(depth, rank) acceptance, is the expected accepted count.
  m.tune_auto_budget = [a](specdec::auto_budget& p) {
    const std::int32_t full = a->n_prompt_tokens;
    p.set_rows_for_budget([a, full](std::int32_t s) {
      const ppd_tree* t = a->tree_for(full, s);
      return t == nullptr ? std::min(s, 1 + std::min(a->n_prompt_tokens, (s - 1) / a->ensemble) * a->ensemble)
                          : t->rows(a->ensemble);
    });
    p.set_accepted_model([a, full](std::int32_t rows, const acceptance_tracker& tr) {
      const ppd_tree* t = a->tree_for(full, rows);
      if (t == nullptr) return 0.0;
      std::vector<double> value(static_cast<std::size_t>(t->size()), 1.0);
      std::vector<std::int32_t> children(value.size(), 0);
      double sum = 0;
      for (std::int32_t i = 1; i < t->size(); ++i) {
        const auto u = static_cast<std::size_t>(i);
        const auto par = static_cast<std::size_t>(t->parent[u]);
        value[u] = value[par] * tr.estimate(t->depth[u], children[par]++);
        sum += value[u];
      }
      return sum;
    });
  };
  return m;
}

// Either kind of method by name.
inline method make_any_method(const std::string& name, cpu::llama_cpu& target, const cpu::llama_cpu_options& target_opt,
                              std::int32_t budget, const draft_cli_options& d) {
  if (name == "ppd") {
    const auto lf = target.layer_format();
    return make_ppd_method(d, budget, lf != cpu::block_format::f32 && lf != cpu::block_format::bf16);
  }
  if (is_draft_model_method(name)) return make_model_method(name, target, target_opt, budget, d);
  const auto f = target.layer_format();
  return make_method(name, target.n_vocab(), budget, f != cpu::block_format::f32 && f != cpu::block_format::bf16);
}

// Runs the decode loop: greedy rule at temperature 0, the lossless sampling rule otherwise (it
// verifies trees drawn from a draft distribution with multi-candidate speculative sampling). Model is
// llama_cpu or a wrapper of it (skip::skip_decode).
template <class Model>
generate_result run_method(Model& model, method& m, std::span<const token_id> prompt, const sampling_params& sp,
                           generate_options opt) {
  opt.budget = m.budget;
  if (m.budget_is_auto && !m.auto_policy) {
    throw error(error_category::invalid_argument, m.name + ": --budget auto needs the cost curve (enable_auto_budget)");
  }
  opt.tree_budget_policy = m.auto_policy.get();
  if (sp.greedy()) {
    greedy_rule rule;
    return generate(model, m.drafter, rule, prompt, opt);
  }
  sampling_rule rule{sp};
  return generate(model, m.drafter, rule, prompt, opt);
}

}  // namespace specdec::programs
