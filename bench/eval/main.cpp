// specdec-eval: measure speculative decoding methods against autoregressive decoding on a prompt set
// (MT-bench-shaped JSONL), per category and overall: tokens/s, speedup over AR in the same run, MAT,
// acceptance, draft-time share and, for greedy runs, token-for-token agreement with AR.
//   specdec-eval --methods token-recycling,lookahead --max-new-tokens 128 --json results.json
// Methods run one after another on each prompt (interleaved, to spread machine noise); each method
// keeps one drafter for the whole run, so learned state carries over between prompts (hot start).
// The lossy method skipdecode (SkipDecode: AR through skip::skip_decode around the same model, flags
// of examples/common/skip_method.hpp) is not checked for exactness; it reports agreement with AR,
// the first divergence and the schedule's theoretical speedup instead (report.hpp).
//   specdec-eval --methods lookahead,skipdecode --skip-min-layers 20 --skip-length 128 --skip-plan FILE
// Exit codes: 0 ok, 1 a greedy output of a lossless method differed from AR's, 2 bad input (one
// "error:" line on stderr).
#include "prompts.hpp"
#include "batch_report.hpp"
#include "report.hpp"

#include "common/auto_budget.hpp"
#include "common/methods.hpp"
#include "common/program_support.hpp"
#include "common/skip_method.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/skip/skip_decode.hpp>
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
#include <optional>
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
  std::vector<std::int32_t> sweep_budgets;  // programs::budget_auto for auto
  programs::auto_budget_cli_options auto_budget;
  std::string json_path;
  std::string markdown_path;
  bool no_chat_template = false;
  bool quiet = false;
  std::vector<std::int32_t> batches;  // --batch: decode the prompts as concurrent requests, B at a time
  programs::draft_cli_options draft;  // dyspec, dyspec-level, sps, specinfer
  programs::skip_cli_options skip;    // skipdecode
};

using skipper = skip::skip_decode<cpu::llama_cpu>;

constexpr std::int32_t warmup_tokens = 16;

// Lossy methods: compared with AR (agreement, first divergence), never counted as mismatches.
bool is_lossy(const std::string& name) { return name == programs::skipdecode_name; }

// "ar" first, then the listed methods in order, each once.
std::vector<std::string> method_list(const std::vector<std::string>& listed) {
  std::vector<std::string> names{"ar"};
  const auto known = programs::method_names();
  for (const auto& n : listed) {
    if (n.empty()) throw error(error_category::invalid_argument, "--methods: empty method name");
    if (std::find(known.begin(), known.end(), n) == known.end() && !is_lossy(n)) {
      std::string valid;
      for (const auto& k : known) valid += k + ", ";
      throw error(error_category::invalid_argument,
                  "unknown method '" + n + "' (valid: " + valid + programs::skipdecode_name + " (lossy))");
    }
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  return names;
}

eval::config_result make_config(const std::string& name, std::int32_t budget, bool in_main, bool in_sweep) {
  eval::config_result c;
  c.method = name;
  c.budget = budget;
  c.in_main = in_main;
  c.in_sweep = in_sweep;
  return c;
}

// The SkipDecode flags are an error without skipdecode in --methods; throws naming the first one given.
void refuse_stray_skip_flags(const options& o) {
  if (std::find(o.methods.begin(), o.methods.end(), programs::skipdecode_name) != o.methods.end()) return;
  for (const CLI::Option* f : o.skip.flags) {
    if (f->count() > 0) {
      throw error(error_category::invalid_argument,
                  f->get_name() + " needs " + programs::skipdecode_name + " in --methods");
    }
  }
}

// What the schedule runs, for the report: the text note and the JSON "schedule" object.
void describe_schedule(eval::config_result& c, const skip::layer_schedule& s, const programs::skip_cli_options& o) {
  const auto max_layers = static_cast<std::int32_t>(s.phases().front().layers.size());
  const auto min_layers = static_cast<std::int32_t>(s.phases().back().layers.size());
  c.lossy = true;
  c.n_layers = s.n_layers();
  c.lossy_note = std::to_string(max_layers) + " -> " + std::to_string(min_layers) + " of " +
                 std::to_string(s.n_layers()) + " layers over " + std::to_string(o.length) + " tokens, warm-up " +
                 std::to_string(o.warmup_layers) + ", " + (o.plan.empty() ? "the paper's skip order" : "skip plan " + o.plan);
  c.lossy_settings["schedule"] = {{"n_layers", s.n_layers()},
                                  {"max_layers", max_layers},
                                  {"min_layers", min_layers},
                                  {"length", o.length},
                                  {"warmup_layers", o.warmup_layers},
                                  {"skip_plan", o.plan.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(o.plan)}};
}

// The first position where two outputs differ; -1 when they are equal.
std::int64_t first_difference(const std::vector<token_id>& a, const std::vector<token_id>& b) {
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<std::int64_t>(i);
  }
  return a.size() == b.size() ? -1 : static_cast<std::int64_t>(n);
}

// A lossy method's output against AR's on one prompt; the schedule gives the layers of its tokens.
eval::lossy_prompt compare_lossy(const std::vector<token_id>& ar, const std::vector<token_id>& out,
                                 const skip::layer_schedule& s) {
  eval::lossy_prompt q;
  q.reference = static_cast<std::int64_t>(ar.size());
  q.generated = static_cast<std::int64_t>(out.size());
  const std::size_t n = std::min(ar.size(), out.size());
  for (std::size_t i = 0; i < n; ++i) q.matched += ar[i] == out[i] ? 1 : 0;
  const std::int64_t first = first_difference(ar, out);  // equal outputs count their length
  q.first_divergence = first < 0 ? static_cast<std::int64_t>(n) : first;
  for (std::int64_t t = 0; t < q.generated; ++t) q.scheduled_layers += s.n_active(t);
  return q;
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
// Model is the backend or the SkipDecode wrapper around it.
template <class Model, class Rule>
std::vector<std::vector<token_id>> run_batched(Model& model, programs::method& m, Rule rule,
                                               const std::vector<std::vector<token_id>>& prompts,
                                               const generate_options& base, std::int32_t batch, eval::batch_row& row) {
  decoder<Model, any_drafter, Rule> dec(model, decoder_options{batch, 64});
  std::vector<std::vector<token_id>> out(prompts.size());
  std::vector<request_id> ids;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    generate_options o = base;
    o.budget = m.budget;
    o.tree_budget_policy = m.auto_policy.get();
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

template <class Model>
std::vector<std::vector<token_id>> run_batched(Model& model, programs::method& m, const sampling_params& sp,
                                               const std::vector<std::vector<token_id>>& prompts,
                                               const generate_options& base, std::int32_t batch, eval::batch_row& row) {
  if (sp.greedy()) return run_batched(model, m, greedy_rule{}, prompts, base, batch, row);
  return run_batched(model, m, sampling_rule{sp}, prompts, base, batch, row);
}

// --batch: every method at every batch size, the prompts as concurrent requests. skipdecode runs
// through `sd` (per_set policy: every request follows its own schedule, as when decoded alone).
std::int64_t run_batches(const options& o, eval::eval_run& r, cpu::llama_cpu& model, skipper* sd,
                         std::vector<programs::method>& methods, const std::vector<std::vector<token_id>>& prompts,
                         const generate_options& opt, const tokenizer& tok) {
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
      row.lossy = r.configs[k].lossy;
      row.n_layers = r.configs[k].n_layers;
      const auto outs = row.lossy ? run_batched(*sd, methods[k], r.sampling, prompts, opt, b, row)
                                  : run_batched(model, methods[k], r.sampling, prompts, opt, b, row);
      if (k == 0 && ar_tokens.empty()) ar_tokens = outs;  // AR at the first batch size is the reference
      if (row.lossy) {
        for (std::size_t i = 0; i < outs.size(); ++i) row.quality.push_back(compare_lossy(ar_tokens[i], outs[i], sd->schedule()));
      } else if (r.sampling.greedy()) {
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

  // One method object per configuration, for the whole run. configs[0] is AR. A lossy method
  // decodes like AR (null drafter) through its wrapper of the model.
  tokenizer tok = tokenizer_from_gguf(file);
  programs::draft_cli_options draft = o.draft;
  draft.always = end_of_generation_tokens(tok);  // a restricted draft head keeps them (--draft-vocab)
  draft.model_path = r.model;
  draft.model_file = &file;
  std::vector<programs::method> methods;
  std::optional<skipper> sd;
  const auto names = method_list(o.methods);
  for (const auto& name : names) {
    methods.push_back(programs::make_any_method(is_lossy(name) ? "ar" : name, model, mo, o.budget, draft));
    methods.back().name = name;
    r.configs.push_back(make_config(name, methods.back().budget, true, false));
    r.configs.back().auto_budget = methods.back().budget_is_auto;
    if (name == programs::skipdecode_name) {
      // per_set: in --batch every request follows its own schedule; one request at a time is unaffected.
      sd.emplace(model, programs::make_skip_schedule(o.skip, model.n_layers()),
                 skip::skip_decode_options{false, skip::batch_policy::per_set});
      describe_schedule(r.configs.back(), sd->schedule(), o.skip);
    }
  }
  // The sweep varies the tree budget: it does not apply to lossy methods (they draft nothing).
  const bool sweepable = std::any_of(names.begin() + 1, names.end(), [](const std::string& n) { return !is_lossy(n); });
  if (!o.sweep_budgets.empty() && !sweepable) {
    throw error(error_category::invalid_argument,
                "--sweep-budget needs a method other than ar and skipdecode in --methods");
  }
  for (std::size_t k = 1; k < names.size(); ++k) {
    if (is_lossy(names[k])) continue;
    for (const std::int32_t b : o.sweep_budgets) {
      const bool same = b == programs::budget_auto ? r.configs[k].auto_budget
                                                   : !r.configs[k].auto_budget && b == r.configs[k].budget;
      if (same) {
        r.configs[k].in_sweep = true;
        continue;
      }
      methods.push_back(programs::make_any_method(names[k], model, mo, b, draft));
      r.configs.push_back(make_config(names[k], methods.back().budget, false, true));
      r.configs.back().auto_budget = methods.back().budget_is_auto;
    }
  }
  // --budget auto: the cost curve once (measured or cached), one policy per auto configuration.
  if (std::any_of(methods.begin(), methods.end(), [](const programs::method& m) { return m.budget_is_auto; })) {
    const cost_curve curve = programs::startup_cost_curve(model, r.model, mo, o.auto_budget, o.quiet);
    for (auto& m : methods) programs::enable_auto_budget(m, curve);
  }

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

  // One decode of a prompt by configuration k, through the SkipDecode wrapper for skipdecode.
  const auto decode = [&](std::size_t k, const std::vector<token_id>& prompt, const generate_options& go) {
    if (r.configs[k].lossy) return programs::run_method(*sd, methods[k], prompt, r.sampling, go);
    return programs::run_method(model, methods[k], prompt, r.sampling, go);
  };

  // Warm-up: each configuration once on the first prompt (caches, thread pool, drafter state).
  opt.max_new_tokens = warmup_tokens;
  for (std::size_t k = 0; k < methods.size(); ++k) (void)decode(k, prompt_tokens[0], opt);
  if (sd) sd->reset_counters();

  opt.max_new_tokens = o.max_new_tokens;
  std::int64_t n_mismatch = 0;
  if (!o.batches.empty()) {
    n_mismatch = run_batches(o, r, model, sd ? &*sd : nullptr, methods, prompt_tokens, opt, tok);
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
      eval::config_result& c = r.configs[k];
      const skip::skip_counters before = c.lossy ? sd->counters() : skip::skip_counters{};
      const generate_result g = decode(k, prompt_tokens[i], opt);
      c.per_prompt.push_back(g.stats);
      if (k == 0) ar_tokens = g.tokens;
      if (c.lossy) {
        eval::lossy_prompt q = compare_lossy(ar_tokens, g.tokens, sd->schedule());
        q.decode_rows = sd->counters().decode_rows - before.decode_rows;
        q.decode_layer_rows = sd->counters().decode_layer_rows - before.decode_layer_rows;
        c.quality.push_back(q);
      }
      const std::int64_t diff = r.sampling.greedy() && k > 0 && !c.lossy ? first_difference(ar_tokens, g.tokens) : -1;
      c.mismatch.push_back(diff >= 0);
      if (diff >= 0) {
        ++n_mismatch;
        std::fprintf(stderr, "mismatch: prompt %s: %s (budget %d) differs from ar at token %lld (ar %s, %s %s)\n",
                     r.prompts[i].id.c_str(), c.method.c_str(), c.budget, static_cast<long long>(diff),
                     quoted_piece(tok, ar_tokens, diff).c_str(), c.method.c_str(),
                     quoted_piece(tok, g.tokens, diff).c_str());
      }
      progress += (k == 0 ? " " : " | ") + c.label() + eval::fmt(" %.1f tok/s", g.stats.tokens_per_s());
      if (c.lossy && r.sampling.greedy() && !ar_tokens.empty()) {
        progress += eval::fmt(" agree %.0f%%", 100.0 * static_cast<double>(c.quality.back().matched) /
                                                   static_cast<double>(ar_tokens.size()));
      } else if (k > 0 && !c.lossy) {
        progress += eval::fmt(" MAT %.2f", g.stats.mat());
      }
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
  app.footer("Exit codes: 0 ok; 1 a greedy output of a lossless method differed from AR's (see the \"mismatch:\" "
             "lines; skipdecode is lossy and reports agreement instead); 2 bad input.");
  app.add_option("-m,--model", o.model, "GGUF model file (default: the SmolLM2-135M-Instruct model in models/)");
  app.add_option("--prompts", o.prompts, "JSONL prompt file, MT-bench shape (default: data/prompts/dev.jsonl)");
  app.add_option("--methods", o.methods,
                 "comma-separated methods (--list-methods, or skipdecode: lossy); ar always runs first as the baseline")
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
  app.add_option("--budget", o.budget,
                 "tree budget (rows per step: nodes, root included, plus PPD's prompt rows) for every drafter; "
                 "0 = defaults; auto = chosen per step from the measured cost curve and the drafter's acceptance")
      ->transform(programs::budget_validator(0));
  programs::add_auto_budget_options(app, o.auto_budget);
  app.add_option("--limit", o.limit, "use only the first N prompts (after --categories); 0 = all")
      ->check(CLI::Range(0, 1 << 30));
  app.add_option("--categories", o.categories, "comma-separated categories to keep")->delimiter(',');
  specdec::programs::add_draft_options(app, o.draft);
  specdec::programs::add_skip_options(app, o.skip);
  for (CLI::Option* f : o.skip.flags) f->group("SkipDecode (skipdecode in --methods, lossy)");
  app.add_option("--sweep-budget", o.sweep_budgets,
                 "comma-separated budgets to sweep for each non-AR method; auto may be one of them (2,3,4,auto)")
      ->delimiter(',')
      ->transform(programs::budget_validator(1));
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
    refuse_stray_skip_flags(o);
    return run(o) > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
