// Quantized weight products (project.hpp) for every storage format:
//  - batch invariance: row t of an n-token product is bit-identical (memcmp) to token t alone,
//    for n = 1..40, 1-3 threads, odd shapes;
//  - accuracy against a double-precision product of the weights dequantized independently by
//    gguf/dequantize.hpp (itself checked against the Python gguf package), with the bound that
//    int8 activation quantization allows (see activation_bound);
//  - exactness of the integer path against the same product with activations quantized here by
//    the documented rule;
//  - activation quantization round trip, fp16 / bf16 / Q8_0 conversions, load errors.
// Built for every ISA path the machine can run (see CMakeLists.txt); int_isa_name says which.
#include <catch2/catch.hpp>

#include "../gguf/gguf_builder.hpp"

#include <specdec/backends/cpu/project.hpp>
#include <specdec/backends/cpu/quant/convert.hpp>

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <utility>
#include <vector>

namespace {

using namespace specdec::cpu;
using specdec::gguf::ggml_type;

void put_half(std::byte* p, float v) {
  const std::uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

// A [rows, cols] matrix of random blocks: random packed values and realistic scales (a Q4_1 min
// of about -8 d, K-quant super-block scales of 1e-3), so values are of order 0.01-0.1.
weight_matrix random_matrix(block_format f, std::size_t rows, std::size_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.5f, 1.5f);
  weight_matrix m(f, rows, cols);
  const auto t = traits(f);
  for (std::size_t r = 0; r < rows; ++r) {
    std::byte* row = m.row(r);
    if (f == block_format::f32) {
      for (std::size_t c = 0; c < cols; ++c) {
        const float v = normal(rng) * 0.05f;
        std::memcpy(row + 4 * c, &v, 4);
      }
      continue;
    }
    if (f == block_format::bf16) {
      for (std::size_t c = 0; c < cols; ++c) {
        const std::uint16_t h = fp32_to_bf16(normal(rng) * 0.05f);
        std::memcpy(row + 2 * c, &h, 2);
      }
      continue;
    }
    for (std::size_t i = 0; i < m.row_bytes(); ++i) row[i] = static_cast<std::byte>(rng() & 0xFF);
    for (std::size_t b = 0; b < cols / t.block_values; ++b) {
      std::byte* blk = row + b * t.block_bytes;
      const float d = (rng() & 1 ? 1.0f : -1.0f) * unit(rng);
      switch (f) {
        case block_format::q4_0: put_half(blk, d * 0.01f); break;
        case block_format::q5_0: put_half(blk, d * 0.005f); break;
        case block_format::q8_0: put_half(blk, d * 0.001f); break;
        case block_format::q4_1:
          put_half(blk, std::abs(d) * 0.01f);
          put_half(blk + 2, -8.0f * 0.01f * unit(rng));
          break;
        case block_format::q4_k:
        case block_format::q5_k:
          put_half(blk, std::abs(d) * 1e-3f);
          put_half(blk + 2, std::abs(d) * 2e-4f);
          break;
        case block_format::q6_k: put_half(blk + 208, d * 1e-4f); break;
        default: break;
      }
    }
  }
  return m;
}

std::vector<float> random_activations(std::size_t size, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(size);
  for (float& x : v) x = normal(rng);
  // A few outliers, as real activations have (they set their blocks' scale).
  for (std::size_t i = 7; i < size; i += 97) v[i] *= 12.0f;
  return v;
}

// The weights as gguf::dequantize_row expands them: [rows, cols].
std::vector<float> reference_weights(const weight_matrix& m) {
  std::vector<float> w(m.rows() * m.cols());
  for (std::size_t r = 0; r < m.rows(); ++r) {
    REQUIRE(specdec::gguf::dequantize_row(traits(m.format()).ggml, m.row(r), w.data() + r * m.cols(), m.cols()));
  }
  return w;
}

// The activation quantization rule, written out here: per 32 values d = max|x| / 127 and
// q = round-half-even(x * (1 / d)). Returns d * q.
std::vector<float> quantized_here(const float* x, std::size_t cols) {
  std::vector<float> out(cols);
  for (std::size_t b = 0; b < cols; b += 32) {
    const std::size_t e = std::min(cols, b + 32);
    float amax = 0;
    for (std::size_t j = b; j < e; ++j) amax = std::max(amax, std::abs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    for (std::size_t j = b; j < e; ++j) out[j] = d * std::nearbyint(x[j] * id);
  }
  return out;
}

// |y - sum_j w_j x_j| for int8 activations: each x_j is off by at most half its block's step
// d_b = max_b|x| / 127, so the product is off by at most sum_b (d_b / 2) sum_{j in b} |w_j|.
// The fp32 combine (one product d_w * d_x, one fma per lane and block, the lane tree) adds at most
// (groups + 8) u sum |terms|, which for rows of <= 48 groups and min terms <= 8 |w| is below
// 2^-14 sum_b max_b|x| sum_{j in b} |w_j|: the second term.
double activation_bound(const float* w, const float* x, std::size_t cols) {
  double bound = 0;
  for (std::size_t b = 0; b < cols; b += 32) {
    double amax = 0, wsum = 0;
    for (std::size_t j = b; j < std::min(cols, b + 32); ++j) {
      amax = std::max(amax, std::abs(static_cast<double>(x[j])));
      wsum += std::abs(static_cast<double>(w[j]));
    }
    bound += amax * wsum * (1.0 / 254.0 + std::ldexp(1.0, -14));
  }
  return bound;
}
// The float rounding part alone (activations quantized exactly as the kernel does): the combine's
// worst case (groups + 8) u sum|terms| <= 56 u sum_b max_b|x| sum_b|w| < 2^-18 sum_b max_b|x| sum_b|w|
// for rows of <= 48 groups (min terms of the formats with one add at most 8 |w|, absorbed here
// because |terms| <= |w| |x| on average: checked, not assumed, by this bound holding).
double float_bound(const float* w, const float* x, std::size_t cols) {
  double bound = 0;
  for (std::size_t b = 0; b < cols; b += 32) {
    double amax = 0, wsum = 0;
    for (std::size_t j = b; j < std::min(cols, b + 32); ++j) {
      amax = std::max(amax, std::abs(static_cast<double>(x[j])));
      wsum += std::abs(static_cast<double>(w[j]));
    }
    bound += amax * wsum * std::ldexp(1.0, -18);
  }
  return bound + 1e-30;
}
// For the float formats: vec.hpp's fixed-order fp32 sum, (chunks + 4) u sum|w x|.
double fp32_bound(const float* w, const float* x, std::size_t cols) {
  double s = 0;
  for (std::size_t j = 0; j < cols; ++j) s += std::abs(static_cast<double>(w[j]) * x[j]);
  return (static_cast<double>(cols) / 4 + 4) * std::ldexp(1.0, -24) * s * 1.01 + 1e-30;
}

double dot_double(const float* w, const float* x, std::size_t cols) {
  double s = 0;
  for (std::size_t j = 0; j < cols; ++j) s += static_cast<double>(w[j]) * x[j];
  return s;
}

std::vector<std::pair<std::size_t, std::size_t>> odd_shapes(block_format f) {
  if (traits(f).block_values == 256) return {{1, 256}, {3, 768}, {37, 512}, {9, 1536}, {6, 2304}};
  if (traits(f).block_values == 32) return {{1, 32}, {3, 96}, {37, 160}, {13, 576}, {50, 1536}, {5, 224}};
  return {{1, 1}, {3, 5}, {37, 100}, {13, 33}, {64, 576}, {17, 16}};
}

bool same_bits(const float* a, const float* b, std::size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

}  // namespace

#if defined(SPECDEC_EXPECT_INT_ISA)
// Only in the ISA variants (CMakeLists.txt names the path each is built for); the native build has
// no expectation to check.
TEST_CASE("the build runs the integer path its flags ask for", "[cpu]") {
  // A flag set that silently fell back to another path would test that path twice and this one never.
  CHECK(quant::int_isa_name == std::string_view(SPECDEC_EXPECT_INT_ISA));
  WARN("integer path " << quant::int_isa_name << ", float path " << simd::isa_name);
}
#endif

TEST_CASE("every format's product rows are bit-identical to the same token alone", "[cpu]") {
  constexpr std::size_t max_n = 40;
  thread_pool one(1);
  thread_pool two(2);
  thread_pool three(3, std::chrono::microseconds{0});
  thread_pool* pools[] = {&one, &two, &three};
  std::uint32_t seed = 1;
  for (block_format f : all_block_formats) {
   for (activation_format act : {activation_format::f32, activation_format::int8}) {
    if (!is_quantized(f) && act == activation_format::int8) continue;  // one path for f32 and bf16
    for (const auto& [rows, cols] : odd_shapes(f)) {
      const weight_matrix w = random_matrix(f, rows, cols, seed++);
      const auto x = random_activations(max_n * cols, seed++);
      std::vector<float> alone(max_n * rows);
      for (std::size_t t = 0; t < max_n; ++t) project(one, w, x.data() + t * cols, 1, alone.data() + t * rows, act);
      std::vector<float> y(max_n * rows);
      std::size_t mismatches = 0;
      for (thread_pool* pool : pools) {
        for (std::size_t n = 1; n <= max_n; ++n) {
          const std::size_t first = (n * 7) % (max_n - n + 1);
          std::fill(y.begin(), y.end(), -1.0f);
          project(*pool, w, x.data() + first * cols, n, y.data(), act);
          for (std::size_t t = 0; t < n; ++t) {
            mismatches += same_bits(y.data() + t * rows, alone.data() + (first + t) * rows, rows) ? 0 : 1;
          }
          if (n < max_n) REQUIRE(y[n * rows] == -1.0f);  // nothing written past [n, rows)
        }
      }
      INFO(to_string(f) << " rows " << rows << " cols " << cols << " activations " << to_string(act) << " ("
                        << quant::int_isa_name << ")");
      REQUIRE(mismatches == 0);
    }
   }
  }
}

// The f32-activation path widens each block in registers (fgemm.hpp); the reference here is the
// other implementation of the same values: gguf/dequantize.hpp's scalar code expanding the rows
// to fp32 (weight_matrix::dequantize_row), then matmul.hpp's fp32 product. Both sum in vec.hpp's
// dot() order, so they must agree bit for bit — on both sides of the token count where the
// kernel switches from token blocks to widened panels (fquant::panel_from_tokens).
TEST_CASE("f32 activations: quantized products equal the fp32 product of the dequantized weights, bit for bit",
          "[cpu]") {
  thread_pool pool(2);
  std::uint32_t seed = 3000;
  const std::size_t counts[] = {1, 2, 3, 5, 8, 9, 17, fquant::panel_from_tokens - 1, fquant::panel_from_tokens, 40};
  for (block_format f : all_block_formats) {
    if (!is_quantized(f)) continue;
    for (const auto& [rows, cols] : odd_shapes(f)) {
      const weight_matrix w = random_matrix(f, rows, cols, seed++);
      std::vector<float> deq(rows * cols);
      for (std::size_t r = 0; r < rows; ++r) w.dequantize_row(r, deq.data() + r * cols);
      const auto x = random_activations(40 * cols, seed++);
      for (std::size_t n : counts) {
        std::vector<float> got(n * rows), want(n * rows);
        project(pool, w, x.data(), n, got.data(), activation_format::f32);
        matmul(pool, deq.data(), rows, cols, x.data(), n, want.data());
        std::size_t differ = 0;
        for (std::size_t i = 0; i < n * rows; ++i) differ += std::memcmp(&got[i], &want[i], sizeof(float)) != 0 ? 1 : 0;
        INFO(to_string(f) << " rows " << rows << " cols " << cols << " n " << n << " (" << simd::isa_name << ")");
        REQUIRE(differ == 0);
      }
    }
  }
}

TEST_CASE("int8 activations: quantized products match the dequantized weights within the int8 activation bound", "[cpu]") {
  thread_pool pool(2);
  std::uint32_t seed = 1000;
  for (block_format f : all_block_formats) {
    const std::vector<std::pair<std::size_t, std::size_t>> shapes = {{64, 768}, {24, 1536}, {40, 256}};
    double worst_ratio = 0, worst_tight = 0;
    for (const auto& [rows, cols] : shapes) {
      constexpr std::size_t n = 5;
      const weight_matrix w = random_matrix(f, rows, cols, seed++);
      const auto wf = reference_weights(w);
      const auto x = random_activations(n * cols, seed++);
      std::vector<float> y(n * rows);
      project(pool, w, x.data(), n, y.data(), activation_format::int8);
      for (std::size_t t = 0; t < n; ++t) {
        const float* xt = x.data() + t * cols;
        const auto xq = quantized_here(xt, cols);
        for (std::size_t r = 0; r < rows; ++r) {
          const float* wr = wf.data() + r * cols;
          const double got = y[t * rows + r];
          INFO(to_string(f) << " rows " << rows << " cols " << cols << " token " << t << " row " << r);
          if (!is_quantized(f)) {
            REQUIRE(std::abs(got - dot_double(wr, xt, cols)) <= fp32_bound(wr, xt, cols));
            continue;
          }
          const double bound = activation_bound(wr, xt, cols);
          const double err = std::abs(got - dot_double(wr, xt, cols));
          REQUIRE(err <= bound);
          worst_ratio = std::max(worst_ratio, err / bound);
          // With the activations quantized here by the same rule, only float rounding remains.
          const double tight = std::abs(got - dot_double(wr, xq.data(), cols));
          REQUIRE(tight <= float_bound(wr, xt, cols));
          worst_tight = std::max(worst_tight, tight / float_bound(wr, xt, cols));
        }
      }
    }
    if (is_quantized(f)) {
      INFO(to_string(f));
      // The bound is a worst case; random errors should still reach a fair share of it.
      CHECK(worst_ratio > 0.01);
      WARN(to_string(f) << " (" << quant::int_isa_name << "): worst error / activation bound = " << worst_ratio
                        << ", worst float error / float bound = " << worst_tight);
    }
  }
}

TEST_CASE("activation quantization round-trips within half a step", "[cpu]") {
  for (std::size_t cols : {5u, 32u, 33u, 100u, 576u, 1536u}) {
    auto x = random_activations(2 * cols, static_cast<std::uint32_t>(cols));
    std::fill(x.begin() + cols, x.begin() + cols + std::min<std::size_t>(cols, 32), 0.0f);  // a zero block
    std::vector<std::byte> buf(2 * quant::token_bytes(cols));
    quant::quantize_activations(x.data(), 2, cols, 16, buf.data());
    for (std::size_t t = 0; t < 2; ++t) {
      const std::byte* tok = buf.data() + t * quant::token_bytes(cols);
      for (std::size_t g = 0; g < quant::n_groups(cols); ++g) {
        const std::byte* rec = tok + g * quant::group_bytes;
        const auto* q = reinterpret_cast<const std::int8_t*>(rec);
        float d[quant::lanes], s[quant::lanes];
        std::int32_t c[quant::lanes];
        std::memcpy(d, rec + quant::scale_offset, sizeof d);
        std::memcpy(s, rec + quant::sum_offset, sizeof s);
        std::memcpy(c, rec + quant::corr_offset, sizeof c);
        for (std::size_t l = 0; l < quant::lanes; ++l) {
          std::int32_t sum = 0;
          for (std::size_t j = 4 * l; j < 4 * l + 4; ++j) {
            const std::size_t col = g * quant::group + j;
            sum += q[j];
            if (col >= cols) {
              REQUIRE(q[j] == 0);
              continue;
            }
            const float xv = x[t * cols + col];
            const std::size_t b0 = col / 32 * 32;
            float amax = 0;
            for (std::size_t k = b0; k < std::min(cols, b0 + 32); ++k) amax = std::max(amax, std::abs(x[t * cols + k]));
            REQUIRE(d[l] == amax / 127.0f);
            REQUIRE(std::abs(xv - d[l] * q[j]) <= d[l] * 0.5f * (1 + 1e-5f));
            REQUIRE(std::abs(static_cast<int>(q[j])) <= 127);
            if (std::abs(xv) == amax && amax > 0) REQUIRE(std::abs(static_cast<int>(q[j])) == 127);
          }
          REQUIRE(c[l] == 16 * sum);
          REQUIRE(s[l] == d[l] * static_cast<float>(sum));
        }
      }
    }
  }
}

TEST_CASE("fp16 and bf16 rounding follow IEEE round-to-nearest-even", "[cpu]") {
  // Every finite half converts to fp32 and back unchanged; halfway values round to even.
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00) continue;
    const float f = specdec::gguf::fp16_to_fp32(static_cast<std::uint16_t>(h));
    REQUIRE(fp32_to_fp16(f) == h);
  }
  CHECK(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);                               // tie -> even
  CHECK(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);                           // tie -> even
  CHECK(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3C01);        // above tie
  CHECK(fp32_to_fp16(65520.0f) == 0x7C00);                                                     // overflow
  CHECK(fp32_to_fp16(65519.0f) == 0x7BFF);
  CHECK(fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);                                        // tie -> 0
  CHECK(fp32_to_fp16(std::ldexp(1.5f, -25)) == 0x0001);
  CHECK(fp32_to_fp16(-std::ldexp(1.0f, -24)) == 0x8001);
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7F80) == 0x7F80) continue;
    const float f = specdec::gguf::bf16_to_fp32(static_cast<std::uint16_t>(h));
    REQUIRE(fp32_to_bf16(f) == h);
  }
  CHECK(fp32_to_bf16(std::bit_cast<float>(0x3F808000u)) == 0x3F80);  // tie -> even
  CHECK(fp32_to_bf16(std::bit_cast<float>(0x3F818000u)) == 0x3F82);
  CHECK(fp32_to_bf16(std::bit_cast<float>(0x3F808001u)) == 0x3F81);
}

TEST_CASE("Q8_0 re-quantization keeps every value within half a step", "[cpu]") {
  const auto x = random_activations(32 * 40, 9);
  std::vector<std::byte> blocks(34 * 40);
  quantize_q8_0(x.data(), x.size(), blocks.data());
  std::vector<float> back(x.size());
  REQUIRE(specdec::gguf::dequantize_row(ggml_type::q8_0, blocks.data(), back.data(), x.size()));
  for (std::size_t b = 0; b < 40; ++b) {
    float amax = 0;
    for (std::size_t j = 0; j < 32; ++j) amax = std::max(amax, std::abs(x[32 * b + j]));
    // d is amax / 127 rounded to fp16 (relative error <= 2^-11), q = round(x / d_fp32).
    const float step = amax / 127.0f;
    for (std::size_t j = 0; j < 32; ++j) {
      REQUIRE(std::abs(back[32 * b + j] - x[32 * b + j]) <= step * (0.5f + 127 * std::ldexp(1.0f, -11)) + 1e-30f);
    }
  }
}

TEST_CASE("weight loading: formats per --weights value and clear errors", "[cpu]") {
  specdec::test::gguf_builder b;
  auto add = [&](const std::string& name, ggml_type type, std::uint64_t cols, std::uint64_t rows) {
    const auto tr = *specdec::gguf::traits(type);
    while (b.data.size() % b.alignment != 0) b.data.push_back(std::byte{0});
    b.tensors.push_back({name, {cols, rows}, static_cast<std::uint32_t>(type), b.data.size()});
    b.data.resize(b.data.size() + cols / tr.block_size * tr.type_size * rows, std::byte{0});
  };
  add("a.weight", ggml_type::q4_1, 64, 3);
  add("b.weight", ggml_type::q5_1, 64, 2);
  add("c.weight", ggml_type::q2_k, 256, 1);
  add("d.weight", ggml_type::f16, 64, 2);
  const auto f = specdec::gguf::file::from_bytes(b.bytes(), "mem.gguf");

  conversion_log log;
  CHECK(load_matrix(f, "a.weight", weight_format::automatic, log).format() == block_format::q4_1);
  CHECK(log.counts.empty());
  CHECK(load_matrix(f, "b.weight", weight_format::automatic, log).format() == block_format::q8_0);
  CHECK(load_matrix(f, "d.weight", weight_format::automatic, log).format() == block_format::f32);
  CHECK(log.lines().size() == 2);
  CHECK(load_matrix(f, "a.weight", weight_format::q8, log).format() == block_format::q8_0);
  CHECK(load_matrix(f, "a.weight", weight_format::bf16, log).format() == block_format::bf16);
  CHECK(load_matrix(f, "a.weight", weight_format::fp32, log).bytes() == 3 * 64 * 4);

  // A stack of Q4_1 and Q5_1 rows: two parts under native would fail, auto converts the Q5_1 part.
  const weight_stack s = load_stack(f, {"a.weight", "b.weight"}, weight_format::automatic, log);
  REQUIRE(s.parts.size() == 2);
  CHECK(s.rows() == 5);
  const weight_matrix merged = load_stacked_matrix(f, {"a.weight", "b.weight"}, weight_format::q8, log);
  CHECK(merged.rows() == 5);

  CHECK_THROWS_WITH(load_matrix(f, "b.weight", weight_format::native, log),
                    Catch::Contains("'b.weight'") && Catch::Contains("Q5_1") && Catch::Contains("--weights native"));
  CHECK_THROWS_WITH(load_matrix(f, "c.weight", weight_format::automatic, log),
                    Catch::Contains("'c.weight'") && Catch::Contains("Q2_K"));
  CHECK_THROWS_WITH(parse_weight_format("q7"), Catch::Contains("--weights") && Catch::Contains("'q7'"));
  CHECK(parse_weight_format("auto") == weight_format::automatic);
  CHECK(parse_weight_format("bf16") == weight_format::bf16);
  CHECK(parse_activation_format("int8") == activation_format::int8);
  CHECK(parse_activation_format("f32") == activation_format::f32);
  CHECK_THROWS_WITH(parse_activation_format("fp16"), Catch::Contains("--activations") && Catch::Contains("'fp16'"));
}

TEST_CASE("a weight_stack product equals its parts' products side by side", "[cpu]") {
  thread_pool pool(2);
  weight_stack s;
  s.parts.push_back(random_matrix(block_format::q4_k, 5, 512, 71));
  s.parts.push_back(random_matrix(block_format::q6_k, 3, 512, 72));
  s.parts.push_back(random_matrix(block_format::f32, 2, 512, 73));
  const auto x = random_activations(7 * 512, 74);
  std::vector<float> y(7 * 10);
  project(pool, s, x.data(), 7, y.data());
  std::size_t offset = 0;
  for (const auto& p : s.parts) {
    std::vector<float> part(7 * p.rows());
    project(pool, p, x.data(), 7, part.data());
    for (std::size_t t = 0; t < 7; ++t) REQUIRE(same_bits(&y[t * 10 + offset], &part[t * p.rows()], p.rows()));
    offset += p.rows();
  }
}

TEST_CASE("dequantize_row expands a row exactly as the GGUF dequantizer", "[cpu]") {
  for (block_format f : all_block_formats) {
    const std::size_t cols = traits(f).block_values == 256 ? 512 : 96;
    const weight_matrix w = random_matrix(f, 3, cols, 5);
    const auto want = reference_weights(w);
    std::vector<float> got(cols);
    w.dequantize_row(2, got.data());
    INFO(to_string(f));
    CHECK(same_bits(got.data(), want.data() + 2 * cols, cols));
  }
}
