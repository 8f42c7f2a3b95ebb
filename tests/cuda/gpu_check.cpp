// specdec-gpu-check: the GPU measurements of scripts/gpu_check.sh, written into one folder.
//   1. logits of the CUDA backend (bf16 and fp16 weights) against the CPU backend's fp32 path on the
//      first dev prompt of every category: relative L2 error per row (median, max), top-1 agreement;
//   2. greedy decoding on the GPU with every method of examples/common/methods.hpp (the draft-model
//      methods self-speculate on the first four fifths of the layers; PPD reads the model's default
//      artifact): tokens equal to AR's, tok/s, MAT, speedup;
//   3. AR decode with the device-side argmax (no logits row copied): tok/s;
//   4. the cost curve: ms per forward of n rows (n = 1 .. 256 roots after a 128-token context), with
//      the device argmax and with every logits row copied, fixed-order and cuBLAS products.
// Output: summary.md, summary.json, curve.csv. Exit code 1 when a greedy output differs from AR or
// a device is missing (77).
#include "gpu_model.hpp"

#include "../lossless/dev_prompts.hpp"
#include "../numerics.hpp"
#include "common/methods.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/error.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <vector>

using namespace specdec;
using specdec::test::gpu_model;
using clock_type = std::chrono::steady_clock;

namespace {

struct agreement {
  double median = 0, max = 0, top1 = 0;
  std::size_t rows = 0;
};

token_id argmax(std::span<const float> r) { return static_cast<token_id>(std::max_element(r.begin(), r.end()) - r.begin()); }

template <class M>
logits_view run_chain(M& m, seq_id s, std::span<const token_id> tokens) {
  forward_batch b;
  b.steps.push_back(sequence_step::chain(s, tokens, m.n_past(s)));
  return m.forward(b).rows;
}

agreement compare(gpu_model& g, cpu::llama_cpu& c, const std::vector<test::dev_prompt>& prompts) {
  std::vector<double> errors;
  std::size_t same = 0;
  for (const auto& p : prompts) {
    const seq_id sc = c.create_sequence(), sg = g.create_sequence();
    const auto lc = run_chain(c, sc, p.tokens);
    const auto lg = run_chain(g, sg, p.tokens);
    for (std::int32_t i = 0; i < lc.n_rows; ++i) {
      errors.push_back(test::relative_error(lg.row(i), lc.row(i)));
      same += argmax(lg.row(i)) == argmax(lc.row(i)) ? 1 : 0;
    }
    c.free_sequence(sc);
    g.free_sequence(sg);
  }
  agreement a;
  a.rows = errors.size();
  std::sort(errors.begin(), errors.end());
  a.median = errors.empty() ? 0 : errors[errors.size() / 2];
  a.max = errors.empty() ? 0 : errors.back();
  a.top1 = errors.empty() ? 0 : static_cast<double>(same) / static_cast<double>(errors.size());
  return a;
}

// Median ms of `reps` forwards of n roots after the sequence's cache, argmax on the device or every
// logits row copied to the host.
double cost_ms(gpu_model& m, seq_id s, std::int32_t n, bool argmax_only, int reps) {
  const std::int32_t n_past = m.n_past(s);
  forward_batch b;
  sequence_step st;
  st.seq = s;
  for (std::int32_t i = 0; i < n; ++i) {
    st.tokens.push_back((i * 7919 + 13) % m.n_vocab());
    st.positions.push_back(n_past);
    st.parents.push_back(-1);
  }
  b.steps.push_back(st);
  std::vector<double> t;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t0 = clock_type::now();
    if (argmax_only) {
      (void)m.forward_argmax(b);
    } else {
      (void)m.forward(b);
    }
    const double ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    if (r > 0) t.push_back(ms);  // the first run warms up (buffer growth)
    m.truncate(s, n_past);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("specdec-gpu-check: CUDA backend measurements (scripts/gpu_check.sh)");
  std::string model = SPECDEC_TEST_MODEL;
  std::string out_dir = "out/gpu";
  std::int32_t max_new = 128, curve_max = 256, reps = 3, n_prompts = 6, prompt_tokens = 0, curve_context = 128;
  app.add_option("-m,--model", model, "GGUF model");
  app.add_option("-o,--out", out_dir, "output folder");
  app.add_option("-n,--max-new-tokens", max_new, "tokens per greedy generation");
  app.add_option("--curve-max", curve_max, "largest row count of the cost curve")->check(CLI::Range(1, 4096));
  app.add_option("--reps", reps, "timed repetitions per point of the cost curve")->check(CLI::Range(1, 100));
  app.add_option("--curve-context", curve_context, "cached tokens before each cost-curve forward")
      ->check(CLI::Range(1, 1024));
  app.add_option("--prompts", n_prompts, "dev prompts used: the first prompt of the first N categories")
      ->check(CLI::Range(1, 6));
  app.add_option("--max-prompt-tokens", prompt_tokens, "cut every prompt to its first N tokens (0: whole)")
      ->check(CLI::Range(0, 100000));
  CLI11_PARSE(app, argc, argv);
  if (test::cuda_device_count() == 0) {
    std::printf("skipped: no CUDA device\n");
    return 77;
  }
  try {
    std::filesystem::create_directories(out_dir);
    nlohmann::json j;
    std::ostringstream md;
    const gguf::file f(model);
    auto prompts = test::first_prompt_per_category(f);
    prompts.resize(std::min(prompts.size(), static_cast<std::size_t>(n_prompts)));
    for (auto& p : prompts) {
      if (prompt_tokens > 0 && p.tokens.size() > static_cast<std::size_t>(prompt_tokens)) p.tokens.resize(static_cast<std::size_t>(prompt_tokens));
    }
    cuda::llama_cuda_options go;
    go.n_ctx = 2048;
    go.max_sequences = 8;
    gpu_model g(model, go);
    j["device"] = g.device_name();
    j["model"] = model;
    md << "# GPU check\n\ndevice: " << g.device_name() << "  \nmodel: " << model << " (weights on the device "
       << g.weight_bytes() / (1 << 20) << " MiB bf16, K/V cache " << g.kv_bytes() / (1 << 20) << " MiB)\n\n";

    // 1. Logits against the CPU fp32 path.
    {
      const auto threads = static_cast<std::int32_t>(std::clamp(std::thread::hardware_concurrency(), 1u, 16u));
      cpu::llama_cpu c(f, cpu::llama_cpu_options{.n_threads = threads, .n_ctx = 2048, .n_batch = 64,
                                                 .weights = cpu::weight_format::fp32});
      cuda::llama_cuda_options ho = go;
      ho.weights = cuda::cuda_weights::fp16;
      gpu_model h(model, ho);
      md << "## Logits against the CPU fp32 path\n\nFirst dev prompt of " << prompts.size() << " categories, every prompt row.\n\n"
         << "| weights | rows | rel. error median | max | top-1 agreement |\n|---|---|---|---|---|\n";
      for (const auto& [name, m] : {std::pair<const char*, gpu_model*>{"bf16", &g}, {"fp16", &h}}) {
        const agreement a = compare(*m, c, prompts);
        j["logits"][name] = {{"rows", a.rows}, {"median", a.median}, {"max", a.max}, {"top1", a.top1}};
        char line[160];
        std::snprintf(line, sizeof line, "| %s | %zu | %.3g | %.3g | %.1f %% |\n", name, a.rows, a.median, a.max, 100 * a.top1);
        md << line;
      }
      md << "\nTolerance of tests/cuda (bf16): median <= 1e-2, max <= 5e-2, top-1 >= 97 %; fp16: 2e-3, 8e-3, 97 %. "
            "Measured on the CPU emulator over six prompts: bf16 4.3e-3 / 2.2e-2 / 99.8 %, fp16 7.7e-4 / 3.1e-3 / 99.8 %.\n\n";
    }

    // 2. Greedy equality and speed of every method.
    bool all_equal = true;
    {
      md << "## Greedy decoding on the GPU (" << prompts.size() << " prompts x " << max_new << " tokens)\n\n"
         << "| method | budget | equal to AR | tok/s | MAT | speedup over AR |\n|---|---|---|---|---|---|\n";
      std::vector<std::vector<token_id>> ar_tokens;
      double ar_tps = 0;
      programs::draft_cli_options d;
      d.model_path = model;
      d.model_file = &f;
      for (const std::string& name : programs::method_names()) {
        programs::method meth = name == "ppd"                             ? programs::make_ppd_method(d, 0, false)
                                : programs::is_draft_model_method(name) ? programs::make_self_draft_method(name, g, 0, d)
                                                                        : programs::make_method(name, g.n_vocab(), 0, false);
        decode_stats total;
        std::size_t equal = 0;
        for (std::size_t p = 0; p < prompts.size(); ++p) {
          generate_options opt;
          opt.max_new_tokens = max_new;
          const auto r = programs::run_method(g, meth, prompts[p].tokens, sampling_params{}, opt);
          total.add(r.stats);
          if (name == "ar") {
            ar_tokens.push_back(r.tokens);
            ++equal;
          } else {
            equal += r.tokens == ar_tokens[p] ? 1 : 0;
          }
        }
        all_equal = all_equal && equal == prompts.size();
        const double tps = total.tokens_per_s();
        if (name == "ar") ar_tps = tps;
        j["greedy"][name] = {{"budget", meth.budget}, {"equal", equal}, {"prompts", prompts.size()},
                             {"tok_s", tps}, {"mat", total.mat()}, {"speedup", ar_tps > 0 ? tps / ar_tps : 0}};
        char line[200];
        std::snprintf(line, sizeof line, "| %s | %d | %zu / %zu | %.1f | %.2f | %.2fx |\n", name.c_str(), meth.budget, equal,
                      prompts.size(), tps, total.mat(), ar_tps > 0 ? tps / ar_tps : 0.0);
        md << line;
      }
      md << "\nDefault budgets of methods.hpp for fp32/bf16 layer matrices (tuned on the CPU, not on this GPU); "
            "dyspec, dyspec-level, sps and specinfer draft with the first four fifths of the layers. No end tokens: "
            "every run emits "
         << max_new << " tokens.\n\n";
    }

    // 3. AR with the device argmax.
    {
      const seq_id s = g.create_sequence();
      const auto& p = prompts.front().tokens;
      (void)g.prefill(s, std::span(p).first(p.size() - 1));
      token_id next = p.back();
      const auto t0 = clock_type::now();
      for (std::int32_t i = 0; i < max_new; ++i) {
        forward_batch b;
        b.steps.push_back(sequence_step::chain(s, std::span(&next, 1), g.n_past(s)));
        next = g.forward_argmax(b).tokens.front();
        g.commit(s, std::vector<std::int32_t>{0});
      }
      const double sec = std::chrono::duration<double>(clock_type::now() - t0).count();
      g.free_sequence(s);
      j["ar_device_argmax_tok_s"] = max_new / sec;
      char line[200];
      std::snprintf(line, sizeof line,
                    "## AR decode with the device argmax\n\n%.1f tok/s (%d tokens, one forward_argmax + commit per "
                    "token; target >= 1000 tok/s)\n\n",
                    max_new / sec, max_new);
      md << line;
    }

    // 4. The cost curve.
    {
      cuda::llama_cuda_options co = go;
      co.products = cuda::cuda_products::cublas;
      gpu_model cb(model, co);
      std::vector<token_id> context;
      const auto want = static_cast<std::size_t>(curve_context);
      while (context.size() < want) context.insert(context.end(), prompts.front().tokens.begin(), prompts.front().tokens.end());
      context.resize(want);
      const seq_id sf = g.create_sequence(), sc = cb.create_sequence();
      (void)g.prefill(sf, context);
      (void)cb.prefill(sc, context);
      std::ofstream csv(std::filesystem::path(out_dir) / "curve.csv");
      csv << "rows,fixed_argmax_ms,fixed_logits_ms,cublas_argmax_ms,cublas_logits_ms\n";
      std::vector<std::array<double, 4>> curve;
      for (std::int32_t n = 1; n <= curve_max; ++n) {
        const std::array<double, 4> v = {cost_ms(g, sf, n, true, reps), cost_ms(g, sf, n, false, reps),
                                         cost_ms(cb, sc, n, true, reps), cost_ms(cb, sc, n, false, reps)};
        curve.push_back(v);
        csv << n << "," << v[0] << "," << v[1] << "," << v[2] << "," << v[3] << "\n";
      }
      g.free_sequence(sf);
      cb.free_sequence(sc);
      md << "## Cost curve (ms per forward of n rows after " << curve_context << " cached tokens; curve.csv)\n\n"
         << "| products | output | cost(1) ms | cost(8)/cost(1) | cost(64)/cost(1) | cost(256)/cost(1) |\n"
         << "|---|---|---|---|---|---|\n";
      const char* names[4] = {"fixed-order | device argmax", "fixed-order | logits rows", "cuBLAS | device argmax",
                              "cuBLAS | logits rows"};
      const char* keys[4] = {"fixed_argmax", "fixed_logits", "cublas_argmax", "cublas_logits"};
      for (int k = 0; k < 4; ++k) {
        const auto at = [&](std::int32_t n) { return curve[static_cast<std::size_t>(std::min(n, curve_max) - 1)][k]; };
        const double c1 = at(1);
        j["curve"][keys[k]] = {{"cost1_ms", c1}, {"ratio8", at(8) / c1}, {"ratio64", at(64) / c1}, {"ratio256", at(256) / c1}};
        char line[200];
        std::snprintf(line, sizeof line, "| %s | %.3f | %.2f | %.2f | %.2f |\n", names[k], c1, at(8) / c1, at(64) / c1,
                      at(256) / c1);
        md << line;
      }
      md << "\nTarget on an H100/H200: cost(64)/cost(1) <= 1.3.\n";
    }

    j["greedy_all_equal"] = all_equal;
    std::ofstream(std::filesystem::path(out_dir) / "summary.json") << j.dump(2) << "\n";
    std::ofstream(std::filesystem::path(out_dir) / "summary.md") << md.str();
    std::cout << md.str();
    return all_equal ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "specdec-gpu-check: %s\n", e.what());
    return 2;
  }
}
