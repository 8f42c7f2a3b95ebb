// specdec::cpu::matmul: the CPU backend's weight product y = x · wᵀ for n = 1..~128 tokens.
// On a CPU the product streams the weights from memory; a speculative step over n tokens should
// cost little more than one token. So each weight row is read from memory once and applied to all
// n tokens while it is in cache, through a register block of 4 rows x T tokens, and threads split
// the rows. Every output element is the dot() of vec.hpp (fixed lanes, fixed tree), so a token's
// row is bit-identical whatever n, its position in the batch, the thread count or the block.
//
//   w [rows, cols]      one thread's rows, in panels of ~128 KB (kept in L2):
//   +-----------+       for each token block x[t0 .. t0+T) (T <= 6, kept in L1):
//   | panel     |         for each 4-row block of the panel:
//   |  [4 rows] |           acc[T][4] += w[4 rows, chunk] * x[T, chunk], chunk by chunk
//   |  [4 rows] |           y[t0 .. t0+T, 4 rows] = reduce(acc)
//   +-----------+       the first token block's pass reads memory and prefetches 4 blocks ahead
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

// Register block: 4 weight rows x up to max_block_tokens tokens of accumulators.
inline constexpr std::size_t block_rows = 4;
#if defined(__AVX512F__)
inline constexpr std::size_t max_block_tokens = 6;  // 24 accumulators of 32 registers
#else
inline constexpr std::size_t max_block_tokens = 3;  // 12 accumulators of 16 registers
#endif
// Rows are processed in panels of about panel_bytes of weights, and each panel is applied to one
// token block after another: the panel stays in L2 and only the first pass over it reads memory,
// while the token block being applied stays in L1. During that first pass each block prefetches
// the block prefetch_blocks blocks ahead into L2, a few lines per iteration: the hardware
// prefetchers alone leave the core waiting on memory.
// Measured on 2 Zen 4 cores, default model, variants interleaved in one process: prefetching took
// n = 1 from 25 to 20 ms and n = 8 from 38 to 24 ms; panels took n = 16 from 36 to 34 ms.
// Distances of 2 to 8 blocks, 256 KB panels, also prefetching the block's own rows into L1,
// spreading the next panel's prefetch over all passes, and interleaving the first pass of the
// next panel with the later passes of this one all measured the same or worse.
inline constexpr std::size_t panel_bytes = 128 * 1024;
inline constexpr std::size_t prefetch_blocks = 4;
inline constexpr std::size_t floats_per_line = 64 / sizeof(float);

inline void prefetch_l2([[maybe_unused]] const float* p) noexcept {
#if defined(__GNUC__)
  __builtin_prefetch(p, 0, 2);  // read, prefetcht1
#endif
}

// y[t, 0..n_valid) for t in [0, T): dot(w_row[r], x[t]) for the four rows w_row (rows past the
// matrix repeat the last one and are not stored). With Prefetch, also pulls the 4 x cols floats
// at pf (the rows of a later block) into L2, the same share of them per iteration.
//   w_row: 4 pointers to [cols]   x: [T, cols]   y: [T, ldy]   pf: [4, cols]
template <std::size_t T, bool Prefetch>
inline void matmul_block(const float* const* w_row, const float* x, std::size_t cols, float* y,
                         std::size_t ldy, std::size_t n_valid, const float* pf) noexcept {
  using simd::lanes;
  static_assert(block_rows * T + 1 <= simd::registers, "the accumulators must fit in registers");
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
    // Loaded once into registers and used T times. Left alone, the compiler folds the loads
    // into the FMAs' memory operands, one load per FMA; the rows that do not fit in registers
    // beside the accumulators and the token vector (AVX2's T = 3: one) are left to it.
    constexpr std::size_t kept_rows = std::min(block_rows, simd::registers - block_rows * T - 1);
    simd::vec a0 = simd::load(w0 + k);
    simd::vec a1 = simd::load(w1 + k);
    simd::vec a2 = simd::load(w2 + k);
    simd::vec a3 = simd::load(w3 + k);
    if constexpr (kept_rows > 0) simd::keep_in_register(a0);
    if constexpr (kept_rows > 1) simd::keep_in_register(a1);
    if constexpr (kept_rows > 2) simd::keep_in_register(a2);
    if constexpr (kept_rows > 3) simd::keep_in_register(a3);
    if constexpr (Prefetch) {
      for (std::size_t i = 0; i < block_rows * lanes; i += floats_per_line) {
        prefetch_l2(pf + block_rows * k + i);
      }
    }
    for (std::size_t t = 0; t < T; ++t) {
      simd::vec b = simd::load(x + t * cols + k);
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
      const simd::vec b = simd::load_partial(x + t * cols + k, m);
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

// matmul_block<n_tokens, Prefetch> for a run-time n_tokens in [1, max_block_tokens].
template <bool Prefetch, std::size_t... Ts>
inline void matmul_block_n(std::index_sequence<Ts...>, std::size_t n_tokens, const float* const* w_row,
                           const float* x, std::size_t cols, float* y, std::size_t ldy,
                           std::size_t n_valid, const float* pf) noexcept {
  ((n_tokens == Ts + 1 ? matmul_block<Ts + 1, Prefetch>(w_row, x, cols, y, ldy, n_valid, pf)
                       : void()),
   ...);
}

// Rows [row_begin, row_end) of y = x · wᵀ on the calling thread; row_begin is a multiple of 4.
// The n tokens are cut into ceil(n / max_block_tokens) blocks of near-equal size (8 = 4 + 4, not
// 6 + 2): small blocks waste the weight loads.
// y has row stride ldy >= rows (default: rows).
inline void matmul_rows(const float* w, std::size_t rows, std::size_t cols, const float* x,
                        std::size_t n, float* y, std::size_t row_begin, std::size_t row_end,
                        std::size_t ldy = 0) noexcept {
  if (ldy == 0) ldy = rows;
  constexpr auto block_sizes = std::make_index_sequence<max_block_tokens>{};
  const std::size_t n_token_blocks = (n + max_block_tokens - 1) / max_block_tokens;
  const std::size_t row_bytes = std::max<std::size_t>(cols, 1) * sizeof(float);
  const std::size_t panel_rows = std::max(block_rows, panel_bytes / row_bytes / block_rows * block_rows);
  const std::size_t pf_ahead = prefetch_blocks * block_rows;
  // The first blocks have no block before them to prefetch them.
  for (std::size_t r = row_begin; r < std::min(row_begin + pf_ahead, row_end); ++r) {
    for (std::size_t c = 0; c < cols; c += floats_per_line) prefetch_l2(w + r * cols + c);
  }
  for (std::size_t panel = row_begin; panel < row_end; panel += panel_rows) {
    const std::size_t panel_end = std::min(panel + panel_rows, row_end);
    for (std::size_t b = 0; b < n_token_blocks; ++b) {
      const std::size_t t_begin = n * b / n_token_blocks;
      const std::size_t n_tokens = n * (b + 1) / n_token_blocks - t_begin;
      const float* xt = x + t_begin * cols;
      for (std::size_t r = panel; r < panel_end; r += block_rows) {
        const float* w_row[block_rows];
        for (std::size_t i = 0; i < block_rows; ++i) w_row[i] = w + std::min(r + i, rows - 1) * cols;
        float* yt = y + t_begin * ldy + r;
        const std::size_t n_valid = std::min(block_rows, row_end - r);
        if (b == 0 && r + pf_ahead + block_rows <= row_end) {
          matmul_block_n<true>(block_sizes, n_tokens, w_row, xt, cols, yt, ldy, n_valid,
                               w + (r + pf_ahead) * cols);
        } else {
          matmul_block_n<false>(block_sizes, n_tokens, w_row, xt, cols, yt, ldy, n_valid, nullptr);
        }
      }
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
