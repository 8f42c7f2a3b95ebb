// specdec-eval: measure speculative decoding methods against autoregressive decoding on a prompt set
// (MT-bench-shaped JSONL), per category and overall: tokens/s, speedup over AR in the same run, MAT,
// acceptance, draft-time share and, for greedy runs, token-for-token agreement with AR.
//   specdec-eval --methods token-recycling,lookahead --max-new-tokens 128 --json results.json
// Methods run one after another on each prompt (interleaved, to spread machine noise); each method
// keeps one drafter for the whole run, so learned state carries over between prompts (hot start).
// Exit codes: 0 ok, 1 a greedy output differed from AR's, 2 bad input (one "error:" line on stderr).
#include "prompts.hpp"
#include "batch_report.hpp"
#include "report.hpp"

#include "common/methods.hpp"
#include "common/program_support.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/end_tokens.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <specdec/tokenizer/tokenizer.hpp>
#include <specdec/verify/decoder.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace specdec;

struct options {
  std::string model;
  std::string prompts;
  std::vector<std::string> methods;
  std::int32_t max_new_tokens = 128;
  float temperature = 0.0f;
  std::int32_t top_k = 0;
  float top_p = 1.0f;
  std::int64_t seed = 0;
  std::int32_t threads = 0;
  std::string weights = "auto";
  std::string activations = "f32";
  std::string kv_type = "f32";
  std::int32_t ctx_size = 0;
  std::int32_t budget = 0;
  std::int32_t limit = 0;
  std::vector<std::string> categories;
  std::vector<std::int32_t> sweep_budgets;
  std::string json_path;
  std::string markdown_path;
  bool no_chat_template = false;
  bool quiet = false;
  std::vector<std::int32_t> batches;  // --batch: decode the prompts as concurrent requests, B at a time
  programs::draft_cli_options draft;  // dyspec, dyspec-level, sps, specinfer
};

constexpr std::int32_t warmup_tokens = 16;

// The model's end-of-generation tokens: EOS plus the usual end-of-turn control tokens it has.

// "ar" first, then the listed methods in order, each once.
std::vector<std::string> method_list(const std::vector<std::string>& listed) {
  std::vector<std::string> names{"ar"};
  for (const auto& n : listed) {
    if (n.empty()) throw error(error_category::invalid_argument, "--methods: empty method name");
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  return names;
}

std::vector<eval::eval_prompt> select_prompts(std::vector<eval::eval_prompt> all, const options& o,
                                              const std::string& path) {
  if (!o.categories.empty()) {
    std::vector<std::string> known;
    for (const auto& p : all) {
      if (std::find(known.begin(), known.end(), p.category) == known.end()) known.push_back(p.category);
    }
    for (const auto& c : o.categories) {
      if (std::find(known.begin(), known.end(), c) != known.end()) continue;
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw error(error_category::invalid_argument, "--categories: no prompt in " + path + " has category '" + c +
                                                        "' (present: " + list + ")");
    }
    std::erase_if(all, [&](const eval::eval_prompt& p) {
      return std::find(o.categories.begin(), o.categories.end(), p.category) == o.categories.end();
    });
  }
  if (o.limit > 0 && static_cast<std::size_t>(o.limit) < all.size()) all.resize(static_cast<std::size_t>(o.limit));
  return all;
}

// The first position where two outputs differ; -1 when they are equal.
std::int64_t first_difference(const std::vector<token_id>& a, const std::vector<token_id>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<std::int64_t>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<std::int64_t>(n);
}

std::string quoted_piece(const tokenizer& tok, const std::vector<token_id>& t, std::int64_t i) {
  if (i >= static_cast<std::int64_t>(t.size())) return "end";
  const token_id id = t[static_cast<std::size_t>(i)];
  return std::to_string(id) + " " +
         nlohmann::json(tok.token_to_piece(id)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw error(error_category::io, "cannot write " + path);
}

// One method over every prompt as concurrent requests, at most B at a time: a new request joins as
// soon as one finishes (continuous batching). Returns the outputs in prompt order; fills the row.
template <class Rule>
std::vector<std::vector<token_id>> run_batched(cpu::llama_cpu& model, programs::method& m, Rule rule,
                                               const std::vector<std::vector<token_id>>& prompts,
                                               const generate_options& base, std::int32_t batch, eval::batch_row& row) {
  decoder<cpu::llama_cpu, any_drafter, Rule> dec(model, decoder_options{batch, 64});
  std::vector<std::vector<token_id>> out(prompts.size());
  std::vector<request_id> ids;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    generate_options o = base;
    o.budget = m.budget;
    o.seed = base.seed + i;
    ids.push_back(dec.add(prompts[i], m.drafter, rule, o));
  }
  const auto t0 = std::chrono::steady_clock::now();
  dec.run();
  row.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (auto& r : dec.take_finished()) {
    const auto at = static_cast<std::size_t>(std::find(ids.begin(), ids.end(), r.id) - ids.begin());
    row.stats.add(r.stats);
    row.per_request_tps.push_back(r.stats.tokens_per_s());
    out[at] = std::move(r.tokens);
  }
  return out;
}

// --batch: every method at every batch size, the prompts as concurrent requests.
std::int64_t run_batches(const options& o, eval::eval_run& r, cpu::llama_cpu& model, std::vector<programs::method>& methods,
                         const std::vector<std::vector<token_id>>& prompts, const generate_options& opt,
                         const tokenizer& tok) {
  std::int64_t n_mismatch = 0;
  std::vector<std::vector<token_id>> ar_tokens;
  for (const std::int32_t b : o.batches) {
    if (b > model.max_sequences()) {
      throw error(error_category::invalid_argument, "--batch " + std::to_string(b) + " exceeds the backend's " +
                                                        std::to_string(model.max_sequences()) + " sequences");
    }
    for (std::size_t k = 0; k < methods.size(); ++k) {
      eval::batch_row row;
      row.method = r.configs[k].label();
      row.batch = b;
      const auto outs = r.sampling.greedy()
                            ? run_batched(model, methods[k], greedy_rule{}, prompts, opt, b, row)
                            : run_batched(model, methods[k], sampling_rule{r.sampling}, prompts, opt, b, row);
      if (k == 0 && ar_tokens.empty()) ar_tokens = outs;  // AR at the first batch size is the reference
      if (r.sampling.greedy()) {
        for (std::size_t i = 0; i < outs.size(); ++i) {
          const std::int64_t diff = first_difference(ar_tokens[i], outs[i]);
          if (diff < 0) continue;
          ++row.mismatches;
          ++n_mismatch;
          std::fprintf(stderr, "mismatch: prompt %s: %s at batch %d differs from ar at token %lld (ar %s, got %s)\n",
                       r.prompts[i].id.c_str(), row.method.c_str(), b, static_cast<long long>(diff),
                       quoted_piece(tok, ar_tokens[i], diff).c_str(), quoted_piece(tok, outs[i], diff).c_str());
        }
      }
      if (!o.quiet) {
        std::fprintf(stderr, "[batch %d] %s: %.1f tok/s total, MAT %.2f\n", b, row.method.c_str(), row.total_tps(),
                     row.stats.mat());
      }
      r.batch_rows.push_back(std::move(row));
    }
  }
  return n_mismatch;
}

// Runs everything; returns the number of greedy mismatches.
std::int64_t run(const options& o) {
  eval::eval_run r;
  r.prompts_path = o.prompts.empty() ? eval::default_prompts_path() : o.prompts;
  r.prompts = select_prompts(eval::read_prompts(r.prompts_path), o, r.prompts_path);
  r.model = o.model.empty() ? programs::default_model_path() : o.model;
  r.max_new_tokens = o.max_new_tokens;
  r.sampling = sampling_params{o.temperature, o.top_k, o.top_p};
  r.sampling.validate();
  r.seed = static_cast<std::uint64_t>(o.seed);
  r.threads = o.threads > 0 ? o.threads : static_cast<std::int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  r.chat_template = !o.no_chat_template;

  const gguf::file file(r.model);
  (void)read_llama_config(file);  // the clearest error for a wrong model comes first

  // The model first: draft-model methods draft with it (self-speculation) or next to it.
  cpu::llama_cpu_options mo;
  mo.n_threads = r.threads;
  mo.n_ctx = o.ctx_size;
  mo.weights = cpu::parse_weight_format(o.weights);
  mo.activations = cpu::parse_activation_format(o.activations);
  mo.kv_type = cpu::parse_kv_format(o.kv_type);
  cpu::llama_cpu model(file, mo);
  programs::report_weights(model, o.weights, o.quiet);

  // One method object per configuration, for the whole run. configs[0] is AR.
  std::vector<programs::method> methods;
  const auto names = method_list(o.methods);
  for (const auto& name : names) {
    methods.push_back(programs::make_any_method(name, model, mo, o.budget, o.draft));
    r.configs.push_back({name, methods.back().budget, true, false, {}, {}});
  }
  if (!o.sweep_budgets.empty() && names.size() < 2) {
    throw error(error_category::invalid_argument, "--sweep-budget needs a method other than ar in --methods");
  }
  for (std::size_t k = 1; k < names.size(); ++k) {
    for (const std::int32_t b : o.sweep_budgets) {
      if (b == r.configs[k].budget) {
        r.configs[k].in_sweep = true;
        continue;
      }
      methods.push_back(programs::make_any_method(names[k], model, mo, b, o.draft));
      r.configs.push_back({names[k], methods.back().budget, false, true, {}, {}});
    }
  }

  tokenizer tok = tokenizer_from_gguf(file);
  const auto tmpl = chat_template::detect(file.get_or<std::string>("tokenizer.chat_template", ""));
  std::vector<std::vector<token_id>> prompt_tokens;
  for (const auto& p : r.prompts) {
    if (o.no_chat_template) {
      prompt_tokens.push_back(tok.encode(p.text, {.parse_special = false, .add_special = true}));
    } else {
      const std::vector<chat_message> messages{{"user", p.text}};
      prompt_tokens.push_back(tok.encode(tmpl.apply(messages, true), {.parse_special = true}));
    }
    r.prompt_tokens.push_back(static_cast<std::int64_t>(prompt_tokens.back().size()));
  }


  generate_options opt;
  opt.end_tokens = end_of_generation_tokens(tok);
  opt.seed = r.seed;

  // Warm-up: each configuration once on the first prompt (caches, thread pool, drafter state).
  opt.max_new_tokens = warmup_tokens;
  for (auto& m : methods) (void)programs::run_method(model, m, prompt_tokens[0], r.sampling, opt);

  opt.max_new_tokens = o.max_new_tokens;
  std::int64_t n_mismatch = 0;
  if (!o.batches.empty()) {
    n_mismatch = run_batches(o, r, model, methods, prompt_tokens, opt, tok);
    std::fputs(eval::batch_report(r).c_str(), stdout);
    std::fflush(stdout);
    if (!o.json_path.empty()) {
      write_file(o.json_path, eval::batch_json(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    }
    return n_mismatch;
  }
  for (std::size_t i = 0; i < r.prompts.size(); ++i) {
    opt.seed = r.seed + i;
    std::vector<token_id> ar_tokens;
    std::string progress;
    for (std::size_t k = 0; k < methods.size(); ++k) {
      const generate_result g = programs::run_method(model, methods[k], prompt_tokens[i], r.sampling, opt);
      eval::config_result& c = r.configs[k];
      c.per_prompt.push_back(g.stats);
      if (k == 0) ar_tokens = g.tokens;
      const std::int64_t diff = r.sampling.greedy() && k > 0 ? first_difference(ar_tokens, g.tokens) : -1;
      c.mismatch.push_back(diff >= 0);
      if (diff >= 0) {
        ++n_mismatch;
        std::fprintf(stderr, "mismatch: prompt %s: %s (budget %d) differs from ar at token %lld (ar %s, %s %s)\n",
                     r.prompts[i].id.c_str(), c.method.c_str(), c.budget, static_cast<long long>(diff),
                     quoted_piece(tok, ar_tokens, diff).c_str(), c.method.c_str(),
                     quoted_piece(tok, g.tokens, diff).c_str());
      }
      progress += (k == 0 ? " " : " | ") + c.label() + eval::fmt(" %.1f tok/s", g.stats.tokens_per_s());
      if (k > 0) progress += eval::fmt(" MAT %.2f", g.stats.mat());
    }
    if (!o.quiet) {
      std::fprintf(stderr, "[%zu/%zu] %s (%s, %zu prompt tokens):%s\n", i + 1, r.prompts.size(),
                   r.prompts[i].id.c_str(), r.prompts[i].category.c_str(), prompt_tokens[i].size(), progress.c_str());
    }
  }

  std::fputs(eval::text_report(r).c_str(), stdout);
  std::fflush(stdout);
  if (!o.json_path.empty()) {
    write_file(o.json_path,
               eval::json_report(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }
  if (!o.markdown_path.empty()) write_file(o.markdown_path, eval::markdown_report(r));
  return n_mismatch;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  bool list_methods = false;
  CLI::App app{"specdec-eval: speed and exactness of speculative decoding methods against AR on a prompt set"};
  app.footer("Exit codes: 0 ok; 1 a greedy output differed from AR's (see the \"mismatch:\" lines); 2 bad input.");
  app.add_option("-m,--model", o.model, "GGUF model file (default: the SmolLM2-135M-Instruct model in models/)");
  app.add_option("--prompts", o.prompts, "JSONL prompt file, MT-bench shape (default: data/prompts/dev.jsonl)");
  app.add_option("--methods", o.methods, "comma-separated methods; ar always runs first as the baseline")
      ->delimiter(',');
  app.add_flag("--list-methods", list_methods, "print the known method names and exit");
  app.add_option("--max-new-tokens", o.max_new_tokens, "maximum new tokens per prompt (default 128)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--temp", o.temperature, "temperature; 0 = greedy (default 0)")->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--top-k", o.top_k, "keep the k most likely tokens; 0 = off")->check(CLI::Range(0, 1 << 30));
  app.add_option("--top-p", o.top_p, "keep the smallest set of tokens with this mass; 1 = off")
      ->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--seed", o.seed, "sampling seed; prompt i uses seed + i (default 0)")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{1} << 62));
  app.add_option("-t,--threads", o.threads, "CPU threads (default: all cores)")->check(CLI::Range(1, 256));
  specdec::programs::add_weights_option(app, o.weights, o.activations, o.kv_type);
  app.add_option("-c,--ctx-size", o.ctx_size, "KV cache size in tokens; 0 = the model's context")
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("--budget", o.budget, "tree budget (nodes per step, root included) for every drafter; 0 = defaults")
      ->check(CLI::Range(0, 1 << 16));
  app.add_option("--limit", o.limit, "use only the first N prompts (after --categories); 0 = all")
      ->check(CLI::Range(0, 1 << 30));
  app.add_option("--categories", o.categories, "comma-separated categories to keep")->delimiter(',');
  specdec::programs::add_draft_options(app, o.draft);
  app.add_option("--sweep-budget", o.sweep_budgets, "comma-separated budgets to sweep for each non-AR method")
      ->delimiter(',')
      ->check(CLI::Range(1, 1 << 16));
  app.add_option("--json", o.json_path, "write the results as JSON to this file");
  app.add_option("--markdown", o.markdown_path, "write the tables as Markdown to this file");
  app.add_flag("--no-chat-template", o.no_chat_template, "feed the prompts as plain text");
  app.add_flag("--quiet", o.quiet, "no per-prompt progress on stderr");
  app.add_option("--batch", o.batches,
                 "comma-separated batch sizes: decode the prompts as concurrent requests, B at a time, joining as "
                 "others finish; reports total and per-request tok/s per method and size")
      ->delimiter(',')
      ->check(CLI::Range(1, 256));
  if (const auto exit_code = specdec::programs::parse_command_line(app, argc, argv, list_methods)) return *exit_code;
  if (o.top_p <= 0.0f) {
    std::fprintf(stderr, "error: --top-p must be in (0, 1]\n");
    return 2;
  }

  try {
    return run(o) > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
