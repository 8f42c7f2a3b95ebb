// The weight product y = x · wᵀ for a block-quantized weight_matrix with fp32 activations: each
// 32-value block of a row is widened to fp32 in registers (the value gguf/dequantize.hpp gives
// for it) and multiplied with the activations by FMA. Nothing of the activations is rounded, so
// the result is the fp32 product of the dequantized weights: every output element is vec.hpp's
// dot(dequantized row, x) order — one lane vector per (row, token), consecutive chunks of `lanes`
// values, blocks in row order, the fixed lane tree at the end. Same instructions in the same
// order for a (row, token) pair whatever n, the register block, the thread: batch invariant.
//
// Why it exists beside the int8 path (qgemm.hpp): int8 activations cost quality on models with
// outlier channels (SmolLM2: the logits' relative error 0.04 median, 0.25 worst; see
// docs/benchmarks.md). Cost on AVX2 (bench_qmatmul, default model's matrices): n = 1 about 1.3x
// the int8 path (widening a block costs more than unpacking it to bytes), n = 8 the same, n = 64
// 0.6x (the panel path).
//
//   for each row block (R rows) and token block (T tokens, R x T accumulators in registers):
//     for each 32-value block k of the row:
//       for each row r:  w[0..V) = widen(block k of row r)         V = 32 / lanes vectors
//         for each token t:  acc[r][t] = fma(w[v], x[t][32k + v*lanes ..], acc[r][t]), v = 0..V-1
//   y[t, r] = reduce_lanes(acc[r][t])
#pragma once

#include <specdec/backends/cpu/aligned.hpp>
#include <specdec/backends/cpu/matmul.hpp>
#include <specdec/backends/cpu/quant/decode.hpp>
#include <specdec/backends/cpu/thread_pool.hpp>
#include <specdec/backends/cpu/vec.hpp>
#include <specdec/backends/cpu/weight_matrix.hpp>
#include <specdec/model/gguf/dequantize.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {
inline namespace SPECDEC_QUANT_ISA {
namespace fquant {

using simd::lanes;
inline constexpr std::size_t block_values = 32;
inline constexpr std::size_t vectors_per_block = block_values / lanes;  // V: 4 (AVX2), 2 (AVX-512), 8

// Register blocks R x T by tokens per block, within the register file beside the V widened
// weights and the widening's temporaries. AVX2: 4 rows for one or two tokens (8 rows measured no
// faster for Q4_1 and spilled the accumulators for Q4_K), then 2 and 1.
#if defined(__AVX512F__)
inline constexpr std::size_t max_block_tokens = 12;
constexpr std::size_t rows_for(std::size_t t) noexcept { return t <= 3 ? 8 : t <= 6 ? 4 : 2; }
#else
inline constexpr std::size_t max_block_tokens = 8;
constexpr std::size_t rows_for(std::size_t t) noexcept { return t <= 2 ? 4 : t <= 4 ? 2 : 1; }
#endif
inline constexpr std::size_t block_rows = 8;  // threads split rows in multiples of this
inline constexpr std::size_t panel_bytes = 64 * 1024;
inline constexpr std::size_t prefetch_rows = 16;

inline void prefetch(const std::uint8_t* p) noexcept {
#if defined(__GNUC__)
  __builtin_prefetch(p, 0, 2);
#endif
}

constexpr bool is_k_quant(block_format f) noexcept {
  return f == block_format::q4_k || f == block_format::q5_k || f == block_format::q6_k;
}

// The scales of the eight 32-value blocks of a K-quant super-block, decoded once per row and
// super-block (the 6-bit scale unpacking is scalar work that would otherwise be redone per block).
//   Q4_K / Q5_K: block s has scale d[s] and additive term m[s]
//   Q6_K:        block s has the scales d[2s] (values 0-15) and d[2s + 1] (values 16-31)
struct sub_scales {
  float d[16];
  float m[8];
};
// The same products as quant::locate() computes per block (d * scale, -(dmin * min)), with the
// fp16 scales converted once. The SIMD builds unpack the eight 6-bit pairs with integer word
// operations and convert and multiply all of them in one vector step: the same single rounding
// per value as the scalar loop.
template <block_format F>
inline void super_scales(const std::uint8_t* row, std::size_t super, sub_scales& out) noexcept {
  const std::uint8_t* p = row + super * traits(F).block_bytes;
  if constexpr (F == block_format::q6_k) {
    const float d = quant::half(p + 208);
#if defined(SPECDEC_QUANT_512) || defined(SPECDEC_QUANT_256)
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 192));
#if defined(__AVX512F__)
    _mm512_storeu_ps(out.d, _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepi8_epi32(0xFFFF, q)),
                                          _mm512_set1_ps(d)));
#else
    const __m256 dv = _mm256_set1_ps(d);
    _mm256_storeu_ps(out.d, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), dv));
    _mm256_storeu_ps(out.d + 8,
                     _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q, 8))), dv));
#endif
#else
    const auto* sc = reinterpret_cast<const std::int8_t*>(p + 192);
    for (int i = 0; i < 16; ++i) out.d[i] = d * static_cast<float>(sc[i]);
#endif
  } else {
    const float d = quant::half(p), dmin = quant::half(p + 2);
#if defined(SPECDEC_QUANT_512) || defined(SPECDEC_QUANT_256)
    // The 12 scale bytes as words a, b, c: blocks 0-3 keep the low 6 bits of a (scales) and b
    // (mins); blocks 4-7 take a nibble of c and the top 2 bits of a or b (gguf's k_scale_min).
    std::uint32_t a, b, c;
    std::memcpy(&a, p + 4, 4);
    std::memcpy(&b, p + 8, 4);
    std::memcpy(&c, p + 12, 4);
    const std::uint32_t six = 0x3F3F3F3Fu, nibble = 0x0F0F0F0Fu, two = 0x03030303u;
    const __m128i bytes = _mm_setr_epi32(static_cast<int>(a & six),
                                         static_cast<int>((c & nibble) | (((a >> 6) & two) << 4)),
                                         static_cast<int>(b & six),
                                         static_cast<int>(((c >> 4) & nibble) | (((b >> 6) & two) << 4)));
#if defined(__AVX512F__)
    const __m512 scales = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d), _mm512_set1_ps(dmin));
    const __m512 scaled =
        _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_cvtepu8_epi32(0xFFFF, bytes)), scales);
    _mm256_storeu_ps(out.d, _mm512_castps512_ps256(scaled));
    _mm256_storeu_ps(out.m, _mm256_xor_ps(_mm512_maskz_extractf32x8_ps(0xFF, scaled, 1), _mm256_set1_ps(-0.0f)));
#else
    _mm256_storeu_ps(out.d, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), _mm256_set1_ps(d)));
    _mm256_storeu_ps(out.m, _mm256_xor_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8))),
                                                        _mm256_set1_ps(dmin)),
                                          _mm256_set1_ps(-0.0f)));
#endif
#else
    for (int s = 0; s < 8; ++s) {
      std::uint8_t sc, mn;
      gguf::detail::k_scale_min(s, p + 4, sc, mn);
      out.d[s] = d * static_cast<float>(sc);
      out.m[s] = -(dmin * static_cast<float>(mn));
    }
#endif
  }
}

// The SIMD builds are those with decode.hpp's byte unpacker (AVX2 + FMA + F16C, or AVX-512BW).
#if defined(SPECDEC_QUANT_512) || defined(SPECDEC_QUANT_256)
#if defined(__AVX512F__)
// All-ones-mask forms of the conversions: the unmasked ones pass an undefined vector through and
// trip GCC 12's -Wuninitialized at -O1 (GCC bug 105593); same instructions.
using ivec = __m512i;
// `lanes` bytes at p, zero- or sign-extended to int32 lanes.
inline ivec widen_u8(const std::uint8_t* p) noexcept {
  return _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline ivec widen_s8(const std::uint8_t* p) noexcept {
  return _mm512_maskz_cvtepi8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline ivec and_i(ivec a, int m) noexcept { return _mm512_and_si512(a, _mm512_set1_epi32(m)); }
inline ivec or_i(ivec a, ivec b) noexcept { return _mm512_or_si512(a, b); }
inline ivec srl_i(ivec a, int s) noexcept { return _mm512_srli_epi32(a, static_cast<unsigned>(s)); }
inline ivec sll4(ivec a) noexcept { return _mm512_slli_epi32(a, 4); }
inline ivec sub_i(ivec a, int b) noexcept { return _mm512_sub_epi32(a, _mm512_set1_epi32(b)); }
inline simd::vec to_float(ivec a) noexcept { return _mm512_maskz_cvtepi32_ps(0xFFFF, a); }
// The fp16 at p broadcast to every lane, converted in the vector unit.
inline simd::vec half_bcast(const std::uint8_t* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_set1_epi16(static_cast<short>(h)));
}
inline simd::vec mul(simd::vec a, simd::vec b) noexcept { return _mm512_mul_ps(a, b); }
#else
using ivec = __m256i;
inline ivec widen_u8(const std::uint8_t* p) noexcept {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
inline ivec widen_s8(const std::uint8_t* p) noexcept {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
inline ivec and_i(ivec a, int m) noexcept { return _mm256_and_si256(a, _mm256_set1_epi32(m)); }
inline ivec or_i(ivec a, ivec b) noexcept { return _mm256_or_si256(a, b); }
inline ivec srl_i(ivec a, int s) noexcept { return _mm256_srli_epi32(a, s); }
inline ivec sll4(ivec a) noexcept { return _mm256_slli_epi32(a, 4); }
inline ivec sub_i(ivec a, int b) noexcept { return _mm256_sub_epi32(a, _mm256_set1_epi32(b)); }
inline simd::vec to_float(ivec a) noexcept { return _mm256_cvtepi32_ps(a); }
inline simd::vec half_bcast(const std::uint8_t* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h)));
}
inline simd::vec mul(simd::vec a, simd::vec b) noexcept { return _mm256_mul_ps(a, b); }
#endif

// Bytes v*lanes .. v*lanes + lanes - 1 of the 32 in u, zero-extended to int32 lanes.
inline ivec bytes_of(__m256i u, std::size_t v) noexcept {
#if defined(__AVX512F__)
  return _mm512_maskz_cvtepu8_epi32(0xFFFF, v == 0 ? _mm256_castsi256_si128(u) : _mm256_extracti128_si256(u, 1));
#else
  const __m128i half128 = v < 2 ? _mm256_castsi256_si128(u) : _mm256_extracti128_si256(u, 1);
  return _mm256_cvtepu8_epi32(v % 2 == 0 ? half128 : _mm_srli_si128(half128, 8));
#endif
}

// Block k of a row as V vectors of fp32: w[v] holds values v*lanes .. v*lanes + lanes - 1.
// The arithmetic is gguf/dequantize.hpp's (q * d, or q * d + m as one FMA, the form the
// compiler gives that code under -ffp-contract=fast, GCC's default), so the values agree with
// the fp32 path's dequantized weights (tests/cpu_kernels/test_quant.cpp checks it).
//   sc: for K-quants, the super_scales() of block k's super-block
template <block_format F>
inline void widen(const std::uint8_t* row, std::size_t k, simd::vec* w,
                  [[maybe_unused]] const sub_scales* sc = nullptr) noexcept {
  if constexpr (F == block_format::q4_0 || F == block_format::q4_1) {
    const std::uint8_t* p = row + k * traits(F).block_bytes;
    const simd::vec d = half_bcast(p);
    const std::uint8_t* qs = p + (F == block_format::q4_1 ? 4 : 2);
    for (std::size_t v = 0; v < vectors_per_block; ++v) {
      const std::size_t j = v * lanes;  // values j .. j + lanes: nibbles of bytes j % 16 ..
      const ivec b = widen_u8(qs + j % 16);
      const ivec u = j < 16 ? and_i(b, 0xF) : srl_i(b, 4);
      if constexpr (F == block_format::q4_1) {
        w[v] = simd::fmadd(to_float(u), d, half_bcast(p + 2));
      } else {
        w[v] = mul(to_float(sub_i(u, 8)), d);
      }
    }
  } else if constexpr (F == block_format::q8_0) {
    const std::uint8_t* p = row + k * 34;
    const simd::vec d = half_bcast(p);
    for (std::size_t v = 0; v < vectors_per_block; ++v) w[v] = mul(to_float(widen_s8(p + 2 + v * lanes)), d);
  } else if constexpr (F == block_format::q4_k || F == block_format::q5_k) {
    const int sub = static_cast<int>(k % 8);
    const std::uint8_t* super = row + k / 8 * traits(F).block_bytes;
    const simd::vec d = simd::broadcast(sc->d[sub]), m = simd::broadcast(sc->m[sub]);
    const std::uint8_t* qs = super + (F == block_format::q4_k ? 16 : 48) + 32 * (sub / 2);
    const int shift = (sub & 1) * 4;
    for (std::size_t v = 0; v < vectors_per_block; ++v) {
      ivec u = and_i(srl_i(widen_u8(qs + v * lanes), shift), 0xF);
      if constexpr (F == block_format::q5_k) {
        u = or_i(u, sll4(and_i(srl_i(widen_u8(super + 16 + v * lanes), sub), 1)));
      }
      w[v] = simd::fmadd(to_float(u), d, m);
    }
  } else if constexpr (F == block_format::q5_0 || F == block_format::q6_k) {
    // Their high bits are scattered over the block: the integer path's unpacker (decode.hpp)
    // assembles the 32 bytes u = q + offset in one register (a handful of byte operations for
    // all 32 values), and each vector widens its bytes from there.
    const quant::block256 b = quant::unpack256<F>(row, k);
    simd::vec d_lo, d_hi;
    if constexpr (F == block_format::q5_0) {
      d_lo = d_hi = half_bcast(row + k * 22);
    } else {
      d_lo = simd::broadcast(sc->d[2 * (k % 8)]);
      d_hi = simd::broadcast(sc->d[2 * (k % 8) + 1]);
    }
    constexpr int offset = quant::zero_point(F);
    for (std::size_t v = 0; v < vectors_per_block; ++v) {
      w[v] = mul(to_float(sub_i(bytes_of(b.u, v), offset)), v * lanes < 16 ? d_lo : d_hi);
    }
  }
}

#else  // portable: dequantize.hpp's own code for the block, then vector loads

template <block_format F>
inline void widen(const std::uint8_t* row, std::size_t k, simd::vec* w, const sub_scales* = nullptr) noexcept {
  float f[block_values];
  if constexpr (F == block_format::q4_k || F == block_format::q5_k || F == block_format::q6_k) {
    float super[256];
    const std::uint8_t* p = row + k / 8 * traits(F).block_bytes;
    if constexpr (F == block_format::q4_k) gguf::detail::q4_k(p, super);
    if constexpr (F == block_format::q5_k) gguf::detail::q5_k(p, super);
    if constexpr (F == block_format::q6_k) gguf::detail::q6_k(p, super);
    std::memcpy(f, super + (k % 8) * block_values, sizeof f);
  } else {
    const std::uint8_t* p = row + k * traits(F).block_bytes;
    if constexpr (F == block_format::q4_0) gguf::detail::q4_0(p, f);
    if constexpr (F == block_format::q4_1) gguf::detail::q4_1(p, f);
    if constexpr (F == block_format::q5_0) gguf::detail::q5_0(p, f);
    if constexpr (F == block_format::q8_0) gguf::detail::q8_0(p, f);
  }
  for (std::size_t v = 0; v < vectors_per_block; ++v) w[v] = simd::load(f + v * lanes);
}

#endif

// Blocks widened in one step. On AVX-512 the K-quant blocks that share packed bytes are unpacked
// together: a Q4_K pair reads the same 32 bytes (low nibbles, then high), and the four blocks of
// a Q6_K half super-block share 32 bytes of high bits and one 64-byte run of low bits. A divisor
// of 8, so a step never crosses a super-block.
template <block_format F>
constexpr std::size_t step_blocks() noexcept {
#if defined(SPECDEC_QUANT_512)
  if (F == block_format::q4_k) return 2;
  if (F == block_format::q6_k) return 4;
#endif
  return 1;
}

// Blocks k .. k + step_blocks<F>() - 1 of a row: w[g * V + v] is vector v of block k + g, the
// same values as widen() gives block by block.   k: a multiple of step_blocks<F>()
template <block_format F>
inline void widen_step(const std::uint8_t* row, std::size_t k, simd::vec* w,
                       [[maybe_unused]] const sub_scales* sc) noexcept {
  if constexpr (step_blocks<F>() == 1) {
    widen<F>(row, k, w, sc);
  }
#if defined(SPECDEC_QUANT_512)
  else if constexpr (F == block_format::q4_k) {
    const std::size_t sub = k % 8;
    const std::uint8_t* qs = row + k / 8 * traits(F).block_bytes + 16 + 32 * (sub / 2);
    // The 16 possible values of block s, d[s] * q + m[s] (the FMA widen() applies per value);
    // each weight is then a lane permute of its block's table by its 4-bit value (vpermps reads
    // the low 4 bits of each index lane, so the odd block's high nibble needs only the shift).
    const simd::vec iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const auto table = [&](std::size_t s) { return simd::fmadd(iota, simd::broadcast(sc->d[s]), simd::broadcast(sc->m[s])); };
    const simd::vec even = table(sub), odd = table(sub + 1);
    for (std::size_t v = 0; v < vectors_per_block; ++v) {
      const ivec q = widen_u8(qs + v * lanes);
      w[v] = _mm512_maskz_permutexvar_ps(0xFFFF, q, even);
      w[vectors_per_block + v] = _mm512_maskz_permutexvar_ps(0xFFFF, srl_i(q, 4), odd);
    }
  } else if constexpr (F == block_format::q6_k) {
    // Blocks j = 0..3 of half h take low bits from 32-byte run j % 2 of ql (low nibbles for
    // j < 2, high for j >= 2) and bits 2j, 2j + 1 of each qh byte, as quant::unpack256 does.
    const std::size_t half = k % 8 / 4;
    const std::uint8_t* p = row + k / 8 * traits(F).block_bytes;
    const __m512i ql = _mm512_loadu_si512(p + 64 * half);
    const __m512i qh = _mm512_maskz_broadcast_i64x4(0xFF, quant::load256(p + 128 + 32 * half));
    const __m512i nibble = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30), zp = _mm512_set1_epi8(32);
    const __m512i shift_lo = _mm512_maskz_mov_epi16(0xFFFF0000u, _mm512_set1_epi16(2));
    const __m512i shift_hi = _mm512_add_epi16(shift_lo, _mm512_set1_epi16(4));
    // (qh >> s) << 4, masked to bits 4-5 of each byte: bits s, s + 1 of the byte (s <= 6).
    const auto high = [&](__m512i s) { return _mm512_and_si512(_mm512_slli_epi16(_mm512_srlv_epi16(qh, s), 4), bits45); };
    const __m512i u[2] = {
        _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(ql, nibble), high(shift_lo)), zp),
        _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), nibble), high(shift_hi)), zp)};
    // Vector i = 2j + v of the step is 128-bit lane i % 4 of u[i / 4]; its scale is d[2 sub + i].
    // The lane index must be an immediate, so the eight vectors are spelled out.
    const std::size_t sub = k % 8;
    const auto put = [&](std::size_t i, __m128i q) {
      w[i] = mul(to_float(_mm512_maskz_cvtepi8_epi32(0xFFFF, q)), simd::broadcast(sc->d[2 * sub + i]));
    };
    put(0, _mm512_maskz_extracti32x4_epi32(0xF, u[0], 0));
    put(1, _mm512_maskz_extracti32x4_epi32(0xF, u[0], 1));
    put(2, _mm512_maskz_extracti32x4_epi32(0xF, u[0], 2));
    put(3, _mm512_maskz_extracti32x4_epi32(0xF, u[0], 3));
    put(4, _mm512_maskz_extracti32x4_epi32(0xF, u[1], 0));
    put(5, _mm512_maskz_extracti32x4_epi32(0xF, u[1], 1));
    put(6, _mm512_maskz_extracti32x4_epi32(0xF, u[1], 2));
    put(7, _mm512_maskz_extracti32x4_epi32(0xF, u[1], 3));
  }
#endif
}

// y[t * ldy + r] for t < T and the R rows `row` (n_valid of them stored).
//   x: the T tokens interleaved by block, [n_blocks][T][32] (see pack()): every load of the
//      inner loop is at a fixed offset from one pointer (T separate token rows would need T
//      address registers, and AVX2 code then spills them)
// With pf, also pulls pf_bytes at pf (the rows of a later block) into L2, spread over the row.
template <block_format F, std::size_t T>
inline void block(const std::uint8_t* const* row, std::size_t n_blocks, const float* x, float* y,
                  std::size_t ldy, std::size_t n_valid, const std::uint8_t* pf, std::size_t pf_bytes) noexcept {
  constexpr std::size_t R = rows_for(T);
  [[maybe_unused]] sub_scales sc[is_k_quant(F) ? R : 1];
  simd::vec acc[R][T];
  for (auto& a : acc) {
    for (auto& v : a) v = simd::zero();
  }
  // K-quant super-blocks hold 8 blocks; prefetch by whole lines at any block count.
  const std::size_t pf_step = pf != nullptr ? (pf_bytes / n_blocks + 63) / 64 * 64 : 0;
  constexpr std::size_t G = step_blocks<F>();
  for (std::size_t k = 0; k < n_blocks; k += G) {
    if (pf != nullptr) {
      for (std::size_t b = k * pf_step; b < std::min((k + G) * pf_step, pf_bytes); b += 64) prefetch(pf + b);
    }
    const float* xk = x + k * T * block_values;
    if constexpr (is_k_quant(F)) {
      if (k % 8 == 0) {
        for (std::size_t r = 0; r < R; ++r) super_scales<F>(row[r], k / 8, sc[r]);
      }
    }
    for (std::size_t r = 0; r < R; ++r) {
      simd::vec w[G * vectors_per_block];
      widen_step<F>(row[r], k, w, &sc[is_k_quant(F) ? r : 0]);
      // Per (row, token) the FMAs run block by block, vector by vector: widen()'s order.
      for (std::size_t g = 0; g < G; ++g) {
        for (std::size_t t = 0; t < T; ++t) {
          for (std::size_t v = 0; v < vectors_per_block; ++v) {
            acc[r][t] = simd::fmadd(w[g * vectors_per_block + v],
                                    simd::load(xk + (g * T + t) * block_values + v * lanes), acc[r][t]);
          }
        }
      }
    }
  }
  for (std::size_t t = 0; t < T; ++t) {
    for (std::size_t r = 0; r < n_valid; ++r) y[t * ldy + r] = simd::reduce_lanes(acc[r][t]);
  }
}

template <block_format F, std::size_t... Ts>
inline void block_n(std::index_sequence<Ts...>, std::size_t n_tokens, const std::uint8_t* const* row,
                    std::size_t n_blocks, const float* x, float* y, std::size_t ldy, std::size_t n_valid,
                    const std::uint8_t* pf, std::size_t pf_bytes) noexcept {
  ((n_tokens == Ts + 1 ? block<F, Ts + 1>(row, n_blocks, x, y, ldy, n_valid, pf, pf_bytes) : void()), ...);
}

// The n tokens are cut into ceil(n / max_block_tokens) token blocks of near-equal size.
inline std::size_t n_token_blocks(std::size_t n) noexcept { return (n + max_block_tokens - 1) / max_block_tokens; }
inline std::size_t token_block_begin(std::size_t n, std::size_t b) noexcept { return n * b / n_token_blocks(n); }

// x [n, cols] -> out [n, cols] with each token block interleaved: token block b (tokens t0 ..
// t0 + T) at out + t0 * cols as [cols / 32][T][32]. For n = 1 the layout is x's own.
inline void pack(const float* x, std::size_t n, std::size_t cols, float* out) noexcept {
  const std::size_t n_blocks = cols / block_values;
  for (std::size_t b = 0; b < n_token_blocks(n); ++b) {
    const std::size_t t0 = token_block_begin(n, b), nt = token_block_begin(n, b + 1) - t0;
    float* o = out + t0 * cols;
    for (std::size_t k = 0; k < n_blocks; ++k) {
      for (std::size_t t = 0; t < nt; ++t, o += block_values) {
        std::memcpy(o, x + (t0 + t) * cols + k * block_values, block_values * sizeof(float));
      }
    }
  }
}

// Rows [row_begin, row_end) of y on the calling thread; row_begin is a multiple of block_rows.
// Every token block passes over a panel of rows (~64 KB packed, kept in L2) before the next
// panel is read.   xp: pack()ed activations
template <block_format F>
inline void rows(const weight_matrix& w, const float* xp, std::size_t n, float* y, std::size_t ldy,
                 std::size_t row_begin, std::size_t row_end) noexcept {
  const std::size_t cols = w.cols();
  const std::size_t n_blocks = cols / block_values;
  const std::size_t rb = w.row_bytes();
  const std::size_t panel_rows =
      std::max(block_rows, panel_bytes / std::max<std::size_t>(rb, 1) / block_rows * block_rows);
  const auto* base = reinterpret_cast<const std::uint8_t*>(w.data());
  const std::size_t last = w.rows() - 1;
  constexpr auto sizes = std::make_index_sequence<max_block_tokens>{};
  for (std::size_t panel = row_begin; panel < row_end; panel += panel_rows) {
    const std::size_t panel_end = std::min(panel + panel_rows, row_end);
    for (std::size_t b = 0; b < n_token_blocks(n); ++b) {
      const std::size_t t_begin = token_block_begin(n, b);
      const std::size_t n_tokens = token_block_begin(n, b + 1) - t_begin;
      const std::size_t R = rows_for(n_tokens);
      for (std::size_t r = panel; r < panel_end; r += R) {
        const std::uint8_t* row[block_rows];
        for (std::size_t i = 0; i < R; ++i) row[i] = base + std::min(r + i, last) * rb;
        const bool pf = b == 0 && r + prefetch_rows + R <= row_end;
        block_n<F>(sizes, n_tokens, row, n_blocks, xp + t_begin * cols, y + t_begin * ldy + r, ldy,
                   std::min(R, row_end - r), pf ? base + (r + prefetch_rows) * rb : nullptr, R * rb);
      }
    }
  }
}

// From this many tokens on, rows are widened once per panel into an fp32 buffer of the thread
// (~128 KB, kept in L2) and multiplied by matmul.hpp's fp32 kernel: the widening is then paid
// once for all n tokens instead of once per token block. Both paths compute dot(dequantized row,
// x) in the same order, so the switch does not change a single bit (batch invariance holds across
// it). Measured on AVX2, default model mix (bench_qmatmul, noisy host): n = 64 175-194 ms via
// panels against 230-236 ms by token blocks, n = 16 and 32 within the noise; so panels from 32.
#ifndef SPECDEC_FQUANT_PANEL_FROM
#define SPECDEC_FQUANT_PANEL_FROM 32
#endif
inline constexpr std::size_t panel_from_tokens = SPECDEC_FQUANT_PANEL_FROM;

inline aligned_vector<float>& panel_scratch() {
  thread_local aligned_vector<float> buffer;
  return buffer;
}

// Rows [row_begin, row_end) of y through widened panels and matmul_rows.   x: [n, cols]
template <block_format F>
inline void rows_via_panels(const weight_matrix& w, const float* x, std::size_t n, float* y, std::size_t ldy,
                            std::size_t row_begin, std::size_t row_end) {
  const std::size_t cols = w.cols(), n_blocks = cols / block_values;
  const std::size_t panel = std::max<std::size_t>(4, detail::panel_bytes / (cols * sizeof(float)) / 4 * 4);
  auto& buf = panel_scratch();
  if (buf.size() < panel * cols) buf.resize(panel * cols);
  const auto* base = reinterpret_cast<const std::uint8_t*>(w.data());
  for (std::size_t p0 = row_begin; p0 < row_end; p0 += panel) {
    const std::size_t p1 = std::min(p0 + panel, row_end);
    for (std::size_t r = p0; r < p1; ++r) {
      const std::uint8_t* row = base + r * w.row_bytes();
      float* out = buf.data() + (r - p0) * cols;
      sub_scales sc;
      constexpr std::size_t G = step_blocks<F>();
      for (std::size_t k = 0; k < n_blocks; k += G) {
        if constexpr (is_k_quant(F)) {
          if (k % 8 == 0) super_scales<F>(row, k / 8, sc);
        }
        simd::vec v[G * vectors_per_block];
        widen_step<F>(row, k, v, &sc);
        for (std::size_t j = 0; j < G * vectors_per_block; ++j) simd::store(out + k * block_values + j * lanes, v[j]);
      }
    }
    detail::matmul_rows(buf.data(), p1 - p0, cols, x, n, y + p0, 0, p1 - p0, ldy);
  }
}

inline aligned_vector<float>& pack_scratch() {
  thread_local aligned_vector<float> buffer;
  return buffer;
}

// y[t * ldy + r] = dot(dequantized row r of w, x[t]) for block-quantized w (see the file comment).
//   x: [n, w.cols()] fp32   y: [n, ldy]
// For n > 1 the activations are first pack()ed into a buffer of the calling thread that grows to
// the largest n x cols seen (no state kept between calls).
template <block_format F>
inline void gemm(thread_pool& pool, const weight_matrix& w, const float* x, std::size_t n, float* y,
                 std::size_t ldy) {
  const std::size_t n_row_blocks = (w.rows() + block_rows - 1) / block_rows;
  const bool panels = n >= panel_from_tokens;
  const float* xp = x;
  if (!panels && n > 1) {
    auto& buf = pack_scratch();
    if (buf.size() < n * w.cols()) buf.resize(n * w.cols());
    pack(x, n, w.cols(), buf.data());
    xp = buf.data();
  }
  pool.parallel_for(n_row_blocks, [&](std::size_t b_begin, std::size_t b_end) {
    const std::size_t r0 = b_begin * block_rows, r1 = std::min(b_end * block_rows, w.rows());
    if (panels) {
      rows_via_panels<F>(w, x, n, y, ldy, r0, r1);
    } else {
      rows<F>(w, xp, n, y, ldy, r0, r1);
    }
  });
}

}  // namespace fquant
}  // inline namespace SPECDEC_QUANT_ISA
}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
