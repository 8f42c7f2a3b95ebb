// specdec::cpu::matmul: the CPU backend's weight product y = x · wᵀ for n = 1..~128 tokens.
// On a CPU the product streams the weights from memory; a speculative step over n tokens should
// cost little more than one token. So each group of weight rows is loaded once and applied to all
// n tokens while it sits in L1, through a register block of 4 rows x T tokens, and threads split
// the rows. Every output element is the dot() of vec.hpp (fixed lanes, fixed tree), so a token's
// row is bit-identical whatever n, its position in the batch, the thread count or the block.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

#include "specdec/backends/cpu/thread_pool.hpp"
#include "specdec/backends/cpu/vec.hpp"
#include "specdec/error.hpp"

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {
namespace detail {
#ifndef PFDIST
#define PFDIST 2
#endif
#ifndef PFHINT
#define PFHINT 2
#endif

// Register block: 4 weight rows x up to max_block_tokens tokens of accumulators.
inline constexpr std::size_t block_rows = 4;
#if defined(__AVX512F__)
inline constexpr std::size_t max_block_tokens = 6;  // 24 accumulators of 32 registers
#else
inline constexpr std::size_t max_block_tokens = 3;  // 12 accumulators of 16 registers
#endif

// y[t, 0..n_valid) for t in [0, T): dot(w_row[r], x[t]) for the four rows w_row (rows past the
// matrix repeat the last one and are not stored).
//   w_row: 4 pointers to [cols]   x: [T, ldx]   y: [T, ldy]
template <std::size_t T, bool Prefetch = false>
inline void matmul_block(const float* const* w_row, const float* x, std::size_t ldx,
                         std::size_t cols, float* y, std::size_t ldy, std::size_t n_valid,
                         const float* const* pf_row = nullptr) noexcept {
  using simd::lanes;
  simd::vec acc[T][block_rows];
  for (std::size_t t = 0; t < T; ++t) {
    for (std::size_t r = 0; r < block_rows; ++r) acc[t][r] = simd::zero();
  }
  const float* w0 = w_row[0];
  const float* w1 = w_row[1];
  const float* w2 = w_row[2];
  const float* w3 = w_row[3];
  std::size_t k = 0;
  for (; k + lanes <= cols; k += lanes) {
    const simd::vec a0 = simd::load(w0 + k);
    const simd::vec a1 = simd::load(w1 + k);
    const simd::vec a2 = simd::load(w2 + k);
    const simd::vec a3 = simd::load(w3 + k);
    if constexpr (Prefetch) {
      for (std::size_t r = 0; r < block_rows; ++r) __builtin_prefetch(pf_row[r] + k, 0, PFHINT);
    }
    for (std::size_t t = 0; t < T; ++t) {
      simd::vec b = simd::load(x + t * ldx + k);
      simd::keep_in_register(b);
      acc[t][0] = simd::fmadd(a0, b, acc[t][0]);
      acc[t][1] = simd::fmadd(a1, b, acc[t][1]);
      acc[t][2] = simd::fmadd(a2, b, acc[t][2]);
      acc[t][3] = simd::fmadd(a3, b, acc[t][3]);
    }
  }
  if (k < cols) {  // the zero-padded last chunk, exactly as dot() does it
    const std::size_t m = cols - k;
    const simd::vec a0 = simd::load_partial(w0 + k, m);
    const simd::vec a1 = simd::load_partial(w1 + k, m);
    const simd::vec a2 = simd::load_partial(w2 + k, m);
    const simd::vec a3 = simd::load_partial(w3 + k, m);
    for (std::size_t t = 0; t < T; ++t) {
      const simd::vec b = simd::load_partial(x + t * ldx + k, m);
      acc[t][0] = simd::fmadd(a0, b, acc[t][0]);
      acc[t][1] = simd::fmadd(a1, b, acc[t][1]);
      acc[t][2] = simd::fmadd(a2, b, acc[t][2]);
      acc[t][3] = simd::fmadd(a3, b, acc[t][3]);
    }
  }
  for (std::size_t t = 0; t < T; ++t) {
    if (n_valid == block_rows) {
      simd::reduce4(acc[t][0], acc[t][1], acc[t][2], acc[t][3], y + t * ldy);
    } else {
      float out[block_rows];
      simd::reduce4(acc[t][0], acc[t][1], acc[t][2], acc[t][3], out);
      std::copy_n(out, n_valid, y + t * ldy);
    }
  }
}

// The last n % max_block_tokens tokens: one smaller block, chosen at run time.
template <std::size_t... Ts>
inline void matmul_token_tail(std::index_sequence<Ts...>, std::size_t n_tail, const float* const* w_row,
                              const float* x, std::size_t cols, float* y, std::size_t ldy,
                              std::size_t n_valid, const float* const* pf_row) noexcept {
  ((n_tail == Ts + 1 ? matmul_block<Ts + 1, PFDIST != 0>(w_row, x, cols, cols, y, ldy, n_valid, pf_row) : void()), ...);
}

// Rows [row_begin, row_end) of y = x · wᵀ on the calling thread; row_begin is a multiple of 4.
inline void matmul_rows(const float* w, std::size_t rows, std::size_t cols, const float* x,
                        std::size_t n, float* y, std::size_t row_begin, std::size_t row_end) noexcept {
  constexpr std::size_t T = max_block_tokens;
  for (std::size_t r = row_begin; r < row_end; r += block_rows) {
    const std::size_t n_valid = std::min(block_rows, row_end - r);
    const float* w_row[block_rows];
    for (std::size_t i = 0; i < block_rows; ++i) w_row[i] = w + std::min(r + i, rows - 1) * cols;
    std::size_t t = 0;
    const std::size_t pf_r = std::min(r + PFDIST * block_rows, rows - 1);
    const float* pf_row[block_rows];
    for (std::size_t i = 0; i < block_rows; ++i) pf_row[i] = w + std::min(pf_r + i, rows - 1) * cols;
    if (PFDIST > 0 && n >= T) {
      matmul_block<T, true>(w_row, x, cols, cols, y + r, rows, n_valid, pf_row);
      t = T;
    }
    for (; t + T <= n; t += T) {
      matmul_block<T>(w_row, x + t * cols, cols, cols, y + t * rows + r, rows, n_valid);
    }
    if (t < n) {
      matmul_token_tail(std::make_index_sequence<T - 1>{}, n - t, w_row, x + t * cols, cols,
                        y + t * rows + r, rows, n_valid, pf_row);
    }
  }
}

}  // namespace detail

// y = x · wᵀ: y[t, r] = dot(w[r, :], x[t, :]) with dot() from vec.hpp, bit for bit.
//   w: [rows, cols] row-major weights   x: [n, cols] activations   y: [n, rows] (written, not
//   accumulated; must not alias w or x)
// Rows are split across the pool's threads in contiguous groups of 4. No allocation, no throw.
inline void matmul(thread_pool& pool, const float* w, std::size_t rows, std::size_t cols,
                   const float* x, std::size_t n, float* y) noexcept {
  SPECDEC_ASSERT(w != nullptr && x != nullptr && y != nullptr);
  if (rows == 0 || n == 0) return;
  const std::size_t n_blocks = (rows + detail::block_rows - 1) / detail::block_rows;
  pool.parallel_for(n_blocks, [&](std::size_t b_begin, std::size_t b_end) {
    detail::matmul_rows(w, rows, cols, x, n, y, b_begin * detail::block_rows,
                        std::min(b_end * detail::block_rows, rows));
  });
}

}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
