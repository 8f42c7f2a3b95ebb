// Lookahead trie drafter (arXiv 2312.12728): CPU cost per decode step, draft + observe, on a
// synthetic request stream, with a greedy oracle standing in for the target model (it accepts the
// longest draft path that matches the request's true output). Requests: a 384-token prompt and a
// 256-token output over a 32k vocabulary from an order-2 Zipfian source; 15% of output positions start
// copying 4-24 prompt tokens (RAG/summary-like reuse). 128 requests warm the trie before timing.
// Time per iteration = one step: draft + oracle accept + observe, plus begin()/end() at request
// boundaries. items/s = emitted tokens per second of that work. Counters: MAT, drafted nodes per
// step, draft_us / observe_us / begin_end_us per step, trie nodes and MB at the end, evictions.
// bm_ngram_trie_evict: the pause of one eviction of a full pool.
#include <benchmark/benchmark.h>

#include <specdec/drafters/lookahead_trie.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace {

using specdec::token_id;

constexpr token_id n_vocab = 32000;
constexpr std::size_t n_requests = 4096;
constexpr std::size_t n_warm_requests = 128;

struct request {
  std::vector<token_id> prompt;  // [384]
  std::vector<token_id> output;  // [256]
};

class zipf_source {
 public:
  zipf_source() : cdf_(n_vocab) {
    double sum = 0;
    for (token_id i = 0; i < n_vocab; ++i) cdf_[static_cast<std::size_t>(i)] = sum += 1.0 / std::pow(i + 1.0, 1.1);
    for (double& c : cdf_) c /= sum;
  }
  token_id draw(double u) const {
    return static_cast<token_id>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin()) % n_vocab;
  }
  // Next token after (a, b): one of 4 hashed favourites (55/20/10/5%), else any token by frequency.
  template <class Rng>
  token_id next(token_id a, token_id b, Rng& rng) const {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const double pick = u(rng);
    const double cut[4] = {0.55, 0.75, 0.85, 0.90};
    for (std::uint64_t j = 0; j < 4; ++j) {
      if (pick < cut[j]) {
        std::uint64_t h = (static_cast<std::uint64_t>(a) * 0x9E3779B97F4A7C15ull) ^ (static_cast<std::uint64_t>(b) << 20) ^ (j * 0xBF58476D1CE4E5B9ull);
        h ^= h >> 31;
        h *= 0x94D049BB133111EBull;
        h ^= h >> 29;
        return draw(static_cast<double>(h >> 11) * 0x1.0p-53);
      }
    }
    return draw(u(rng));
  }

 private:
  std::vector<double> cdf_;
};

const std::vector<request>& corpus() {
  static const std::vector<request> reqs = [] {
    const zipf_source src;
    std::mt19937_64 rng(2312);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<request> out(n_requests);
    for (auto& r : out) {
      token_id a = src.draw(u(rng)), b = src.draw(u(rng));
      for (int i = 0; i < 384; ++i) {
        r.prompt.push_back(src.next(a, b, rng));
        a = b;
        b = r.prompt.back();
      }
      while (r.output.size() < 256) {
        if (u(rng) < 0.15) {
          const std::size_t from = rng() % (r.prompt.size() - 24), len = 4 + rng() % 21;
          for (std::size_t k = 0; k < len && r.output.size() < 256; ++k) r.output.push_back(r.prompt[from + k]);
        } else {
          r.output.push_back(src.next(a, b, rng));
        }
        a = b;
        b = r.output.back();
      }
    }
    return out;
  }();
  return reqs;
}

// One simulated generation stream: requests one after another, each step drafted, accepted by the
// oracle and observed.
struct stream {
  specdec::lookahead_trie_drafter drafter;
  std::size_t req = 0, pos = 0;
  std::vector<token_id> ctx;
  std::int64_t steps = 0, emitted = 0, drafted = 0;
  double draft_s = 0, observe_s = 0, begin_end_s = 0;

  explicit stream(const specdec::lookahead_options& o) : drafter(o) { start(); }

  void start() {
    const request& r = corpus()[req % n_requests];
    drafter.begin(r.prompt);
    ctx = r.prompt;
    pos = 0;
  }

  void step() {
    using clock = std::chrono::steady_clock;
    const request& r = corpus()[req % n_requests];
    if (pos == r.output.size()) {
      const auto t = clock::now();
      drafter.end();
      ++req;
      start();
      begin_end_s += std::chrono::duration<double>(clock::now() - t).count();
      return step();
    }
    auto t0 = clock::now();
    const specdec::draft_tree tree = drafter.draft(specdec::draft_request{ctx, drafter.options().decoding_length});
    auto t1 = clock::now();
    specdec::acceptance acc;
    acc.path = {0};
    std::int32_t node = 0;
    while (pos + acc.path.size() - 1 < r.output.size()) {
      const std::int32_t child = tree.find_child(node, r.output[pos + acc.path.size() - 1]);
      if (child < 0) break;
      acc.path.push_back(child);
      node = child;
    }
    const std::size_t n_new = std::min(acc.path.size(), r.output.size() - pos);
    acc.next_token = r.output[pos + n_new - 1];
    ctx.insert(ctx.end(), r.output.begin() + static_cast<std::ptrdiff_t>(pos),
               r.output.begin() + static_cast<std::ptrdiff_t>(pos + n_new));
    const std::span<const token_id> fresh(ctx.data() + ctx.size() - n_new, n_new);
    auto t2 = clock::now();
    drafter.observe(specdec::step_outcome{tree, specdec::logits_view{}, acc, fresh, ctx});
    auto t3 = clock::now();
    pos += n_new;
    ++steps;
    emitted += static_cast<std::int64_t>(n_new);
    drafted += tree.size() - 1;
    draft_s += std::chrono::duration<double>(t1 - t0).count();
    observe_s += std::chrono::duration<double>(t3 - t2).count();
  }

  void reset_counters() {
    steps = emitted = drafted = 0;
    draft_s = observe_s = begin_end_s = 0;
  }
};

// Args: decoding_length, log2(max_nodes).
void bm_lookahead_step(benchmark::State& state) {
  specdec::lookahead_options o;
  o.branch_length = 8;
  o.decoding_length = static_cast<std::int32_t>(state.range(0));
  o.max_nodes = std::size_t{1} << state.range(1);
  stream s(o);
  while (s.req < n_warm_requests) s.step();
  if (s.emitted <= s.steps) {
    state.SkipWithError("warm-up accepted no draft token: the drafter or the stream is broken");
    return;
  }
  try {
    s.drafter.draft(specdec::draft_request{s.ctx, o.decoding_length}).validate();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  s.reset_counters();
  const std::int64_t evictions_before = s.drafter.trie().n_evictions();
  for (auto _ : state) s.step();

  const auto steps = static_cast<double>(s.steps);
  state.SetItemsProcessed(s.emitted);
  state.counters["MAT"] = static_cast<double>(s.emitted) / steps;
  state.counters["drafted"] = static_cast<double>(s.drafted) / steps;
  state.counters["draft_us"] = 1e6 * s.draft_s / steps;
  state.counters["observe_us"] = 1e6 * s.observe_s / steps;
  state.counters["begin_end_us"] = 1e6 * s.begin_end_s / steps;  // per step, amortised
  state.counters["nodes"] = static_cast<double>(s.drafter.n_nodes());
  state.counters["MB"] = static_cast<double>(s.drafter.memory_bytes()) / 1e6;
  state.counters["evictions"] = static_cast<double>(s.drafter.trie().n_evictions() - evictions_before);
  state.counters["requests"] = static_cast<double>(s.req - n_warm_requests);
}
BENCHMARK(bm_lookahead_step)
    ->ArgNames({"decoding_length", "log2_max_nodes"})
    ->Args({16, 20})
    ->Args({64, 20})
    ->Args({16, 16})
    ->Args({64, 16})
    ->Unit(benchmark::kMicrosecond);

// One eviction of a full pool of 2^k nodes filled from the corpus's outputs and prompts.
void bm_ngram_trie_evict(benchmark::State& state) {
  const std::size_t cap = std::size_t{1} << state.range(0);
  std::size_t before = 0, after = 0;
  for (auto _ : state) {
    state.PauseTiming();
    specdec::ngram_trie trie(cap);
    for (std::size_t r = 0; trie.n_nodes() + 16 < cap; ++r) {
      const request& q = corpus()[r % n_requests];
      for (const auto* text : {&q.prompt, &q.output}) {
        for (std::size_t i = 0; i + 9 < text->size() && trie.n_nodes() + 16 < cap; ++i) {
          trie.insert((*text)[i], std::span(*text).subspan(i + 1, 9), specdec::ngram_source::output);
        }
      }
    }
    before = trie.n_nodes();
    state.ResumeTiming();
    trie.evict();
    after = trie.n_nodes();
    benchmark::DoNotOptimize(after);
  }
  state.counters["nodes_before"] = static_cast<double>(before);
  state.counters["nodes_after"] = static_cast<double>(after);
}
BENCHMARK(bm_ngram_trie_evict)->Arg(16)->Arg(20)->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
