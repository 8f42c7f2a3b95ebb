// Forward cost curves of the CPU backend on the default model: ms per forward of n rows of one
// sequence on top of a 256-token cache, n = 1..64 (this curve decides tree budgets), of n = 1 and 8
// rows on longer caches (context_cost: 512 and 2,048 tokens, where attention over the cache
// matters), of a 512-token prefill, and of B sequences with one row each (batched decoding).
// docs/benchmarks.md has the numbers.
//   build/bench/bench_forward [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
// The model path comes from SPECDEC_MODEL when set, else the default model; threads from SPECDEC_THREADS;
// SPECDEC_WEIGHTS, SPECDEC_ACTIVATIONS and SPECDEC_KV_TYPE take --weights / --activations /
// --kv-type values (default auto, f32, f32).
#include <specdec/backends/cpu/llama_cpu.hpp>

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <string>

namespace {

specdec::cpu::llama_cpu& model() {
  static specdec::cpu::llama_cpu m = [] {
    const char* path = std::getenv("SPECDEC_MODEL");
    const char* threads = std::getenv("SPECDEC_THREADS");
    const char* weights = std::getenv("SPECDEC_WEIGHTS");          // --weights value, default auto
    const char* activations = std::getenv("SPECDEC_ACTIVATIONS");  // --activations value, default f32
    const char* kv_type = std::getenv("SPECDEC_KV_TYPE");          // --kv-type value, default f32
    specdec::cpu::llama_cpu_options opt;
    opt.n_threads = threads != nullptr ? std::atoi(threads) : 2;
    if (weights != nullptr) opt.weights = specdec::cpu::parse_weight_format(weights, "SPECDEC_WEIGHTS");
    if (activations != nullptr) {
      opt.activations = specdec::cpu::parse_activation_format(activations, "SPECDEC_ACTIVATIONS");
    }
    if (kv_type != nullptr) opt.kv_type = specdec::cpu::parse_kv_format(kv_type, "SPECDEC_KV_TYPE");
    opt.n_ctx = 2048 + 64;
    opt.max_sequences = 8;
    return specdec::cpu::llama_cpu(path != nullptr ? path : SPECDEC_BENCH_MODEL, opt);
  }();
  return m;
}

std::vector<specdec::token_id> random_tokens(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<specdec::token_id> t(n);
  for (auto& x : t) x = static_cast<specdec::token_id>(100 + rng() % 40000);
  return t;
}

bool finite(const specdec::logits_view& l) {
  for (std::int32_t i = 0; i < l.n_rows; ++i) {
    for (float v : l.row(i)) {
      if (!std::isfinite(v)) return false;
    }
  }
  return true;
}

// One sequence, a chain of n rows after a cache of `context` tokens (the rows are dropped after
// each forward).
void chain_cost(benchmark::State& state, std::size_t context, std::size_t n) {
  auto& m = model();
  const specdec::seq_id s = m.create_sequence();
  (void)m.prefill(s, random_tokens(context, 1));
  specdec::forward_batch batch;
  batch.steps.push_back(specdec::sequence_step::chain(s, random_tokens(n, 2), m.n_past(s)));
  const auto check = m.forward(batch);  // check once before timing: finite logits
  m.truncate(s, m.n_past(s));
  if (!finite(check.rows)) {
    state.SkipWithError("non-finite logits");
    m.free_sequence(s);
    return;
  }
  for (auto _ : state) {
    const auto l = m.forward(batch);
    benchmark::DoNotOptimize(l.rows.data);
    m.truncate(s, m.n_past(s));
  }
  m.free_sequence(s);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.counters["n_tokens"] = static_cast<double>(n);
  state.counters["context"] = static_cast<double>(context);
}

// The cost curve: n rows on a 256-token cache.
void forward_cost(benchmark::State& state) { chain_cost(state, 256, static_cast<std::size_t>(state.range(0))); }

// n rows on longer caches: the cost of attention over the cache.
void context_cost(benchmark::State& state) {
  chain_cost(state, static_cast<std::size_t>(state.range(0)), static_cast<std::size_t>(state.range(1)));
}

// Prefill of an n-token prompt into an empty sequence (logits of the last row only).
void prefill_cost(benchmark::State& state) {
  auto& m = model();
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto prompt = random_tokens(n, 5);
  for (auto _ : state) {
    const specdec::seq_id s = m.create_sequence();
    const auto l = m.prefill(s, prompt);
    benchmark::DoNotOptimize(l);
    m.free_sequence(s);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

// B sequences, each with its own 256-token cache, one row each: a batched autoregressive step.
void batch_cost(benchmark::State& state) {
  auto& m = model();
  const auto b = static_cast<std::size_t>(state.range(0));
  std::vector<specdec::seq_id> seqs;
  specdec::forward_batch batch;
  for (std::size_t k = 0; k < b; ++k) {
    seqs.push_back(m.create_sequence());
    (void)m.prefill(seqs.back(), random_tokens(256, 10 + static_cast<unsigned>(k)));
    batch.steps.push_back(specdec::sequence_step::chain(seqs.back(), random_tokens(1, 20 + static_cast<unsigned>(k)), 256));
  }
  const auto check = m.forward(batch);
  for (auto s : seqs) m.truncate(s, 256);
  if (!finite(check.rows)) state.SkipWithError("non-finite logits");
  for (auto _ : state) {
    const auto l = m.forward(batch);
    benchmark::DoNotOptimize(l.rows.data);
    for (auto s : seqs) m.truncate(s, 256);
  }
  for (auto s : seqs) m.free_sequence(s);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * b));
  state.counters["n_sequences"] = static_cast<double>(b);
}

}  // namespace

BENCHMARK(forward_cost)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->Arg(32)->Arg(64)
    ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(context_cost)->ArgsProduct({{512, 2048}, {1, 8}})
    ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();
BENCHMARK(prefill_cost)->Arg(512)->Unit(benchmark::kMillisecond)->MinTime(2.0)->UseRealTime();
BENCHMARK(batch_cost)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

BENCHMARK_MAIN();
