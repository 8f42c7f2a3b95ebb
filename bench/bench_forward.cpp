// Forward cost curve of the CPU backend on the default model: ms per forward of n tokens on top of a
// 256-token cache, n = 1..64. This curve decides tree budgets (docs/benchmarks.md).
//   build/bench/bench_forward [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
// The model path comes from SPECDEC_MODEL when set, else the default model; threads from SPECDEC_THREADS.
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
    specdec::cpu::llama_cpu_options opt;
    opt.n_threads = threads != nullptr ? std::atoi(threads) : 2;
    opt.n_ctx = 512;
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

void forward_cost(benchmark::State& state) {
  auto& m = model();
  const auto n = static_cast<std::size_t>(state.range(0));
  m.reset();
  (void)m.prefill(random_tokens(256, 1));
  const auto batch = specdec::step_batch::chain(random_tokens(n, 2), m.n_past());
  const auto check = m.forward(batch);  // check once before timing: finite logits
  for (std::int32_t i = 0; i < check.n_rows; ++i) {
    for (float v : check.row(i)) {
      if (!std::isfinite(v)) {
        state.SkipWithError("non-finite logits");
        return;
      }
    }
  }
  for (auto _ : state) {
    const auto l = m.forward(batch);
    benchmark::DoNotOptimize(l.data);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.counters["n_tokens"] = static_cast<double>(n);
}

}  // namespace

BENCHMARK(forward_cost)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->Arg(32)->Arg(64)
    ->Unit(benchmark::kMillisecond)->MinTime(1.0)->UseRealTime();

BENCHMARK_MAIN();
