// specdec-skip-calibrate: choose a SkipDecode skip order for a model from a measurement, and write it
// as a skip plan (include/specdec/skip/skip_plan.hpp) for --skip-plan.
//
// The text is cut into windows of prefix + continuation tokens. The prefix runs at full depth, as a
// prompt would; the continuation runs teacher-forced with a candidate layer set and its mean
// next-token loss (nats) is the score. Greedy and nested, like the schedule that uses it: with the
// layers dropped so far, try dropping each remaining one and drop the one whose loss is lowest;
// after --greedy-steps rounds the rest follow the last round's ranking.
//   specdec-skip-calibrate --out models/SmolLM2-135M-Instruct.skip-plan
#include "common/program_support.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/skip/skip_plan.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <specdec/tokenizer/tokenizer.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace specdec;

struct options {
  std::string model;
  std::string text = SPECDEC_CALIBRATION_TEXT;
  std::string out;
  std::int32_t warmup_layers = 1;
  std::int32_t prefix = 32;
  std::int32_t continuation = 32;
  std::int32_t max_windows = 4;
  std::int32_t greedy_steps = 16;
  std::int32_t threads = 0;
};

// Mean next-token loss of every window's continuation with `layers` (ascending) running.
struct scorer {
  cpu::llama_cpu& model;
  std::vector<seq_id> seqs;                // one per window, the prefix committed
  std::vector<std::vector<token_id>> cont; // [window][continuation + 1]: inputs and targets

  double loss(const std::vector<std::int32_t>& layers) {
    double sum = 0;
    std::int64_t n = 0;
    forward_batch b;
    for (std::size_t w = 0; w < seqs.size(); ++w) {
      const std::vector<token_id> in(cont[w].begin(), cont[w].end() - 1);
      b.steps.push_back(sequence_step::chain(seqs[w], in, model.n_past(seqs[w])));
    }
    const batch_logits out = model.forward(b, layers);
    for (std::size_t w = 0; w < seqs.size(); ++w) {
      const logits_view v = out.step(w);
      for (std::int32_t i = 0; i < v.n_rows; ++i) {
        const auto row = v.row(i);
        const float mx = *std::max_element(row.begin(), row.end());
        double z = 0;
        for (const float x : row) z += std::exp(static_cast<double>(x - mx));
        sum += std::log(z) + mx - row[static_cast<std::size_t>(cont[w][static_cast<std::size_t>(i) + 1])];
        ++n;
      }
    }
    for (const seq_id s : seqs) model.truncate(s, model.n_past(s));  // drop the pending rows
    return sum / static_cast<double>(n);
  }
};

std::vector<std::int32_t> without(std::int32_t n_layers, const std::vector<std::int32_t>& dropped) {
  std::vector<std::int32_t> out;
  for (std::int32_t l = 0; l < n_layers; ++l) {
    if (std::find(dropped.begin(), dropped.end(), l) == dropped.end()) out.push_back(l);
  }
  return out;
}

int run(const options& o) {
  const std::string model_path = o.model.empty() ? programs::default_model_path() : o.model;
  const gguf::file file(model_path);
  tokenizer tok = tokenizer_from_gguf(file);
  std::ifstream in(o.text, std::ios::binary);
  if (!in) throw error(error_category::io, "cannot read calibration text " + o.text);
  std::ostringstream ss;
  ss << in.rdbuf();
  const std::vector<token_id> ids = tok.encode(ss.str(), {.parse_special = false, .add_special = false});

  const std::int32_t window = o.prefix + o.continuation;
  const std::int32_t n_windows = std::min<std::int32_t>(o.max_windows, static_cast<std::int32_t>(ids.size()) / window);
  if (n_windows < 1) {
    throw error(error_category::invalid_argument, "calibration text " + o.text + " has " + std::to_string(ids.size()) +
                                                      " tokens, fewer than one window of " + std::to_string(window));
  }
  cpu::llama_cpu_options mo;
  mo.n_threads = o.threads > 0 ? o.threads : static_cast<std::int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  mo.n_ctx = window + 8;
  mo.max_sequences = n_windows;
  cpu::llama_cpu model(file, mo);
  const std::int32_t n = model.n_layers();
  if (o.warmup_layers < 0 || o.warmup_layers >= n - 1) {
    throw error(error_category::invalid_argument, "--warmup-layers " + std::to_string(o.warmup_layers) +
                                                      " must be in [0, " + std::to_string(n - 1) + ")");
  }

  scorer sc{model, {}, {}};
  for (std::int32_t w = 0; w < n_windows; ++w) {
    const auto at = ids.begin() + static_cast<std::ptrdiff_t>(w) * window;
    const seq_id s = model.create_sequence();
    // Prefix tokens 0 .. prefix-2 are cached; token prefix-1 is the first input of the continuation.
    const std::vector<token_id> pre(at, at + o.prefix - 1);
    model.forward(forward_batch{{sequence_step::chain(s, pre, 0, logits_request::none)}});
    std::vector<std::int32_t> rows(pre.size());
    std::iota(rows.begin(), rows.end(), 0);
    model.commit(s, rows);
    sc.seqs.push_back(s);
    sc.cont.emplace_back(at + o.prefix - 1, at + window);
  }
  const double base = sc.loss(without(n, {}));
  std::fprintf(stderr, "calibration: %d windows of %d + %d tokens from %s; full-depth loss %.4f nats\n", n_windows,
               o.prefix, o.continuation, o.text.c_str(), base);

  std::vector<std::int32_t> dropped;
  std::vector<double> scores;
  std::vector<std::pair<double, std::int32_t>> last_round;
  const std::int32_t rounds = std::min(o.greedy_steps, n - o.warmup_layers - 1);
  for (std::int32_t k = 0; k < rounds; ++k) {
    last_round.clear();
    for (std::int32_t l = o.warmup_layers; l < n; ++l) {
      if (std::find(dropped.begin(), dropped.end(), l) != dropped.end()) continue;
      auto trial = dropped;
      trial.push_back(l);
      last_round.emplace_back(sc.loss(without(n, trial)), l);
    }
    std::sort(last_round.begin(), last_round.end());
    dropped.push_back(last_round.front().second);
    scores.push_back(last_round.front().first);
    // The paper's choice at the same count, for comparison: layers warmup .. warmup + k.
    std::vector<std::int32_t> lowest(static_cast<std::size_t>(k + 1));
    std::iota(lowest.begin(), lowest.end(), o.warmup_layers);
    std::fprintf(stderr, "  drop %2d layers: + layer %2d -> loss %.4f (lowest-after-warm-up: %.4f)\n", k + 1,
                 dropped.back(), scores.back(), sc.loss(without(n, lowest)));
  }
  // The rest in the last round's order (their scores are single drops on top of the greedy set).
  for (std::size_t i = 1; i < last_round.size(); ++i) dropped.push_back(last_round[i].second);
  if (rounds == 0) {
    for (std::int32_t l = o.warmup_layers; l < n; ++l) dropped.push_back(l);
  }

  skip::skip_plan plan;
  plan.n_layers = n;
  plan.warmup_layers = o.warmup_layers;
  plan.metric = "continuation_nll";
  std::error_code ec;
  const auto shown = std::filesystem::proximate(o.text, ec);  // relative to the working directory
  plan.source = (ec ? o.text : shown.string()) + " (" + std::to_string(n_windows) + " windows, prefix " + std::to_string(o.prefix) +
                ", continuation " + std::to_string(o.continuation) + ", greedy " + std::to_string(rounds) + ")";
  plan.order = dropped;
  plan.scores = scores;  // the greedy rounds only
  skip::write_skip_plan(o.out, plan);
  std::fprintf(stderr, "wrote %s\n", o.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"specdec-skip-calibrate: choose a SkipDecode skip order from a measurement"};
  app.add_option("-m,--model", o.model, "GGUF model file (default: the model in models/)");
  app.add_option("--text", o.text, "calibration text (default: data/calibration/skip_calibration.txt)");
  app.add_option("-o,--out", o.out, "skip plan file to write")->required();
  app.add_option("--warmup-layers", o.warmup_layers, "lowest layers never dropped (default 1)")->check(CLI::Range(0, 1 << 16));
  app.add_option("--prefix", o.prefix, "full-depth tokens per window (default 32)")->check(CLI::Range(2, 1 << 16));
  app.add_option("--continuation", o.continuation, "scored tokens per window (default 32)")->check(CLI::Range(1, 1 << 16));
  app.add_option("--windows", o.max_windows, "windows at most (default 4)")->check(CLI::Range(1, 1 << 16));
  app.add_option("--greedy-steps", o.greedy_steps, "greedy rounds; the rest follow the last ranking (default 16)")
      ->check(CLI::Range(0, 1 << 16));
  app.add_option("-t,--threads", o.threads, "CPU threads (default: all cores)")->check(CLI::Range(1, 256));
  bool list_methods = false;
  if (const auto code = programs::parse_command_line(app, argc, argv, list_methods)) return *code;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
