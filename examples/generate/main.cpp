// specdec-generate: decode a prompt with a GGUF model on the CPU backend, streaming the text, with
// plain autoregressive decoding or a speculative method (same output, fewer forward steps).
//   specdec-generate -p "What is the capital of France?" -n 32 --temp 0 --method token-recycling
// Bad input prints one line "error: ..." on stderr and exits with code 2.
#include "common/auto_budget.hpp"
#include "common/methods.hpp"
#include "common/program_support.hpp"
#include "common/skip_method.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/skip/skip_decode.hpp>
#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/end_tokens.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <specdec/tokenizer/tokenizer.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

struct options {
  std::string model;
  std::string prompt;
  std::string prompt_file;
  std::string system;
  std::int32_t n_predict = 128;
  float temperature = 0.0f;
  std::int32_t top_k = 0;
  float top_p = 1.0f;
  std::int64_t seed = -1;
  bool no_chat_template = false;
  std::int32_t threads = 0;
  std::string weights = "auto";
  std::string activations = "f32";
  std::string kv_type = "f32";
  std::int32_t ctx_size = 0;
  bool json = false;
  std::string method = "ar";
  std::int32_t budget = 0;  // programs::budget_auto for --budget auto
  specdec::programs::auto_budget_cli_options auto_budget;
  specdec::programs::skip_cli_options skip;
  specdec::programs::draft_cli_options draft;
};

struct result {
  std::vector<specdec::token_id> prompt_tokens;
  std::vector<specdec::token_id> tokens;
  std::string text;
  std::string stop_reason;
  specdec::decode_stats stats;
  std::uint64_t seed = 0;
  std::string draft_source;                       // draft-model methods
  std::optional<specdec::model_drafter_counters> draft;
  bool budget_is_auto = false;
  std::int32_t budget = 1;  // fixed budget, or the cap of --budget auto
};

std::string read_prompt_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw specdec::error(specdec::error_category::io, "cannot read prompt file " + path + ": not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw specdec::error(specdec::error_category::io, "cannot read prompt file " + path);
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw specdec::error(specdec::error_category::io, "cannot read prompt file " + path);
  return s.str();
}

result run(options o) {
  using namespace specdec;
  const std::string model_path = o.model.empty() ? programs::default_model_path() : o.model;
  const std::string prompt_text = o.prompt_file.empty() ? o.prompt : read_prompt_file(o.prompt_file);
  if (prompt_text.empty()) throw error(error_category::invalid_argument, "the prompt is empty");
  const sampling_params sp{o.temperature, o.top_k, o.top_p};
  sp.validate();

  const gguf::file file(model_path);
  (void)read_llama_config(file);  // architecture and shapes first: the clearest error for a wrong model
  tokenizer tok = tokenizer_from_gguf(file);
  cpu::llama_cpu_options mo;
  mo.n_threads = o.threads > 0 ? o.threads : static_cast<std::int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  mo.n_ctx = o.ctx_size;
  mo.weights = cpu::parse_weight_format(o.weights);
  mo.activations = cpu::parse_activation_format(o.activations);
  mo.kv_type = cpu::parse_kv_format(o.kv_type);
  cpu::llama_cpu model(file, mo);
  programs::report_weights(model, o.weights, o.json);

  result r;
  if (o.no_chat_template) {
    r.prompt_tokens = tok.encode(prompt_text, {.parse_special = false, .add_special = true});
  } else {
    const auto tmpl = chat_template::detect(file.get_or<std::string>("tokenizer.chat_template", ""));
    std::vector<chat_message> messages;
    if (!o.system.empty()) messages.push_back({"system", o.system});
    messages.push_back({"user", prompt_text});
    r.prompt_tokens = tok.encode(tmpl.apply(messages, true), {.parse_special = true});
  }
  if (r.prompt_tokens.empty()) throw error(error_category::invalid_argument, "the prompt is empty");
  if (static_cast<std::int64_t>(r.prompt_tokens.size()) >= model.n_ctx()) {
    throw error(error_category::capacity, "the prompt has " + std::to_string(r.prompt_tokens.size()) +
                                              " tokens but the context holds " + std::to_string(model.n_ctx()) +
                                              " (raise -c up to the model's " +
                                              std::to_string(model.config().n_ctx_train) + ")");
  }

  r.seed = o.seed >= 0 ? static_cast<std::uint64_t>(o.seed) : std::random_device{}();
  // SkipDecode: autoregressive decoding on a model that skips layers (lossy).
  const bool skipdecode = o.method == programs::skipdecode_name;
  if (!programs::is_draft_model_method(o.method) && (!o.draft.model.empty() || !o.draft.layers.empty() || o.draft.vocab > 0)) {
    throw error(error_category::invalid_argument,
                "--draft-model / --draft-layers / --draft-vocab need --method dyspec, dyspec-level, sps or specinfer");
  }
  o.draft.always = end_of_generation_tokens(tok);
  o.draft.model_path = model_path;
  o.draft.model_file = &file;
  if (!o.draft.ppd_file.empty() && o.method != "ppd") {
    throw error(error_category::invalid_argument, "--ppd-file needs --method ppd (got --method " + o.method + ")");
  }
  programs::method m = programs::make_any_method(skipdecode ? "ar" : o.method, model, mo, o.budget, o.draft);
  if (m.budget > model.n_ctx()) {
    throw error(error_category::invalid_argument, "--budget " + std::to_string(m.budget) +
                                                      " exceeds the context size " + std::to_string(model.n_ctx()));
  }
  if (m.budget_is_auto) programs::enable_auto_budget(m, programs::startup_cost_curve(model, model_path, mo, o.auto_budget, o.json));
  r.budget_is_auto = m.budget_is_auto;
  r.budget = m.budget;
  programs::utf8_printer printer(stdout);
  generate_options go;
  go.max_new_tokens = o.n_predict;
  go.seed = r.seed;
  go.end_tokens = end_of_generation_tokens(tok);
  go.on_tokens = [&](std::span<const token_id> fresh) {
    for (token_id t : fresh) {
      const std::string piece = tok.token_to_piece(t);
      r.text += piece;
      if (!o.json) printer.write(piece);
    }
    return true;
  };
  generate_result g;
  if (skipdecode) {
    skip::skip_decode<cpu::llama_cpu> sd(model, programs::make_skip_schedule(o.skip, model.n_layers()));
    g = programs::run_method(sd, m, r.prompt_tokens, sp, go);
  } else {
    g = programs::run_method(model, m, r.prompt_tokens, sp, go);
  }
  r.tokens = g.tokens;
  r.stats = g.stats;
  if (m.draft_counters) {
    r.draft = m.draft_counters();
    r.draft_source = m.draft_source;
  }
  r.stop_reason = to_string(g.reason);
  if (!o.json) {
    printer.flush();
    std::printf("\n");
    std::fflush(stdout);  // the stats line goes to stderr after the text, even through a pipe
  }
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"specdec-generate: decode a prompt with a GGUF model (CPU backend)"};
  app.add_option("-m,--model", o.model, "GGUF model file (default: the SmolLM2-135M-Instruct model in models/)");
  auto* p = app.add_option("-p,--prompt", o.prompt, "prompt text");
  auto* f = app.add_option("-f,--file", o.prompt_file, "read the prompt from this file");
  p->excludes(f);
  app.add_option("-n,--n-predict", o.n_predict, "maximum number of new tokens")->check(CLI::Range(1, 1 << 20));
  app.add_option("--temp", o.temperature, "temperature; 0 = greedy (default 0)")->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--top-k", o.top_k, "keep the k most likely tokens; 0 = off")->check(CLI::Range(0, 1 << 30));
  app.add_option("--top-p", o.top_p, "keep the smallest set of tokens with this mass; 1 = off")
      ->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--seed", o.seed, "random seed for sampling; -1 = random (printed in --json)")
      ->check(CLI::Range(std::int64_t{-1}, std::int64_t{1} << 62));
  app.add_option("--system", o.system, "system message for the chat template");
  app.add_flag("--no-chat-template", o.no_chat_template, "feed the prompt as plain text");
  app.add_option("-t,--threads", o.threads, "CPU threads (default: all cores)")->check(CLI::Range(1, 256));
  specdec::programs::add_weights_option(app, o.weights, o.activations, o.kv_type);
  app.add_option("-c,--ctx-size", o.ctx_size, "KV cache size in tokens; 0 = the model's context")
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("--method", o.method, "ar (default), a speculative method (see --list-methods), or skipdecode (lossy)");
  specdec::programs::add_skip_options(app, o.skip);
  app.add_option("--budget", o.budget,
                 "draft tree size in rows (nodes, root included, plus PPD's prompt rows); 0 = the method's default; "
                 "auto = chosen per step from the measured cost curve and the drafter's acceptance")
      ->transform(specdec::programs::budget_validator(0));
  specdec::programs::add_auto_budget_options(app, o.auto_budget);
  specdec::programs::add_draft_options(app, o.draft);
  bool list_methods = false;
  app.add_flag("--list-methods", list_methods, "print the method names and exit");
  app.add_flag("--json", o.json, "print one JSON object (text, token ids, stats) on stdout and nothing else");
  if (const auto exit_code = specdec::programs::parse_command_line(app, argc, argv, list_methods)) return *exit_code;
  if (o.prompt.empty() && o.prompt_file.empty()) {
    std::fprintf(stderr, "error: give a prompt with -p TEXT or -f FILE\n");
    return 2;
  }
  if (o.top_p <= 0.0f) {
    std::fprintf(stderr, "error: --top-p must be in (0, 1]\n");
    return 2;
  }

  try {
    specdec::programs::check_skip_flags(o.skip, o.method);
    const result r = run(o);
    const auto& st = r.stats;
    const double prefill_tps = st.prefill_s > 0 ? static_cast<double>(r.prompt_tokens.size()) / st.prefill_s : 0.0;
    if (o.json) {
      nlohmann::json j;
      j["text"] = r.text;  // invalid UTF-8 bytes are replaced by U+FFFD when dumped
      j["tokens"] = r.tokens;
      j["prompt_tokens"] = r.prompt_tokens.size();
      j["n_generated"] = r.tokens.size();
      j["stop_reason"] = r.stop_reason;
      j["seed"] = r.seed;
      j["method"] = o.method;
      j["prefill_tokens_per_s"] = prefill_tps;
      j["decode_tokens_per_s"] = st.tokens_per_s();
      j["prefill_s"] = st.prefill_s;
      j["decode_s"] = st.total_s;
      j["steps"] = st.steps;
      j["n_drafted"] = st.n_drafted;
      j["n_accept"] = st.n_accept;
      j["accept_rate"] = st.accept_rate();
      j["mat"] = st.mat();
      j["accepted_by_depth"] = st.accepted_by_depth;
      j["budget"] = r.budget_is_auto ? nlohmann::json("auto") : nlohmann::json(r.budget);
      j["budget_mean"] = st.mean_budget();
      j["budget_mode"] = st.mode_budget();
      j["steps_by_budget"] = st.steps_by_budget;
      j["draft_s"] = st.draft_s + st.observe_s;
      if (r.draft) {
        j["draft"] = {{"source", r.draft_source},     {"forwards", r.draft->forwards},
                      {"rows", r.draft->rows},         {"forward_s", r.draft->forward_s},
                      {"grow_s", r.draft->grow_s},     {"nodes", r.draft->nodes}};
      }
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::fprintf(stderr, "[specdec] prompt %zu tokens | prefill %.1f tok/s | decode %.1f tok/s (%zu tokens) | stop: %s\n",
                   r.prompt_tokens.size(), prefill_tps, st.tokens_per_s(), r.tokens.size(), r.stop_reason.c_str());
      std::fprintf(stderr, "[specdec] method %s | n_drafted %lld | n_accept %lld | accept %.1f%% | MAT %.2f | steps %lld | budget %s\n",
                   o.method.c_str(), static_cast<long long>(st.n_drafted), static_cast<long long>(st.n_accept),
                   100.0 * st.accept_rate(), st.mat(), static_cast<long long>(st.steps),
                   specdec::programs::budget_text(r.budget_is_auto, r.budget, st).c_str());
      if (r.draft) {
        const double share = st.total_s > 0 ? r.draft->forward_s / st.total_s : 0.0;
        std::fprintf(stderr, "[specdec] draft %s | %lld forwards (%lld rows) | %.0f%% of decode time in draft forwards, %.0f%% growing trees\n",
                     r.draft_source.c_str(), static_cast<long long>(r.draft->forwards), static_cast<long long>(r.draft->rows),
                     100.0 * share, st.total_s > 0 ? 100.0 * r.draft->grow_s / st.total_s : 0.0);
      }
    }
    return 0;
  } catch (const specdec::error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
