// The weight product for bf16 weights: y = x · wᵀ with fp32 activations, each bf16 weight widened
// to fp32 (exact) as it is loaded. Every output element is vec.hpp's dot() order — lanes over
// consecutive chunks, the zero-padded last chunk, the fixed lane tree — so it equals
// dot(widened row, x) bit for bit whatever n, the thread or the block (batch invariance).
// Register block: 4 rows x up to 3 tokens; rows split across threads.
#pragma once

#include <specdec/backends/cpu/thread_pool.hpp>
#include <specdec/backends/cpu/vec.hpp>
#include <specdec/backends/cpu/weight_matrix.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {
namespace bf16 {

inline constexpr std::size_t block_rows = 4;
inline constexpr std::size_t max_block_tokens = 3;

// lanes bf16 values at p -> fp32 (count < lanes: the rest zero).
inline simd::vec load(const std::uint16_t* p) noexcept { return simd::load_bf16(p); }
inline simd::vec load_partial(const std::uint16_t* p, std::size_t count) noexcept {
  std::uint16_t tmp[simd::lanes] = {};
  std::memcpy(tmp, p, count * sizeof(std::uint16_t));
  return load(tmp);
}

template <std::size_t T>
inline void block(const std::uint16_t* const* w, const float* x, std::size_t cols, float* y, std::size_t ldy,
                  std::size_t n_valid) noexcept {
  using simd::lanes;
  simd::vec acc[T][block_rows];
  for (auto& a : acc) {
    for (auto& v : a) v = simd::zero();
  }
  std::size_t k = 0;
  for (; k + lanes <= cols; k += lanes) {
    simd::vec a[block_rows];
    for (std::size_t r = 0; r < block_rows; ++r) a[r] = load(w[r] + k);
    for (std::size_t t = 0; t < T; ++t) {
      const simd::vec b = simd::load(x + t * cols + k);
      for (std::size_t r = 0; r < block_rows; ++r) acc[t][r] = simd::fmadd(a[r], b, acc[t][r]);
    }
  }
  if (k < cols) {
    const std::size_t m = cols - k;
    simd::vec a[block_rows];
    for (std::size_t r = 0; r < block_rows; ++r) a[r] = load_partial(w[r] + k, m);
    for (std::size_t t = 0; t < T; ++t) {
      const simd::vec b = simd::load_partial(x + t * cols + k, m);
      for (std::size_t r = 0; r < block_rows; ++r) acc[t][r] = simd::fmadd(a[r], b, acc[t][r]);
    }
  }
  for (std::size_t t = 0; t < T; ++t) {
    for (std::size_t r = 0; r < n_valid; ++r) y[t * ldy + r] = simd::reduce_lanes(acc[t][r]);
  }
}

template <std::size_t... Ts>
inline void block_n(std::index_sequence<Ts...>, std::size_t n_tokens, const std::uint16_t* const* w, const float* x,
                    std::size_t cols, float* y, std::size_t ldy, std::size_t n_valid) noexcept {
  ((n_tokens == Ts + 1 ? block<Ts + 1>(w, x, cols, y, ldy, n_valid) : void()), ...);
}

//   w: bf16 [rows, cols]   x: [n, cols]   y: [n, ldy]
inline void gemm(thread_pool& pool, const weight_matrix& w, const float* x, std::size_t n, float* y,
                 std::size_t ldy) noexcept {
  const std::size_t rows = w.rows(), cols = w.cols();
  const auto* base = reinterpret_cast<const std::uint16_t*>(w.data());
  const std::size_t n_row_blocks = (rows + block_rows - 1) / block_rows;
  const std::size_t n_token_blocks = (n + max_block_tokens - 1) / max_block_tokens;
  pool.parallel_for(n_row_blocks, [&](std::size_t b_begin, std::size_t b_end) {
    const std::size_t row_end = std::min(b_end * block_rows, rows);
    for (std::size_t b = 0; b < n_token_blocks; ++b) {
      const std::size_t t_begin = n * b / n_token_blocks;
      const std::size_t n_tokens = n * (b + 1) / n_token_blocks - t_begin;
      for (std::size_t r = b_begin * block_rows; r < row_end; r += block_rows) {
        const std::uint16_t* rw[block_rows];
        for (std::size_t i = 0; i < block_rows; ++i) rw[i] = base + std::min(r + i, rows - 1) * cols;
        block_n(std::make_index_sequence<max_block_tokens>{}, n_tokens, rw, x + t_begin * cols, cols,
                y + t_begin * ldy + r, ldy, std::min(block_rows, row_end - r));
      }
    }
  });
}

}  // namespace bf16
}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
