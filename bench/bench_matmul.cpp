// Cost curve of the CPU backend's weight products: one forward's worth of the default model's
// matrices (SmolLM2-135M: 30 layers x {q, k, v, o, gate, up, down} + the 49152-row tied head,
// fp32, random values) applied to n = 1..64 tokens, by specdec::cpu::matmul on 2 threads and by
// Eigen's product (single-threaded: Eigen parallelises only under OpenMP) in the same binary.
// BM_read_bandwidth streams the same weights with a plain sum, so that the memory bound of n = 1,
// bandwidth / weight bytes, can be stated. Run with --benchmark_repetitions=5 for medians.
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "specdec/backends/cpu/matmul.hpp"
#include "specdec/backends/cpu/thread_pool.hpp"
#include "specdec/backends/cpu/vec.hpp"

namespace {

constexpr std::size_t n_layers = 30;
constexpr std::size_t n_embd = 576;
constexpr std::size_t n_kv = 192;
constexpr std::size_t n_ff = 1536;
constexpr std::size_t n_vocab = 49152;
constexpr std::size_t max_tokens = 64;
constexpr std::size_t n_threads = 2;

struct matrix {
  std::size_t rows;
  std::size_t cols;
  std::size_t offset;  // into model_weights::data, a multiple of 16 floats
};

// All weights of one forward in one buffer, in the order a forward reads them.
struct model_weights {
  std::vector<matrix> matrices;
  std::vector<float> storage;
  float* data = nullptr;  // storage aligned to 64 bytes
  std::size_t n_floats = 0;

  model_weights() {
    const std::pair<std::size_t, std::size_t> layer[] = {
        {n_embd, n_embd}, {n_kv, n_embd}, {n_kv, n_embd}, {n_embd, n_embd},
        {n_ff, n_embd},   {n_ff, n_embd}, {n_embd, n_ff}};
    for (std::size_t l = 0; l < n_layers; ++l) {
      for (const auto& [rows, cols] : layer) add(rows, cols);
    }
    add(n_vocab, n_embd);
    storage.resize(n_floats + 16);
    data = storage.data() + (16 - reinterpret_cast<std::uintptr_t>(storage.data()) / 4 % 16) % 16;
    fill_random(data, n_floats, 1);
  }

  void add(std::size_t rows, std::size_t cols) {
    matrices.push_back({rows, cols, n_floats});
    n_floats += (rows * cols + 15) / 16 * 16;
  }

  [[nodiscard]] std::size_t bytes() const { return n_floats * sizeof(float); }

  static void fill_random(float* p, std::size_t n, std::uint64_t seed) {
    std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (std::size_t i = 0; i < n; ++i) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      p[i] = static_cast<float>(static_cast<std::int32_t>(s >> 32)) * 0x1p-31f;  // [-1, 1)
    }
  }
};

model_weights& weights() {
  static model_weights w;
  return w;
}

specdec::cpu::thread_pool& pool() {
  static specdec::cpu::thread_pool p(n_threads);
  return p;
}

struct activations {
  std::vector<float> x = std::vector<float>(max_tokens * n_ff);     // [n, cols]
  std::vector<float> y = std::vector<float>(max_tokens * n_vocab);  // [n, rows]
  activations() { model_weights::fill_random(x.data(), x.size(), 2); }
};

activations& buffers() {
  static activations a;
  return a;
}

void forward_specdec(std::size_t n) {
  model_weights& w = weights();
  activations& a = buffers();
  for (const matrix& m : w.matrices) {
    specdec::cpu::matmul(pool(), w.data + m.offset, m.rows, m.cols, a.x.data(), n, a.y.data());
  }
}

void forward_eigen(std::size_t n) {
  using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  model_weights& w = weights();
  activations& a = buffers();
  for (const matrix& m : w.matrices) {
    const Eigen::Map<const row_major> wm(w.data + m.offset, m.rows, m.cols);
    const Eigen::Map<const row_major> xm(a.x.data(), n, m.cols);
    Eigen::Map<row_major> ym(a.y.data(), n, m.rows);
    ym.noalias() = xm * wm.transpose();
  }
}

// Checks the head's output (the last product) against dot() before timing.
bool head_is_correct(std::size_t n, double tolerance) {
  const model_weights& w = weights();
  const activations& a = buffers();
  const matrix& head = w.matrices.back();
  for (std::size_t t = 0; t < n; t += std::max<std::size_t>(1, n / 4)) {
    for (std::size_t r = 0; r < head.rows; r += 997) {
      const float want = specdec::cpu::dot(w.data + head.offset + r * head.cols,
                                           a.x.data() + t * head.cols, head.cols);
      if (std::abs(a.y[t * head.rows + r] - want) > tolerance) return false;
    }
  }
  return true;
}

void report(benchmark::State& state, std::size_t n) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));  // tokens/s
  state.counters["weight_GBps"] = benchmark::Counter(
      static_cast<double>(weights().bytes()) * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

void BM_matmul_model(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  forward_specdec(n);
  if (!head_is_correct(n, 0.0)) state.SkipWithError("matmul disagrees with dot()");
  for (auto _ : state) {
    forward_specdec(n);
    benchmark::ClobberMemory();
  }
  report(state, n);
  state.SetLabel(std::string(specdec::cpu::simd::isa_name) + ", 2 threads");
}

void BM_eigen_model(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  forward_eigen(n);
  if (!head_is_correct(n, 1e-3)) state.SkipWithError("Eigen disagrees with dot()");
  for (auto _ : state) {
    forward_eigen(n);
    benchmark::ClobberMemory();
  }
  report(state, n);
  state.SetLabel("Eigen, 1 thread");
}

// Streams all weights once with a plain sum on range(0) threads, each thread one contiguous half:
// the machine's read bandwidth. Of the read loops tried on this machine (1 to 8 streams per
// thread, 1 or 4 accumulators, with and without software prefetch) this simplest one was the
// fastest, by up to 25%.
void BM_read_bandwidth(benchmark::State& state) {
  using namespace specdec::cpu;
  const auto threads = static_cast<std::size_t>(state.range(0));
  thread_pool local(threads);
  const model_weights& w = weights();
  const std::size_t n_steps = w.n_floats / simd::lanes;
  std::vector<float> partial(threads * 16);
  for (auto _ : state) {
    local.parallel_for(threads, [&](std::size_t i) {
      simd::vec sum = simd::zero();
      const simd::vec one = simd::broadcast(1.0f);
      const float* end = w.data + n_steps * (i + 1) / threads * simd::lanes;
      for (const float* p = w.data + n_steps * i / threads * simd::lanes; p < end; p += simd::lanes) {
        sum = simd::fmadd(simd::load(p), one, sum);
      }
      partial[i * 16] = simd::reduce_lanes(sum);
    });
    benchmark::DoNotOptimize(partial.data());
    benchmark::ClobberMemory();
  }
  const double bytes = static_cast<double>(n_steps * simd::lanes * sizeof(float));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes * static_cast<double>(state.iterations())));
  state.counters["weight_MB"] = static_cast<double>(w.bytes()) / 1e6;
}

// Cost of one parallel_for with no work, back to back, on range(0) threads that poll for
// range(1) microseconds before sleeping (0: every job wakes the workers through the condition
// variable).
void BM_pool_dispatch(benchmark::State& state) {
  specdec::cpu::thread_pool local(static_cast<std::size_t>(state.range(0)),
                                  std::chrono::microseconds(state.range(1)));
  std::vector<int> sink(local.size() * 16);
  for (auto _ : state) {
    local.parallel_for(local.size(), [&](std::size_t i) { sink[i * 16] += 1; });
  }
  benchmark::DoNotOptimize(sink.data());
}

}  // namespace

BENCHMARK(BM_read_bandwidth)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_pool_dispatch)
    ->ArgNames({"threads", "spin_us"})->Args({2, 200})->Args({2, 0})
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_matmul_model)
    ->ArgName("n")->RangeMultiplier(2)->Range(1, max_tokens)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_eigen_model)
    ->ArgName("n")->RangeMultiplier(2)->Range(1, max_tokens)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
