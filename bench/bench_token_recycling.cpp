// Per-step cost of the Token Recycling drafter (arXiv 2408.08696) at the default model's vocabulary
// (n_vocab 49152, k 8) with a warmed matrix: draft (template expansion through the matrix) and observe
// (top-8 of every verified node's logits row, random floats) for trees of 8, 24 and 80 drafted
// nodes (tr-8, tr-24, 2.2.2). BM_top_k_row times one row for the SIMD, portable and reference top-k.
// Reported time is per step (per row for BM_top_k_row); items = tree nodes.
#include <benchmark/benchmark.h>

#include <specdec/core/topk.hpp>
#include <specdec/drafters/token_recycling.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace {

constexpr std::int32_t n_vocab = 49152;
constexpr std::int32_t k = 8;
constexpr std::int32_t n_warm_rows = 64;

std::vector<float> random_floats(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    x = static_cast<float>(static_cast<std::int32_t>(s >> 32)) * 0x1p-31f;
  }
  return v;
}

const char* preset_of(std::int64_t n_draft) {
  return n_draft == 80 ? "2.2.2" : n_draft == 24 ? "tr-24" : "tr-8";
}

// A drafter whose every row holds the top-8 of one of 64 random logits rows.
specdec::token_recycling_drafter warmed_drafter(const char* preset) {
  specdec::token_recycling_drafter d(n_vocab, {preset, k});
  const std::vector<float> logits = random_floats(static_cast<std::size_t>(n_warm_rows) * n_vocab, 1);
  const std::vector<specdec::token_id> none;
  const specdec::acceptance accepted{{0}, 0};
  for (std::int32_t first = 0; first < n_vocab; first += n_warm_rows) {
    specdec::draft_tree chain = specdec::draft_tree::root_only(first);
    for (std::int32_t i = 1; i < n_warm_rows; ++i) chain.add(i - 1, first + i);
    d.observe({chain, {logits.data(), n_warm_rows, n_vocab}, accepted, none, none});
  }
  return d;
}

void BM_draft(benchmark::State& state) {
  const auto d = warmed_drafter(preset_of(state.range(0)));
  const std::vector<specdec::token_id> context{1, 2, 3};
  const specdec::draft_request request{context, 1 + static_cast<std::int32_t>(state.range(0))};
  const auto check = d.draft(request);
  check.validate();
  if (check.size() != request.budget) state.SkipWithError("warmed tree is not full");
  for (auto _ : state) {
    auto tree = d.draft(request);
    benchmark::DoNotOptimize(tree.tokens.data());
  }
  state.counters["nodes"] = static_cast<double>(check.size());
  state.SetItemsProcessed(state.iterations() * check.size());
}

void BM_observe(benchmark::State& state) {
  auto d = warmed_drafter(preset_of(state.range(0)));
  const std::vector<specdec::token_id> context{1, 2, 3};
  const auto tree = d.draft({context, 1 + static_cast<std::int32_t>(state.range(0))});
  const std::vector<float> logits = random_floats(static_cast<std::size_t>(tree.size()) * n_vocab, 2);  // [tree.size(), n_vocab]
  const specdec::acceptance accepted{{0}, 0};
  const std::vector<specdec::token_id> none;
  const specdec::step_outcome outcome{tree, {logits.data(), tree.size(), n_vocab}, accepted, none, none};
  // Check once: the root's row is the reference top-8 of row 0 (assuming the root appears once).
  d.observe(outcome);
  std::vector<std::int32_t> want(k);
  specdec::top_k_reference(outcome.logits.row(0), want);
  if (!std::equal(want.begin(), want.end(), d.row(tree.root()).begin())) state.SkipWithError("observe disagrees with top_k_reference");
  for (auto _ : state) {
    d.observe(outcome);
    benchmark::ClobberMemory();
  }
  state.counters["nodes"] = static_cast<double>(tree.size());
  state.SetItemsProcessed(state.iterations() * tree.size());
}

// Which: 0 = top_k (SIMD), 1 = top_k_portable, 2 = top_k_reference.
void BM_top_k_row(benchmark::State& state) {
  const std::vector<float> row = random_floats(n_vocab, 3);
  std::vector<std::int32_t> ids(k), want(k);
  auto run = [&] {
    switch (state.range(0)) {
      case 0: specdec::top_k(row, ids); break;
      case 1: specdec::top_k_portable(row, ids); break;
      default: specdec::top_k_reference(row, ids); break;
    }
  };
  specdec::top_k_reference(row, want);
  run();
  if (ids != want) state.SkipWithError("top_k disagrees with top_k_reference");
  for (auto _ : state) {
    run();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetLabel(state.range(0) == 0 ? "simd" : state.range(0) == 1 ? "portable" : "reference");
  state.SetBytesProcessed(state.iterations() * n_vocab * static_cast<std::int64_t>(sizeof(float)));
}

}  // namespace

BENCHMARK(BM_draft)->Arg(8)->Arg(24)->Arg(80)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_observe)->Arg(8)->Arg(24)->Arg(80)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_top_k_row)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
