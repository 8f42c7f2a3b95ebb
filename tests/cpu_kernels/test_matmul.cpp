// Batch invariance of the CPU kernels: every row of a matmul over n tokens equals, bit for bit, the
// same token computed alone (n = 1), whatever n, the thread count or the row block; every element
// equals dot() of vec.hpp; and results agree with a double-precision reference within the
// rounding bound of a fixed-order fp32 sum.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "specdec/backends/cpu/matmul.hpp"
#include "specdec/backends/cpu/thread_pool.hpp"
#include "specdec/backends/cpu/vec.hpp"

namespace {

using specdec::cpu::thread_pool;

std::vector<float> random_vector(std::size_t size, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(size);
  for (float& x : v) x = dist(rng);
  return v;
}

// |computed - exact| for a sum of `terms` products accumulated in lanes over ceil(terms/lanes)
// chunks and a 4-level tree is at most (chunks + 4) * u * sum|a_i b_i| (u = 2^-24), to first order.
double rounding_bound(std::size_t terms, double abs_sum) {
  const double chunks = static_cast<double>((terms + specdec::cpu::simd::lanes - 1) /
                                            specdec::cpu::simd::lanes);
  return (chunks + 4.0) * std::ldexp(1.0, -24) * abs_sum * 1.01 + 1e-30;
}

struct reference {
  double value;
  double abs_sum;
};

reference dot_reference(const float* a, const float* b, std::size_t n) {
  reference r{0.0, 0.0};
  for (std::size_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(a[i]) * static_cast<double>(b[i]);
    r.value += p;
    r.abs_sum += std::abs(p);
  }
  return r;
}

bool same_bits(const float* a, const float* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("dot matches a double-precision reference for every length", "[cpu]") {
  const auto a = random_vector(300, 1);
  const auto b = random_vector(300, 2);
  for (std::size_t n = 0; n <= 300; ++n) {
    const float got = specdec::cpu::dot(a.data(), b.data(), n);
    const reference ref = dot_reference(a.data(), b.data(), n);
    INFO("n = " << n);
    REQUIRE(std::abs(got - ref.value) <= rounding_bound(n, ref.abs_sum));
  }
}

TEST_CASE("dot ignores what lies past the end of its inputs", "[cpu]") {
  auto a = random_vector(64, 3);
  auto b = random_vector(64, 4);
  const float before = specdec::cpu::dot(a.data(), b.data(), 37);
  for (std::size_t i = 37; i < 64; ++i) a[i] = b[i] = std::nanf("");
  CHECK(specdec::cpu::dot(a.data(), b.data(), 37) == before);
}

TEST_CASE("axpy applies the same operation to every element", "[cpu]") {
  const auto x = random_vector(100, 5);
  const auto y0 = random_vector(100, 6);
  for (std::size_t n : {0, 1, 7, 8, 15, 16, 17, 64, 100}) {
    auto y = y0;
    specdec::cpu::axpy(0.37f, x.data(), y.data(), n);
    for (std::size_t i = 0; i < 100; ++i) {
      if (i >= n) {
        REQUIRE(y[i] == y0[i]);  // untouched past n
        continue;
      }
      // Element i alone, at offset 0 of a one-element call, must give the same bits.
      float single = y0[i];
      specdec::cpu::axpy(0.37f, &x[i], &single, 1);
      INFO("n " << n << " i " << i);
      REQUIRE(std::memcmp(&y[i], &single, sizeof(float)) == 0);
      const double exact = 0.37 * static_cast<double>(x[i]) + static_cast<double>(y0[i]);
      REQUIRE(std::abs(y[i] - exact) <= 2 * std::ldexp(std::abs(exact) + std::abs(0.37 * x[i]), -24));
    }
  }
}

TEST_CASE("matmul rows are bit-identical to the same token alone", "[cpu]") {
  // Shapes: odd cols (not a multiple of 8 or 16), rows not a multiple of the 4-row block, a 1x1,
  // two of the default model's shapes (k/v projection, down projection cut short; both span
  // several 128 KB row panels and prefetch ahead), and rows longer than a panel.
  const std::vector<std::pair<std::size_t, std::size_t>> shapes = {
      {1, 1}, {3, 5}, {37, 100}, {13, 33}, {64, 576}, {192, 576}, {50, 1536}, {17, 16}, {6, 9000}};
  constexpr std::size_t max_n = 40;
  thread_pool one(1);
  thread_pool two(2);
  thread_pool three(3, std::chrono::microseconds{0});  // more threads than this CI's 2 cores: no spinning
  thread_pool* pools[] = {&one, &two, &three};

  std::uint32_t seed = 100;
  for (const auto& [rows, cols] : shapes) {
    const auto w = random_vector(rows * cols, seed++);
    const auto x = random_vector(max_n * cols, seed++);

    // Each token alone, single-threaded: the ground truth for the bit comparisons.
    std::vector<float> alone(max_n * rows);
    for (std::size_t t = 0; t < max_n; ++t) {
      specdec::cpu::matmul(one, w.data(), rows, cols, x.data() + t * cols, 1, alone.data() + t * rows);
    }
    std::size_t not_dot = 0;
    std::size_t inexact = 0;
    for (std::size_t t = 0; t < max_n; ++t) {
      for (std::size_t r = 0; r < rows; ++r) {
        const float* wr = w.data() + r * cols;
        const float* xt = x.data() + t * cols;
        const float got = alone[t * rows + r];
        const float via_dot = specdec::cpu::dot(wr, xt, cols);
        not_dot += same_bits(&got, &via_dot, 1) ? 0 : 1;
        const reference ref = dot_reference(wr, xt, cols);
        inexact += std::abs(got - ref.value) <= rounding_bound(cols, ref.abs_sum) ? 0 : 1;
      }
    }
    INFO("rows " << rows << " cols " << cols);
    REQUIRE(not_dot == 0);
    REQUIRE(inexact == 0);

    std::vector<float> y(max_n * rows);
    for (thread_pool* pool : pools) {
      for (std::size_t n = 1; n <= max_n; ++n) {
        // Let token block t start at different tokens: batches are windows x[first, first + n).
        const std::size_t first = (n * 7) % (max_n - n + 1);
        std::fill(y.begin(), y.end(), -1.0f);
        specdec::cpu::matmul(*pool, w.data(), rows, cols, x.data() + first * cols, n, y.data());
        for (std::size_t t = 0; t < n; ++t) {
          INFO("rows " << rows << " cols " << cols << " threads " << pool->size() << " n " << n
                       << " token " << first + t);
          REQUIRE(same_bits(y.data() + t * rows, alone.data() + (first + t) * rows, rows));
        }
        REQUIRE(y[n * rows - 1] != -1.0f);
        if (n < max_n) REQUIRE(y[n * rows] == -1.0f);  // nothing written past [n, rows)
      }
    }
  }
}

TEST_CASE("matmul matches a double-precision reference on the default model's shapes", "[cpu]") {
  thread_pool pool(2);
  const std::vector<std::pair<std::size_t, std::size_t>> shapes = {
      {576, 576}, {192, 576}, {1536, 576}, {576, 1536}};
  std::uint32_t seed = 500;
  for (const auto& [rows, cols] : shapes) {
    constexpr std::size_t n = 9;
    const auto w = random_vector(rows * cols, seed++);
    const auto x = random_vector(n * cols, seed++);
    std::vector<float> y(n * rows);
    specdec::cpu::matmul(pool, w.data(), rows, cols, x.data(), n, y.data());
    double worst = 0.0;
    for (std::size_t t = 0; t < n; ++t) {
      for (std::size_t r = 0; r < rows; ++r) {
        const reference ref = dot_reference(w.data() + r * cols, x.data() + t * cols, cols);
        const double err = std::abs(y[t * rows + r] - ref.value);
        REQUIRE(err <= rounding_bound(cols, ref.abs_sum));
        worst = std::max(worst, err / ref.abs_sum);
      }
    }
    INFO("rows " << rows << " cols " << cols << " worst error / sum|w x| = " << worst);
    CHECK(worst < 1e-6);
  }
}

TEST_CASE("dot4, weighted_sum and weighted_sum_add in blocks equal dot and repeated axpy bit for bit", "[cpu]") {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::size_t n : {1u, 7u, 16u, 33u, 64u, 100u, 128u, 129u}) {
    std::vector<float> a(n), b(4 * n);
    for (auto& v : a) v = normal(rng);
    for (auto& v : b) v = normal(rng);
    float out[4];
    specdec::cpu::dot4(a.data(), b.data(), b.data() + n, b.data() + 2 * n, b.data() + 3 * n, n, out);
    for (std::size_t j = 0; j < 4; ++j) {
      const float want = specdec::cpu::dot(a.data(), b.data() + j * n, n);
      CHECK(std::memcmp(&out[j], &want, sizeof(float)) == 0);
    }
    const std::size_t m = 37;
    std::vector<float> w(m), xs(m * n), got(n), want(n, 0.0f);
    std::vector<const float*> rows(m);
    for (auto& v : w) v = normal(rng);
    for (auto& v : xs) v = normal(rng);
    for (std::size_t k = 0; k < m; ++k) rows[k] = xs.data() + k * n;
    specdec::cpu::weighted_sum(w.data(), rows.data(), m, got.data(), n);
    for (std::size_t k = 0; k < m; ++k) specdec::cpu::axpy(w[k], rows[k], want.data(), n);
    CHECK(std::memcmp(got.data(), want.data(), n * sizeof(float)) == 0);
    // In two key blocks (attention's V pass): the first 20 keys, then the rest onto the result.
    std::vector<float> blocks(n, 0.0f);
    specdec::cpu::weighted_sum_add(w.data(), rows.data(), 20, blocks.data(), n);
    specdec::cpu::weighted_sum_add(w.data() + 20, rows.data() + 20, m - 20, blocks.data(), n);
    CHECK(std::memcmp(blocks.data(), want.data(), n * sizeof(float)) == 0);
  }
}

TEST_CASE("16-bit loads widen every fp16 and bf16 value exactly", "[cpu]") {
  // Every bit pattern, in vectors of `lanes`, against gguf/dequantize.hpp's scalar conversion (which
  // the NumPy-checked dequantizer tests hold to numpy.float16). NaNs compare by NaN-ness only.
  using specdec::cpu::bf16_bits;
  using specdec::cpu::fp16_bits;
  namespace simd = specdec::cpu::simd;
  std::vector<fp16_bits> h(65536);
  std::vector<bf16_bits> b(65536);
  for (std::size_t i = 0; i < 65536; ++i) {
    h[i] = fp16_bits{static_cast<std::uint16_t>(i)};
    b[i] = bf16_bits{static_cast<std::uint16_t>(i)};
  }
  std::size_t bad_h = 0, bad_b = 0;
  float lanes[simd::lanes];
  auto same = [](float got, float want) {
    return std::isnan(want) ? std::isnan(got) : std::memcmp(&got, &want, sizeof(float)) == 0;
  };
  for (std::size_t i = 0; i < 65536; i += simd::lanes) {
    simd::store(lanes, simd::load(h.data() + i));
    for (std::size_t j = 0; j < simd::lanes; ++j) bad_h += same(lanes[j], specdec::gguf::fp16_to_fp32(h[i + j].bits)) ? 0 : 1;
    simd::store(lanes, simd::load(b.data() + i));
    for (std::size_t j = 0; j < simd::lanes; ++j) bad_b += same(lanes[j], specdec::gguf::bf16_to_fp32(b[i + j].bits)) ? 0 : 1;
  }
  CHECK(bad_h == 0);
  CHECK(bad_b == 0);
  // The partial load: the first 3 values, zeros above.
  simd::store(lanes, simd::load_partial(h.data() + 0x3C00, 3));
  CHECK(lanes[0] == 1.0f);
  CHECK(lanes[2] == specdec::gguf::fp16_to_fp32(0x3C02));
  for (std::size_t j = 3; j < simd::lanes; ++j) CHECK(lanes[j] == 0.0f);
}

TEST_CASE("dot4 and weighted_sum_add over fp16 / bf16 rows equal the fp32 code on the widened rows", "[cpu]") {
  // Attention over a 16-bit KV cache: the products must be those of the fp32 kernels on the values
  // the cache holds, bit for bit (so a 16-bit cache changes the inputs, never the arithmetic).
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto check = [&](auto tag, auto widen, auto round) {
    using T = decltype(tag);
    for (std::size_t n : {7u, 16u, 64u, 100u, 128u}) {
      INFO("n = " << n);
      const std::size_t m = 37;
      std::vector<float> a(n), w(m);
      std::vector<T> x(m * n);
      std::vector<float> xf(m * n);
      for (auto& v : a) v = normal(rng);
      for (auto& v : w) v = normal(rng);
      for (std::size_t i = 0; i < x.size(); ++i) {
        x[i] = T{round(normal(rng))};
        xf[i] = widen(x[i].bits);
      }
      float got[4], want[4];
      specdec::cpu::dot4(a.data(), x.data(), x.data() + n, x.data() + 2 * n, x.data() + 3 * n, n, got);
      specdec::cpu::dot4(a.data(), xf.data(), xf.data() + n, xf.data() + 2 * n, xf.data() + 3 * n, n, want);
      CHECK(std::memcmp(got, want, sizeof got) == 0);
      const float one = specdec::cpu::dot(a.data(), x.data() + n, n);
      CHECK(std::memcmp(&one, &want[1], sizeof(float)) == 0);
      std::vector<const T*> rows(m);
      std::vector<const float*> rows_f(m);
      for (std::size_t k = 0; k < m; ++k) {
        rows[k] = x.data() + k * n;
        rows_f[k] = xf.data() + k * n;
      }
      std::vector<float> y(n, 0.0f), yf(n, 0.0f);
      specdec::cpu::weighted_sum_add(w.data(), rows.data(), 20, y.data(), n);
      specdec::cpu::weighted_sum_add(w.data() + 20, rows.data() + 20, m - 20, y.data(), n);
      specdec::cpu::weighted_sum(w.data(), rows_f.data(), m, yf.data(), n);
      CHECK(std::memcmp(y.data(), yf.data(), n * sizeof(float)) == 0);
    }
  };
  SECTION("fp16") {
    check(specdec::cpu::fp16_bits{}, specdec::gguf::fp16_to_fp32, specdec::cpu::fp32_to_fp16);
  }
  SECTION("bf16") {
    check(specdec::cpu::bf16_bits{}, specdec::gguf::bf16_to_fp32, specdec::cpu::fp32_to_bf16);
  }
}
