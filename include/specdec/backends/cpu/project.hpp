// specdec::cpu::project: the backend's weight product y = x · wᵀ for a weight_matrix in any
// storage format, and for a weight_stack (its parts side by side in y's columns).
//   f32:        matmul.hpp (fp32 activations, vec.hpp's dot order)
//   bf16:       bf16_gemm.hpp (weights widened to fp32 on load, the same order)
//   quantized, activation_format::f32 (the default): each block widened to fp32 in registers,
//               fp32 activations, FMA (fgemm.hpp): the fp32 product of the dequantized weights
//   quantized, activation_format::int8: activations quantized to int8 per 32 values
//               (activations.hpp), integer dot products, float combine per block (qgemm.hpp)
// Row t of y depends only on row t of x: bit-identical for every n, thread count and position
// in the batch. The quantized activations live in a buffer of the calling thread that grows to
// the largest n x cols seen (it holds no state between calls; results do not depend on it).
#pragma once

#include <specdec/backends/cpu/aligned.hpp>
#include <specdec/backends/cpu/matmul.hpp>
#include <specdec/backends/cpu/quant/bf16_gemm.hpp>
#include <specdec/backends/cpu/quant/fgemm.hpp>
#include <specdec/backends/cpu/quant/qgemm.hpp>
#include <specdec/backends/cpu/thread_pool.hpp>
#include <specdec/backends/cpu/weight_matrix.hpp>

#include <cstddef>
#include <vector>

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {
inline namespace SPECDEC_QUANT_ISA {
namespace detail {

inline aligned_vector<std::byte>& project_scratch() {
  thread_local aligned_vector<std::byte> buffer;
  return buffer;
}
inline aligned_vector<float>& project_f32_scratch() {
  thread_local aligned_vector<float> buffer;
  return buffer;
}

template <block_format F>
inline void project_quantized(thread_pool& pool, const weight_matrix& w, const float* x, std::size_t n, float* y,
                              std::size_t ldy, activation_format a) {
  if (a == activation_format::f32) {
    fquant::gemm<F>(pool, w, x, n, y, ldy);
    return;
  }
  auto& buf = project_scratch();
  const std::size_t tb = quant::token_bytes(w.cols());
  if (buf.size() < n * tb) buf.resize(n * tb);
  constexpr int offset = quant::zero_point(F);
  if (n >= 2 * pool.size()) {
    pool.parallel_for(n, [&](std::size_t t0, std::size_t t1) {
      quant::quantize_activations(x + t0 * w.cols(), t1 - t0, w.cols(), offset, buf.data() + t0 * tb);
    });
  } else {
    quant::quantize_activations(x, n, w.cols(), offset, buf.data());
  }
  quant::qgemm<F>(pool, w, buf.data(), n, y, ldy);
}

}  // namespace detail

// y[t * ldy + r] = row r of w times x[t]   x: [n, w.cols()]   y: [n, ldy], ldy >= w.rows()
// a: how quantized formats meet the activations (ignored for f32 and bf16 weights).
inline void project(thread_pool& pool, const weight_matrix& w, const float* x, std::size_t n, float* y,
                    std::size_t ldy, activation_format a = activation_format::f32) {
  SPECDEC_ASSERT(x != nullptr && y != nullptr && ldy >= w.rows());
  if (w.rows() == 0 || n == 0) return;
  switch (w.format()) {
    case block_format::f32:
      if (ldy == w.rows()) {
        matmul(pool, reinterpret_cast<const float*>(w.data()), w.rows(), w.cols(), x, n, y);
      } else {
        auto& tmp = detail::project_f32_scratch();
        if (tmp.size() < n * w.rows()) tmp.resize(n * w.rows());
        matmul(pool, reinterpret_cast<const float*>(w.data()), w.rows(), w.cols(), x, n, tmp.data());
        for (std::size_t t = 0; t < n; ++t) std::copy_n(tmp.data() + t * w.rows(), w.rows(), y + t * ldy);
      }
      return;
    case block_format::bf16: bf16::gemm(pool, w, x, n, y, ldy); return;
    case block_format::q4_0: detail::project_quantized<block_format::q4_0>(pool, w, x, n, y, ldy, a); return;
    case block_format::q4_1: detail::project_quantized<block_format::q4_1>(pool, w, x, n, y, ldy, a); return;
    case block_format::q5_0: detail::project_quantized<block_format::q5_0>(pool, w, x, n, y, ldy, a); return;
    case block_format::q8_0: detail::project_quantized<block_format::q8_0>(pool, w, x, n, y, ldy, a); return;
    case block_format::q4_k: detail::project_quantized<block_format::q4_k>(pool, w, x, n, y, ldy, a); return;
    case block_format::q5_k: detail::project_quantized<block_format::q5_k>(pool, w, x, n, y, ldy, a); return;
    case block_format::q6_k: detail::project_quantized<block_format::q6_k>(pool, w, x, n, y, ldy, a); return;
  }
}

// y = x · wᵀ   x: [n, w.cols()]   y: [n, w.rows()] (written, not accumulated; no aliasing)
inline void project(thread_pool& pool, const weight_matrix& w, const float* x, std::size_t n, float* y,
                    activation_format a = activation_format::f32) {
  project(pool, w, x, n, y, w.rows(), a);
}

// The parts of a stack in turn, part i into columns [offset_i, offset_i + rows_i) of y [n, rows].
inline void project(thread_pool& pool, const weight_stack& w, const float* x, std::size_t n, float* y,
                    activation_format a = activation_format::f32) {
  const std::size_t ldy = w.rows();
  std::size_t offset = 0;
  for (const auto& part : w.parts) {
    project(pool, part, x, n, y + offset, ldy, a);
    offset += part.rows();
  }
}

}  // inline namespace SPECDEC_QUANT_ISA
}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
