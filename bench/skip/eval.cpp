// specdec-skip-eval: what SkipDecode (arXiv 2307.02628) costs in quality and gains in speed on a model
// that was not fine-tuned for it. For each target theoretical speedup it fits a linear schedule
// (max -> ceil(max * --decay) layers over the generation length) and, per skip order (the paper's lowest
// layers after the warm-up; a calibrated --skip-plan), measures against full-depth greedy decoding:
//   agreement   share of positions whose token equals the full model's greedy token
//   first diff  position of the first differing token (mean and median over prompts)
//   ppl         perplexity of the full model's greedy continuation, teacher-forced through the
//               skipping model (the full model's own value is the floor)
//   ref ppl     perplexity of a reference text written by people (--reference-text, default
//               data/calibration/skip_reference.txt: in no eval set and not the calibration text),
//               teacher-forced the same way, its first 16 tokens as the prompt
//   tok/s       batch-1 decode speed, and at --batch-sizes with every request decoded together, next
//               to the theoretical speedup of the schedule over those tokens
// --samples FILE writes the first --sample-prompts prompts' outputs, full depth and every schedule,
// side by side as Markdown.
//   specdec-skip-eval --limit 12 -n 96 --skip-plan data/calibration/SmolLM2-135M-Instruct.Q4_1.skip-plan
#include "common/program_support.hpp"
#include "eval/prompts.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/skip/skip_decode.hpp>
#include <specdec/skip/skip_plan.hpp>
#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/end_tokens.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <specdec/tokenizer/tokenizer.hpp>
#include <specdec/verify/decoder.hpp>
#include <specdec/verify/greedy.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace specdec;
using model_t = cpu::llama_cpu;
using skipper = skip::skip_decode<model_t>;

struct options {
  std::string model;
  std::string prompts;
  std::int32_t limit = 12;
  std::int32_t max_new = 96;
  std::vector<double> speedups = {1.25, 1.5, 2.0, 3.0};
  double decay = 0.5;  // min_layers = ceil(max_layers * decay)
  std::string plan;
  std::int32_t warmup = 1;
  std::vector<std::int32_t> batch_sizes = {1, 4, 8};
  std::int32_t throughput_tokens = 64;
  std::int32_t threads = 0;
  std::string json;
  std::string reference_text = SPECDEC_REFERENCE_TEXT;
  std::int32_t reference_tokens = 320;
  std::string samples;
  std::int32_t sample_prompts = 3;
  std::int32_t repeats = 3;
  bool throughput_only = false;
};

// A human-written text for the reference perplexity: its first 16 tokens are the prompt, up to
// `limit` tokens after them the target.
struct reference_text {
  std::vector<token_id> prompt, target;
};

reference_text load_reference(tokenizer& tok, const std::string& path, std::int32_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw error(error_category::io, "--reference-text " + path + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto ids = tok.encode(text, {.parse_special = false, .add_special = true});
  constexpr std::size_t head = 16;
  if (ids.size() < head + 16) {
    throw error(error_category::invalid_argument, "--reference-text " + path + ": " + std::to_string(ids.size()) +
                                                      " tokens; at least 32 are needed");
  }
  reference_text r;
  r.prompt.assign(ids.begin(), ids.begin() + head);
  const std::size_t n = std::min(ids.size() - head, static_cast<std::size_t>(limit));
  r.target.assign(ids.begin() + head, ids.begin() + static_cast<std::ptrdiff_t>(head + n));
  return r;
}

// One line of Markdown-safe text (newlines shown as a return sign, pipes escaped).
std::string one_line(const std::string& t) {
  std::string out;
  for (const char c : t) {
    if (c == '\n') {
      out += " \u21b5 ";
    } else if (c == '|') {
      out += "\\|";
    } else {
      out += c;
    }
  }
  return out;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The linear schedule max -> ceil(max * decay) over `length` tokens whose theoretical speedup over
// `length` tokens is closest to `target`.
skip::schedule_options fit(std::int32_t n_layers, std::int32_t warmup, std::int32_t length, double target, double decay) {
  skip::schedule_options best;
  double best_err = 1e9;
  for (std::int32_t max = 1; max <= n_layers; ++max) {
    skip::schedule_options o;
    o.n_layers = n_layers;
    o.max_layers = max;
    o.min_layers = std::max(1, static_cast<std::int32_t>(std::ceil(max * decay - 1e-9)));
    o.length = length;
    o.warmup_layers = warmup;
    if (o.min_layers <= warmup) continue;
    const double err = std::abs(skip::layer_schedule(o).theoretical_speedup(length) - target);
    if (err < best_err) {
      best_err = err;
      best = o;
    }
  }
  if (best_err > 1e8) throw error(error_category::invalid_argument, "no schedule fits speedup " + std::to_string(target));
  return best;
}

struct decoded {
  std::vector<token_id> tokens;
  double decode_s = 0;
};

decoded greedy_decode(skipper& sd, const std::vector<token_id>& prompt, std::int32_t n, const std::vector<token_id>& ends) {
  null_drafter d;
  decoder<skipper, null_drafter, greedy_rule> dec(sd);
  request_options ro;
  ro.max_new_tokens = n;
  ro.end_tokens = ends;
  dec.add(prompt, d, greedy_rule{}, ro);
  dec.run();
  auto r = dec.take_finished().front();
  return {r.tokens, r.stats.total_s};
}

// Summed next-token loss of `target` after `prompt`, teacher-forced through the wrapper: one chain
// step per schedule phase, so every row runs exactly its scheduled set.
double teacher_forced_nll(skipper& sd, const std::vector<token_id>& prompt, const std::vector<token_id>& target) {
  if (prompt.size() < 2 || target.empty()) {
    throw specdec::error(specdec::error_category::invalid_argument, "teacher-forced NLL needs a prompt of 2+ tokens and a target");
  }
  const seq_id s = sd.create_sequence();
  const std::vector<token_id> pre(prompt.begin(), prompt.end() - 1);
  sd.forward(forward_batch{{sequence_step::chain(s, pre, 0, logits_request::none)}});
  std::vector<std::int32_t> rows(pre.size());
  std::iota(rows.begin(), rows.end(), 0);
  sd.commit(s, rows);
  std::vector<token_id> inputs = {prompt.back()};
  inputs.insert(inputs.end(), target.begin(), target.end() - 1);
  double nll = 0;
  std::size_t at = 0;
  while (at < inputs.size()) {
    // Rows at t = at .. end share a phase: same layer set.
    const auto span = sd.schedule().layers_at(static_cast<std::int64_t>(at));
    std::size_t end = at + 1;
    while (end < inputs.size() && sd.schedule().layers_at(static_cast<std::int64_t>(end)).size() == span.size()) ++end;
    const std::vector<token_id> chunk(inputs.begin() + static_cast<std::ptrdiff_t>(at), inputs.begin() + static_cast<std::ptrdiff_t>(end));
    const auto out = sd.forward(forward_batch{{sequence_step::chain(s, chunk, sd.n_past(s))}});
    for (std::int32_t i = 0; i < out.rows.n_rows; ++i) {
      const auto row = out.rows.row(i);
      const float mx = *std::max_element(row.begin(), row.end());
      double z = 0;
      for (const float x : row) z += std::exp(static_cast<double>(x - mx));
      nll += std::log(z) + mx - row[static_cast<std::size_t>(target[at + static_cast<std::size_t>(i)])];
    }
    std::vector<std::int32_t> keep(chunk.size());
    std::iota(keep.begin(), keep.end(), 0);
    sd.commit(s, keep);
    at = end;
  }
  sd.free_sequence(s);
  return nll;
}

// Decode speed with `b` requests decoded together, `n` tokens each (end tokens off: fixed work).
double batch_tokens_per_s(skipper& sd, const std::vector<std::vector<token_id>>& prompts, std::int32_t b, std::int32_t n) {
  null_drafter d;
  decoder<skipper, null_drafter, greedy_rule> dec(sd, decoder_options{b, 512});
  request_options ro;
  ro.max_new_tokens = n;
  for (std::int32_t i = 0; i < b; ++i) dec.add(prompts[static_cast<std::size_t>(i) % prompts.size()], d, greedy_rule{}, ro);
  // Prefill (one step: prompts are shorter than the chunk, and it emits no token) is not timed.
  dec.step();
  const double t0 = now_s();
  dec.run();
  const double dt = now_s() - t0;
  std::int64_t tokens = 0;
  for (const auto& r : dec.take_finished()) tokens += static_cast<std::int64_t>(r.tokens.size());
  return static_cast<double>(tokens) / dt;
}

std::string fmt_target(double t) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2fx", t);
  return b;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : (v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2);
}

int run(const options& o) {
  const std::string model_path = o.model.empty() ? programs::default_model_path() : o.model;
  const gguf::file file(model_path);
  tokenizer tok = tokenizer_from_gguf(file);
  cpu::llama_cpu_options mo;
  mo.n_threads = o.threads > 0 ? o.threads : static_cast<std::int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  mo.n_ctx = 1024;
  mo.max_sequences = std::max(8, *std::max_element(o.batch_sizes.begin(), o.batch_sizes.end()));
  model_t model(file, mo);
  const std::int32_t n_layers = model.n_layers();

  std::vector<std::pair<std::string, std::vector<std::int32_t>>> orders = {{"paper", {}}};
  if (!o.plan.empty()) {
    const skip::skip_plan plan = skip::read_skip_plan(o.plan);
    if (plan.n_layers != n_layers) {
      throw error(error_category::invalid_argument, "--skip-plan " + o.plan + " is for " + std::to_string(plan.n_layers) +
                                                        " layers but the model has " + std::to_string(n_layers));
    }
    orders.emplace_back("calibrated", plan.order_for_warmup(o.warmup));
  }

  const auto tmpl = chat_template::detect(file.get_or<std::string>("tokenizer.chat_template", ""));
  const auto all = eval::read_prompts(o.prompts.empty() ? eval::default_prompts_path() : o.prompts);
  std::vector<std::vector<token_id>> prompts;
  for (std::size_t i = 0; i < all.size() && static_cast<std::int32_t>(prompts.size()) < o.limit; ++i) {
    const std::vector<chat_message> msgs = {{"user", all[i].text}};
    prompts.push_back(tok.encode(tmpl.apply(msgs, true), {.parse_special = true}));
  }
  const auto ends = end_of_generation_tokens(tok);

  // The full-depth reference, after a short warm-up (first touches of the weights and the cache).
  skipper full(model, skip::layer_schedule::full(n_layers));
  (void)greedy_decode(full, prompts.front(), 8, ends);
  std::vector<std::vector<token_id>> ref;
  double full_s = 0, full_nll = 0;
  std::int64_t ref_tokens = 0;
  for (const auto& p : prompts) {
    auto d = greedy_decode(full, p, o.max_new, ends);
    if (d.tokens.empty()) d.tokens.push_back(ends.empty() ? 0 : ends.front());  // never empty: score the end
    full_s += d.decode_s;
    ref_tokens += static_cast<std::int64_t>(d.tokens.size());
    full_nll += teacher_forced_nll(full, p, d.tokens);
    ref.push_back(std::move(d.tokens));
  }
  const double full_tps = static_cast<double>(ref_tokens) / full_s;
  const reference_text reftext = load_reference(tok, o.reference_text, o.reference_tokens);
  const auto ref_ppl = [&](skipper& sd) {
    return std::exp(teacher_forced_nll(sd, reftext.prompt, reftext.target) / static_cast<double>(reftext.target.size()));
  };
  const double full_ref_ppl = ref_ppl(full);
  std::fprintf(stderr, "full depth: %lld tokens, %.1f tok/s, ppl %.3f, reference text ppl %.3f (%zu tokens)\n",
               static_cast<long long>(ref_tokens), full_tps, std::exp(full_nll / static_cast<double>(ref_tokens)),
               full_ref_ppl, reftext.target.size());
  // Side-by-side samples: [prompt][column] text, column 0 the full model's.
  const auto n_samples = static_cast<std::size_t>(std::min<std::int32_t>(o.sample_prompts, static_cast<std::int32_t>(prompts.size())));
  std::vector<std::string> sample_columns = {"full depth"};
  std::vector<std::vector<std::string>> sample_text(n_samples);
  for (std::size_t i = 0; i < n_samples; ++i) sample_text[i].push_back(tok.decode(ref[i]));

  nlohmann::json report;
  report["model"] = model_path;
  report["prompts"] = prompts.size();
  report["max_new_tokens"] = o.max_new;
  report["full"] = {{"tokens_per_s", full_tps}, {"ppl", std::exp(full_nll / static_cast<double>(ref_tokens))},
                    {"reference_ppl", full_ref_ppl}};
  report["reference_text"] = {{"path", o.reference_text}, {"tokens", reftext.target.size()}};
  std::printf("| target | schedule (max -> min over length) | order | theoretical | layers/token run | agreement | first diff mean / median | ppl (full %.3f) | ref ppl (full %.3f) | tok/s (full %.1f) | speedup |\n",
              std::exp(full_nll / static_cast<double>(ref_tokens)), full_ref_ppl, full_tps);
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<skip::schedule_options> fitted;
  for (const double target : o.speedups) {
    skip::schedule_options so = fit(n_layers, o.warmup, o.max_new, target, o.decay);
    fitted.push_back(so);
    if (o.throughput_only) continue;
    for (const auto& [name, order] : orders) {
      skip::schedule_options oo = so;
      oo.skip_order = order;
      skipper sd(model, skip::layer_schedule(oo));
      const double theory = sd.schedule().theoretical_speedup(o.max_new);
      std::int64_t agree = 0, total = 0, generated = 0;
      double nll = 0, s = 0;
      std::vector<double> first;
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        const auto d = greedy_decode(sd, prompts[i], static_cast<std::int32_t>(ref[i].size()), ends);
        s += d.decode_s;
        generated += static_cast<std::int64_t>(d.tokens.size());
        std::size_t f = ref[i].size();
        for (std::size_t k = 0; k < ref[i].size(); ++k) {
          const bool same = k < d.tokens.size() && d.tokens[k] == ref[i][k];
          agree += same ? 1 : 0;
          if (!same && f == ref[i].size()) f = k;
        }
        first.push_back(static_cast<double>(f));
        total += static_cast<std::int64_t>(ref[i].size());
        nll += teacher_forced_nll(sd, prompts[i], ref[i]);
        if (i < n_samples) sample_text[i].push_back(tok.decode(d.tokens));
      }
      sample_columns.push_back(fmt_target(target) + " " + name);
      const double rppl = ref_ppl(sd);
      // Per decode row, generation and teacher forcing together (both follow the schedule).
      const double layers_run = sd.counters().mean_decode_layers();
      const double ppl = std::exp(nll / static_cast<double>(total));
      const double agreement = static_cast<double>(agree) / static_cast<double>(total);
      const double mean_first = std::accumulate(first.begin(), first.end(), 0.0) / static_cast<double>(first.size());
      // Speed: generated tokens (at most the reference's count) over their decode time.
      const double speed = static_cast<double>(generated) / s;
      std::printf("| %.2fx | %d -> %d over %d, warm-up %d | %s | %.2fx | %.1f | %.1f%% | %.1f / %.1f | %.3f | %.3f | %.1f | %.2fx |\n",
                  target, so.max_layers, so.min_layers, so.length, so.warmup_layers, name.c_str(), theory, layers_run,
                  100.0 * agreement, mean_first, median(first), ppl, rppl, speed, speed / full_tps);
      std::fflush(stdout);
      report["runs"].push_back({{"target", target}, {"order", name}, {"max_layers", so.max_layers},
                                {"min_layers", so.min_layers}, {"length", so.length}, {"warmup_layers", so.warmup_layers},
                                {"theoretical_speedup", theory}, {"mean_layers_run", layers_run},
                                {"agreement", agreement}, {"first_divergence_mean", mean_first},
                                {"first_divergence_median", median(first)}, {"ppl", ppl}, {"reference_ppl", rppl}, {"tokens_per_s", speed},
                                {"speedup", speed / full_tps}});
    }
  }

  if (!o.samples.empty() && !o.throughput_only) {
    std::ofstream out(o.samples, std::ios::binary);
    out << "Greedy outputs, full depth and each schedule (" << model_path << ", " << o.max_new
        << " new tokens at most; a return sign marks a line break).\n";
    for (std::size_t i = 0; i < n_samples; ++i) {
      out << "\n**Prompt " << i + 1 << ":** " << one_line(all[i].text) << "\n\n| schedule | output |\n|---|---|\n";
      for (std::size_t c = 0; c < sample_columns.size(); ++c) {
        out << "| " << sample_columns[c] << " | " << one_line(sample_text[i][c]) << " |\n";
      }
    }
    out.close();
    if (!out) throw error(error_category::io, "--samples " + o.samples + ": cannot write");
  }

  // Throughput with batching: full depth and every fitted schedule, in the calibrated order when a
  // plan is given (on a model the paper's order breaks, its hidden states leave the normal range and
  // its speed is not that of a working schedule), the median of --repeats runs each.
  // Theoretical speedups of the throughput schedules (the same decay over the tokens decoded there).
  std::vector<double> throughput_theory;
  for (auto so : fitted) {
    so.length = o.throughput_tokens;
    throughput_theory.push_back(skip::layer_schedule(so).theoretical_speedup(o.throughput_tokens));
  }
  std::printf("\n| batch | full tok/s |");
  for (std::size_t i = 0; i < o.speedups.size(); ++i) {
    std::printf(" %.2fx target: tok/s (measured / theoretical %.2fx) |", o.speedups[i], throughput_theory[i]);
  }
  std::printf("\n|---|---|");
  for (std::size_t i = 0; i < o.speedups.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (const std::int32_t b : o.batch_sizes) {
    const auto timed = [&](skipper& sd) {
      std::vector<double> runs;
      for (std::int32_t k = 0; k < o.repeats; ++k) runs.push_back(batch_tokens_per_s(sd, prompts, b, o.throughput_tokens));
      return median(runs);
    };
    const double base = timed(full);
    std::printf("| %d | %.1f |", b, base);
    nlohmann::json row = {{"batch", b}, {"full_tokens_per_s", base}};
    for (std::size_t i = 0; i < fitted.size(); ++i) {
      auto so = fitted[i];
      so.length = o.throughput_tokens;  // the same decay, over the tokens this measurement decodes
      so.skip_order = orders.back().second;  // the calibrated order when there is one
      skipper sd(model, skip::layer_schedule(so));
      const double tps = timed(sd);
      std::printf(" %.1f (%.2fx / %.2fx) |", tps, tps / base, throughput_theory[i]);
      row["skip"].push_back({{"target", o.speedups[i]}, {"tokens_per_s", tps}, {"speedup", tps / base},
                             {"theoretical_speedup", throughput_theory[i]}});
    }
    std::printf("\n");
    std::fflush(stdout);
    report["throughput"].push_back(row);
  }
  if (!o.json.empty()) {
    std::ofstream out(o.json);
    out << report.dump(2) << "\n";
    if (!out) throw error(error_category::io, "cannot write " + o.json);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"specdec-skip-eval: quality and speed of SkipDecode schedules against full-depth greedy decoding"};
  app.add_option("-m,--model", o.model, "GGUF model file (default: the model in models/)");
  app.add_option("--prompts", o.prompts, "prompt JSONL (default: data/prompts/dev.jsonl)");
  app.add_option("--limit", o.limit, "first N prompts (default 12)")->check(CLI::Range(1, 1 << 20));
  app.add_option("-n,--max-new-tokens", o.max_new, "generation length, also the schedule length (default 96)")
      ->check(CLI::Range(2, 1 << 16));
  app.add_option("--speedups", o.speedups, "target theoretical speedups (default 1.25,1.5,2,3)")->delimiter(',')
      ->check(CLI::Range(1.0, 100.0));
  app.add_option("--decay", o.decay, "fitted schedules decay to ceil(max_layers * DECAY) (default 0.5)")
      ->check(CLI::Range(0.01, 1.0));
  app.add_option("--skip-plan", o.plan, "a calibrated skip plan to compare with the paper's order");
  app.add_option("--warmup-layers", o.warmup, "lowest layers never skipped (default 1)")->check(CLI::Range(0, 1 << 16));
  app.add_option("--batch-sizes", o.batch_sizes, "batch sizes of the throughput table (default 1,4,8)")->delimiter(',')
      ->check(CLI::Range(1, 256));
  app.add_option("--throughput-tokens", o.throughput_tokens, "tokens per request in the throughput table (default 64)")
      ->check(CLI::Range(2, 1 << 16));
  app.add_option("-t,--threads", o.threads, "CPU threads (default: all cores)")->check(CLI::Range(1, 256));
  app.add_option("--json", o.json, "also write the numbers as JSON");
  app.add_option("--reference-text", o.reference_text,
                 "human-written text whose teacher-forced perplexity is reported (default: "
                 "data/calibration/skip_reference.txt)");
  app.add_option("--reference-tokens", o.reference_tokens, "tokens of the reference text scored (default 320)")
      ->check(CLI::Range(16, 1 << 20));
  app.add_option("--samples", o.samples, "write the first prompts' outputs side by side (Markdown) to this file");
  app.add_option("--sample-prompts", o.sample_prompts, "prompts in --samples (default 3)")->check(CLI::Range(1, 1 << 16));
  app.add_option("--repeats", o.repeats, "runs per throughput cell, median reported (default 3)")->check(CLI::Range(1, 1000));
  app.add_flag("--throughput-only", o.throughput_only, "only the throughput table (no quality runs)");
  bool list_methods = false;
  if (const auto code = programs::parse_command_line(app, argc, argv, list_methods)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
