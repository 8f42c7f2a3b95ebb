// Cost curves of the quantized weight products (project.hpp): one forward's worth of the default
// model's matrices (SmolLM2-135M: 30 layers x {qkv 960x576, o 576x576, gate_up 3072x576,
// down 576x1536} + the 49152x576 tied head) in one storage format, random blocks, applied to
// n = 1..64 tokens on 2 threads, with fp32 activations (int8:0, blocks widened in registers) and
// int8 activations (int8:1). "native" is the default model's own mix: Q4_1 layers, Q8_0 head.
// BM_read_bandwidth (same binary, same run) streams a 512 MB buffer: the memory bound of n = 1 is
// bandwidth / weight bytes. Run with --benchmark_repetitions=5 for medians.
#include <benchmark/benchmark.h>

#include <specdec/backends/cpu/project.hpp>
#include <specdec/backends/cpu/quant/convert.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace specdec::cpu;

constexpr std::size_t n_layers = 30, n_embd = 576, n_ff = 1536, n_vocab = 49152, n_qkv = 960;
constexpr std::size_t max_tokens = 64;
constexpr std::size_t n_threads = 2;

thread_pool& pool() {
  static thread_pool p(n_threads);
  return p;
}

void put_half(std::byte* p, float v) {
  const std::uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// Random packed values, scales of order 1e-3 (the values do not change the cost).
weight_matrix random_matrix(block_format f, std::size_t rows, std::size_t cols, std::uint64_t seed) {
  weight_matrix m(f, rows, cols);
  std::mt19937_64 rng(seed);
  auto* p = m.row(0);
  for (std::size_t i = 0; i < m.bytes(); i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(p + i, &v, std::min<std::size_t>(8, m.bytes() - i));
  }
  const auto t = traits(f);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t b = 0; b < cols / t.block_values; ++b) {
      std::byte* blk = m.row(r) + b * t.block_bytes;
      switch (f) {
        case block_format::f32:
          for (int j = 0; j < 1; ++j) { const float v = 1e-3f; std::memcpy(blk, &v, 4); }
          break;
        case block_format::bf16: { const std::uint16_t h = fp32_to_bf16(1e-3f); std::memcpy(blk, &h, 2); } break;
        case block_format::q4_1: put_half(blk, 1e-3f); put_half(blk + 2, -8e-3f); break;
        case block_format::q4_k: case block_format::q5_k: put_half(blk, 1e-3f); put_half(blk + 2, 1e-4f); break;
        case block_format::q6_k: put_half(blk + 208, 1e-4f); break;
        default: put_half(blk, 1e-3f); break;
      }
    }
  }
  return m;
}

struct model {
  std::vector<weight_matrix> matrices;  // in forward order
  std::size_t bytes = 0;
};

// The model for benchmark argument `which` (index into formats below); one held at a time.
const std::vector<std::pair<std::string, std::pair<block_format, block_format>>>& formats() {
  static const std::vector<std::pair<std::string, std::pair<block_format, block_format>>> f = {
      {"native", {block_format::q4_1, block_format::q8_0}}, {"Q4_0", {block_format::q4_0, block_format::q4_0}},
      {"Q4_1", {block_format::q4_1, block_format::q4_1}},   {"Q5_0", {block_format::q5_0, block_format::q5_0}},
      {"Q8_0", {block_format::q8_0, block_format::q8_0}},   {"Q4_K", {block_format::q4_k, block_format::q4_k}},
      {"Q5_K", {block_format::q5_k, block_format::q5_k}},   {"Q6_K", {block_format::q6_k, block_format::q6_k}},
      {"BF16", {block_format::bf16, block_format::bf16}},   {"F32", {block_format::f32, block_format::f32}}};
  return f;
}

const model& get_model(std::size_t which) {
  static std::size_t held = ~std::size_t{0};
  static std::unique_ptr<model> m;
  if (held != which) {
    m.reset();
    m = std::make_unique<model>();
    const auto [layer, head] = formats()[which].second;
    std::uint64_t seed = 1;
    for (std::size_t l = 0; l < n_layers; ++l) {
      m->matrices.push_back(random_matrix(layer, n_qkv, n_embd, seed++));
      m->matrices.push_back(random_matrix(layer, n_embd, n_embd, seed++));
      m->matrices.push_back(random_matrix(layer, 2 * n_ff, n_embd, seed++));
      m->matrices.push_back(random_matrix(layer, n_embd, n_ff, seed++));
    }
    m->matrices.push_back(random_matrix(head, n_vocab, n_embd, seed++));
    for (const auto& w : m->matrices) m->bytes += w.bytes();
    held = which;
  }
  return *m;
}

struct activations {
  std::vector<float> x = std::vector<float>(max_tokens * n_ff);
  std::vector<float> y = std::vector<float>(max_tokens * n_vocab);
  activations() {
    std::mt19937 rng(2);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : x) v = normal(rng);
  }
};

activations& buffers() {
  static activations a;
  return a;
}

void forward(const model& m, std::size_t n, activation_format act) {
  auto& a = buffers();
  for (const auto& w : m.matrices) project(pool(), w, a.x.data(), n, a.y.data(), act);
}

void BM_project_model(benchmark::State& state) {
  const auto which = static_cast<std::size_t>(state.range(0));
  const auto n = static_cast<std::size_t>(state.range(1));
  const auto act = state.range(2) == 0 ? activation_format::f32 : activation_format::int8;
  const model& m = get_model(which);
  forward(m, n, act);
  // Check once before timing: token 0 of the head equals the same token run alone.
  const weight_matrix& head = m.matrices.back();
  std::vector<float> alone(head.rows());
  project(pool(), head, buffers().x.data(), 1, alone.data(), act);
  if (std::memcmp(alone.data(), buffers().y.data(), head.rows() * sizeof(float)) != 0) {
    state.SkipWithError("batched head row differs from the token alone");
  }
  for (auto _ : state) {
    forward(m, n, act);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.counters["weight_MB"] = static_cast<double>(m.bytes) / 1e6;
  state.counters["weight_GBps"] = benchmark::Counter(static_cast<double>(m.bytes) * static_cast<double>(state.iterations()) / 1e9,
                                                     benchmark::Counter::kIsRate);
  state.SetLabel(formats()[which].first + (act == activation_format::f32 ? ", f32 activations" : ", int8 activations (") +
                 (act == activation_format::f32 ? std::string() : std::string(quant::int_isa_name) + ")") + ", 2 threads");
}

// Streams 512 MB with a plain sum on range(0) threads, each thread one contiguous part.
void BM_read_bandwidth(benchmark::State& state) {
  const auto threads = static_cast<std::size_t>(state.range(0));
  thread_pool local(threads);
  static std::vector<float> data(128u << 20, 1.0f);
  const std::size_t n_steps = data.size() / simd::lanes;
  std::vector<float> partial(threads * 16);
  for (auto _ : state) {
    local.parallel_for(threads, [&](std::size_t i) {
      simd::vec sum = simd::zero();
      const simd::vec one = simd::broadcast(1.0f);
      const float* end = data.data() + n_steps * (i + 1) / threads * simd::lanes;
      for (const float* p = data.data() + n_steps * i / threads * simd::lanes; p < end; p += simd::lanes) {
        sum = simd::fmadd(simd::load(p), one, sum);
      }
      partial[i * 16] = simd::reduce_lanes(sum);
    });
    benchmark::DoNotOptimize(partial.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(data.size() * sizeof(float) * state.iterations()));
}

void model_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"format", "n", "int8"});
  for (std::size_t f = 0; f < formats().size(); ++f) {
    const bool quantized = f < formats().size() - 2;  // BF16 and F32 have one path
    for (long act : {0L, 1L}) {
      if (act == 1 && !quantized) continue;
      for (long n : {1, 2, 4, 8, 16, 32, 64}) b->Args({static_cast<long>(f), n, act});
    }
  }
}

}  // namespace

BENCHMARK(BM_read_bandwidth)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_project_model)->Apply(model_args)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
