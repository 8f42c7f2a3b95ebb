// The integer weight product y = x · wᵀ for a block-quantized weight_matrix and activations
// quantized by activations.hpp. Like matmul.hpp, each weight row is unpacked once per token
// block while in cache and applied to the block's tokens through a register block of
// R rows x T tokens; rows are split across threads; a panel of rows (~64 KB of packed
// weights) stays in L2 while every token block passes over it.
//
//   for each group g of group values (2 blocks of 32 on AVX-512, 1 elsewhere):
//     for each row r:  u, d, m = unpack(w[r], g)                      (shared by the T tokens)
//     for each token t, row r:
//       isum = lane_sums(u - offset, q_t)                              exact int32, 4 values a lane
//       acc[r][t] = fma(float(isum), d * d_t, acc[r][t])               fixed order: g ascending
//       acc[r][t] = fma(d_t * sum4(q_t), m, acc[r][t])                 formats with a min only
//   y[t, r] = reduce(acc[r][t])                                        the fixed tree of vec.hpp
//
// Every (row, token) pair sees the same instructions in the same order whatever n, T, the
// thread or the row block: a token's output row is bit-identical to the token run alone.
#pragma once

#include <specdec/backends/cpu/quant/activations.hpp>
#include <specdec/backends/cpu/quant/decode.hpp>
#include <specdec/backends/cpu/thread_pool.hpp>
#include <specdec/backends/cpu/weight_matrix.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {
inline namespace SPECDEC_QUANT_ISA {
namespace quant {

// Register block: R rows x T tokens. Rows are split between threads in multiples of block_rows;
// calls with at most 2 tokens per block use 4 rows (more independent work per loaded token),
// larger ones rows_wide (the accumulators must fit beside the rows' operands: 16 AVX2 registers).
inline constexpr std::size_t block_rows = 4;
inline constexpr std::size_t max_block_tokens = 4;
#if defined(SPECDEC_QUANT_512)
inline constexpr std::size_t rows_wide = 4;
#else
inline constexpr std::size_t rows_wide = 2;
#endif
inline constexpr std::size_t panel_bytes = 64 * 1024;
#ifndef SPECDEC_QUANT_PREFETCH
#define SPECDEC_QUANT_PREFETCH 1
#endif
inline constexpr bool prefetch_enabled = SPECDEC_QUANT_PREFETCH != 0;
#ifndef SPECDEC_QUANT_PREFETCH_ROWS
#define SPECDEC_QUANT_PREFETCH_ROWS 16
#endif
inline constexpr std::size_t prefetch_rows = SPECDEC_QUANT_PREFETCH_ROWS;

inline void prefetch(const std::uint8_t* p) noexcept {
#if defined(__GNUC__)
  __builtin_prefetch(p, 0, 2);
#endif
}

// y[t * ldy + r] for t < T and the R rows `row` (n_valid of them stored).
//   x: T tokens of token_bytes(cols), stride x_stride
template <block_format F, std::size_t R, std::size_t T>
inline void qgemm_block(const std::uint8_t* const* row, std::size_t n_blocks, std::size_t ng,
                        const std::byte* x, std::size_t x_stride, float* y, std::size_t ldy,
                        std::size_t n_valid, const std::uint8_t* pf, std::size_t pf_bytes) noexcept {
  constexpr int offset = zero_point(F);
  constexpr bool with_min = has_min(F);
  fvec acc[R][T];
  for (auto& a : acc) {
    for (auto& v : a) v = zero_f();
  }
  const std::size_t pf_step = pf != nullptr ? (pf_bytes / ng + 63) / 64 * 64 : 0;
  for (std::size_t g = 0; g < ng; ++g) {
    if (pf != nullptr) {
      for (std::size_t b = g * pf_step; b < std::min((g + 1) * pf_step, pf_bytes); b += 64) prefetch(pf + b);
    }
    row_operand<offset> w[R];
    fvec d[R];
    [[maybe_unused]] fvec m[R];
    for (std::size_t r = 0; r < R; ++r) {
      const group_weights gw = load_group<F>(row[r], g, n_blocks);
      w[r] = prepare<offset>(gw.u);
      d[r] = gw.d;
      if constexpr (with_min) m[r] = gw.m;
    }
    for (std::size_t t = 0; t < T; ++t) {
      const std::byte* rec = x + t * x_stride + g * group_bytes;
      const ivec q = load_bytes(rec);
      const fvec dx = load_f(reinterpret_cast<const float*>(rec + scale_offset));
      for (std::size_t r = 0; r < R; ++r) {
        acc[r][t] = fmadd(to_float(lane_sums<offset>(w[r], q, rec + corr_offset)), mul(d[r], dx), acc[r][t]);
        if constexpr (with_min) {
          acc[r][t] = fmadd(load_f(reinterpret_cast<const float*>(rec + sum_offset)), m[r], acc[r][t]);
        }
      }
    }
  }
  for (std::size_t t = 0; t < T; ++t) {
    for (std::size_t r = 0; r < n_valid; ++r) y[t * ldy + r] = reduce(acc[r][t]);
  }
}

template <block_format F, std::size_t R, std::size_t... Ts>
inline void qgemm_block_n(std::index_sequence<Ts...>, std::size_t n_tokens, const std::uint8_t* const* row,
                          std::size_t n_blocks, std::size_t ng, const std::byte* x, std::size_t x_stride, float* y,
                          std::size_t ldy, std::size_t n_valid, const std::uint8_t* pf, std::size_t pf_bytes) noexcept {
  ((n_tokens == Ts + 1 ? qgemm_block<F, R, Ts + 1>(row, n_blocks, ng, x, x_stride, y, ldy, n_valid, pf, pf_bytes)
                       : void()),
   ...);
}

// Rows [row_begin, row_end) of y on the calling thread; row_begin is a multiple of block_rows.
//   xq: [n, token_bytes(cols)] quantized activations   y: [n, ldy]
template <block_format F>
inline void qgemm_rows(const weight_matrix& w, const std::byte* xq, std::size_t n, float* y, std::size_t ldy,
                       std::size_t row_begin, std::size_t row_end) noexcept {
  const std::size_t cols = w.cols();
  const std::size_t n_blocks = cols / act_block;
  const std::size_t ng = n_groups(cols);
  const std::size_t stride = token_bytes(cols);
  const std::size_t rb = w.row_bytes();
  const std::size_t n_token_blocks = (n + max_block_tokens - 1) / max_block_tokens;
  const std::size_t panel_rows = std::max(block_rows, panel_bytes / std::max<std::size_t>(rb, 1) / block_rows * block_rows);
  const auto* base = reinterpret_cast<const std::uint8_t*>(w.data());
  const std::size_t last = w.rows() - 1;
  constexpr auto sizes = std::make_index_sequence<max_block_tokens>{};
  const std::size_t pf_ahead = prefetch_rows;  // prefetch distance, in rows
  for (std::size_t panel = row_begin; panel < row_end; panel += panel_rows) {
    const std::size_t panel_end = std::min(panel + panel_rows, row_end);
    for (std::size_t b = 0; b < n_token_blocks; ++b) {
      const std::size_t t_begin = n * b / n_token_blocks;
      const std::size_t n_tokens = n * (b + 1) / n_token_blocks - t_begin;
      const auto run = [&]<std::size_t R>() {
        for (std::size_t r = panel; r < panel_end; r += R) {
          const std::uint8_t* row[R];
          for (std::size_t i = 0; i < R; ++i) row[i] = base + std::min(r + i, last) * rb;
          const bool pf = prefetch_enabled && b == 0 && r + pf_ahead + R <= row_end;
          qgemm_block_n<F, R>(sizes, n_tokens, row, n_blocks, ng, xq + t_begin * stride, stride, y + t_begin * ldy + r,
                              ldy, std::min(R, row_end - r), pf ? base + (r + pf_ahead) * rb : nullptr, R * rb);
        }
      };
      if (n_tokens <= 2) {
        run.template operator()<4>();
      } else {
        run.template operator()<rows_wide>();
      }
    }
  }
}

// y[t * ldy + r] = sum over the row of w[r] * x[t] for quantized w (see the file comment).
template <block_format F>
inline void qgemm(thread_pool& pool, const weight_matrix& w, const std::byte* xq, std::size_t n, float* y,
                  std::size_t ldy) noexcept {
  const std::size_t n_row_blocks = (w.rows() + block_rows - 1) / block_rows;
  pool.parallel_for(n_row_blocks, [&](std::size_t b_begin, std::size_t b_end) {
    qgemm_rows<F>(w, xq, n, y, ldy, b_begin * block_rows, std::min(b_end * block_rows, w.rows()));
  });
}

}  // namespace quant
}  // inline namespace SPECDEC_QUANT_ISA
}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
