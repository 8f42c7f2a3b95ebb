// The integer SIMD layer of the quantized products: a "group" of G weight values (one register of
// bytes), the int32 lane sums of 4 products each, and the float lane vectors that combine them.
//   AVX-512BW (+VNNI: _mm512_dpbusd_epi32)       G = 64, 16 lanes
//   AVX2 (+AVX-VNNI or AVX512-VNNI/VL dpbusd)    G = 32,  8 lanes
//   portable C++                                 G = 32,  8 lanes
// Chosen at compile time from the consumer's flags, like vec.hpp; the nested inline namespace
// keeps translation units with different integer paths apart (ODR). A run-time dispatch would need
// each path compiled in its own TU with target attributes (or __attribute__((target))) and a
// function pointer table chosen once from cpuid; results would then differ between hosts exactly
// as they do between builds today.
// Integer sums are exact on every path, so the paths differ only in G (the float combine order).
#pragma once

#include <specdec/backends/cpu/vec.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#define SPECDEC_QUANT_512 1
#if defined(__AVX512VNNI__)
#define SPECDEC_QUANT_ISA q_avx512vnni
#define SPECDEC_QUANT_VNNI 1
#else
#define SPECDEC_QUANT_ISA q_avx512bw
#endif
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define SPECDEC_QUANT_256 1
#if defined(__AVXVNNI__) || (defined(__AVX512VNNI__) && defined(__AVX512VL__))
#define SPECDEC_QUANT_ISA q_avx2vnni
#define SPECDEC_QUANT_VNNI 1
#else
#define SPECDEC_QUANT_ISA q_avx2
#endif
#else
#define SPECDEC_QUANT_ISA q_generic
#endif

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {
inline namespace SPECDEC_QUANT_ISA {
namespace quant {

#if defined(SPECDEC_QUANT_512)
inline constexpr std::string_view int_isa_name =
#if defined(SPECDEC_QUANT_VNNI)
    "avx512-vnni";
#else
    "avx512bw";
#endif
inline constexpr std::size_t group = 64;
using ivec = __m512i;
using fvec = __m512;
#elif defined(SPECDEC_QUANT_256)
inline constexpr std::string_view int_isa_name =
#if defined(SPECDEC_QUANT_VNNI)
    "avx2-vnni";
#else
    "avx2";
#endif
inline constexpr std::size_t group = 32;
using ivec = __m256i;
using fvec = __m256;
#else
inline constexpr std::string_view int_isa_name = "generic";
inline constexpr std::size_t group = 32;
#endif
inline constexpr std::size_t lanes = group / 4;  // int32 lanes, each the sum of 4 products

#if !defined(SPECDEC_QUANT_512) && !defined(SPECDEC_QUANT_256)
// Portable registers: bytes of a group, and lanes of int32 or float.
struct ivec {
  alignas(32) std::uint8_t b[group];
};
struct lanes_i32 {
  std::int32_t v[lanes];
};
struct fvec {
  float v[lanes];
};
#endif

#if defined(SPECDEC_QUANT_512) || defined(SPECDEC_QUANT_256)

#if defined(SPECDEC_QUANT_512)
inline ivec load_bytes(const void* p) noexcept { return _mm512_loadu_si512(p); }
inline fvec load_f(const float* p) noexcept { return _mm512_loadu_ps(p); }
inline fvec zero_f() noexcept { return _mm512_setzero_ps(); }
inline fvec to_float(ivec v) noexcept { return _mm512_maskz_cvtepi32_ps(0xFFFF, v); }  // GCC bug 105593
inline fvec mul(fvec a, fvec b) noexcept { return _mm512_mul_ps(a, b); }
inline fvec fmadd(fvec a, fvec b, fvec c) noexcept { return _mm512_fmadd_ps(a, b, c); }
inline ivec sub_i32(ivec a, ivec b) noexcept { return _mm512_sub_epi32(a, b); }
inline ivec xor_bias(ivec u) noexcept { return _mm512_xor_si512(u, _mm512_set1_epi8(static_cast<char>(0x80))); }
inline float reduce(fvec v) noexcept { return simd::reduce_lanes(v); }
#else
inline ivec load_bytes(const void* p) noexcept { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline fvec load_f(const float* p) noexcept { return _mm256_loadu_ps(p); }
inline fvec zero_f() noexcept { return _mm256_setzero_ps(); }
inline fvec to_float(ivec v) noexcept { return _mm256_cvtepi32_ps(v); }
inline fvec mul(fvec a, fvec b) noexcept { return _mm256_mul_ps(a, b); }
inline fvec fmadd(fvec a, fvec b, fvec c) noexcept { return _mm256_fmadd_ps(a, b, c); }
inline ivec sub_i32(ivec a, ivec b) noexcept { return _mm256_sub_epi32(a, b); }
inline ivec xor_bias(ivec u) noexcept { return _mm256_xor_si256(u, _mm256_set1_epi8(static_cast<char>(0x80))); }
// The fixed tree of vec.hpp's 8-lane reduction.
inline float reduce(fvec v) noexcept {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}
#endif

// Operand of one weight group prepared once and used for every token: the biased bytes u (and,
// for Offset 128 without VNNI, |s| and s of the signed values s = u - 128).
template <int Offset>
struct row_operand {
  ivec a;
  ivec s;
};

template <int Offset>
inline row_operand<Offset> prepare(ivec u) noexcept {
#if !defined(SPECDEC_QUANT_VNNI)
  if constexpr (Offset == 128) {
    const ivec s = xor_bias(u);
#if defined(SPECDEC_QUANT_512)
    return {_mm512_abs_epi8(s), s};
#else
    return {_mm256_abs_epi8(s), s};
#endif
  }
#endif
  return {u, u};
}

// Lane l: sum over the 4 bytes of lane l of (u - Offset) * x, exact. corr holds Offset * (sum of
// the lane's 4 x bytes), precomputed per token.
//   VNNI: dpbusd(u, x) - corr.   Without VNNI: maddubs + madd(1); u <= 63 there, so the int16 pair
//   sums cannot saturate, except Q8_0 (Offset 128), which multiplies |s| by x carrying s's sign.
template <int Offset>
inline ivec lane_sums(const row_operand<Offset>& w, ivec x, [[maybe_unused]] const void* corr) noexcept {
#if defined(SPECDEC_QUANT_512)
#if defined(SPECDEC_QUANT_VNNI)
  ivec r = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.a, x);
  if constexpr (Offset != 0) r = _mm512_sub_epi32(r, _mm512_loadu_si512(corr));
  return r;
#else
  const ivec ones = _mm512_set1_epi16(1);
  if constexpr (Offset == 128) {
    const __mmask64 neg = _mm512_movepi8_mask(w.s);
    const ivec sx = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    return _mm512_madd_epi16(_mm512_maddubs_epi16(w.a, sx), ones);
  } else {
    ivec r = _mm512_madd_epi16(_mm512_maddubs_epi16(w.a, x), ones);
    if constexpr (Offset != 0) r = _mm512_sub_epi32(r, _mm512_loadu_si512(corr));
    return r;
  }
#endif
#else
#if defined(SPECDEC_QUANT_VNNI)
#if defined(__AVXVNNI__)
  ivec r = _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), w.a, x);
#else
  ivec r = _mm256_dpbusd_epi32(_mm256_setzero_si256(), w.a, x);
#endif
  if constexpr (Offset != 0) r = _mm256_sub_epi32(r, _mm256_loadu_si256(static_cast<const __m256i*>(corr)));
  return r;
#else
  const ivec ones = _mm256_set1_epi16(1);
  if constexpr (Offset == 128) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w.a, _mm256_sign_epi8(x, w.s)), ones);
  } else {
    ivec r = _mm256_madd_epi16(_mm256_maddubs_epi16(w.a, x), ones);
    if constexpr (Offset != 0) r = _mm256_sub_epi32(r, _mm256_loadu_si256(static_cast<const __m256i*>(corr)));
    return r;
  }
#endif
#endif
}

#else  // portable

inline ivec load_bytes(const void* p) noexcept {
  ivec r;
  std::memcpy(r.b, p, group);
  return r;
}
inline fvec load_f(const float* p) noexcept {
  fvec r;
  std::memcpy(r.v, p, sizeof r.v);
  return r;
}
inline fvec zero_f() noexcept { return fvec{}; }
inline fvec to_float(const lanes_i32& v) noexcept {
  fvec r;
  for (std::size_t l = 0; l < lanes; ++l) r.v[l] = static_cast<float>(v.v[l]);
  return r;
}
inline fvec mul(const fvec& a, const fvec& b) noexcept {
  fvec r;
  for (std::size_t l = 0; l < lanes; ++l) r.v[l] = a.v[l] * b.v[l];
  return r;
}
// One multiply-add expression for every lane, as vec.hpp's portable fmadd.
inline fvec fmadd(const fvec& a, const fvec& b, fvec c) noexcept {
  for (std::size_t l = 0; l < lanes; ++l) c.v[l] = c.v[l] + a.v[l] * b.v[l];
  return c;
}
// vec.hpp's tree for 8 lanes: s[i] + s[i+4], then + s[i+2], then s0 + s1.
inline float reduce(const fvec& v) noexcept {
  float s[4];
  for (int i = 0; i < 4; ++i) s[i] = v.v[i] + v.v[i + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}

template <int Offset>
struct row_operand {
  ivec a;
};
template <int Offset>
inline row_operand<Offset> prepare(const ivec& u) noexcept {
  return {u};
}
template <int Offset>
inline lanes_i32 lane_sums(const row_operand<Offset>& w, const ivec& x, const void* corr) noexcept {
  lanes_i32 r;
  std::int32_t c[lanes];
  std::memcpy(c, corr, sizeof c);
  for (std::size_t l = 0; l < lanes; ++l) {
    std::int32_t s = 0;
    for (std::size_t j = 4 * l; j < 4 * l + 4; ++j) {
      s += static_cast<std::int32_t>(w.a.b[j]) * static_cast<std::int32_t>(static_cast<std::int8_t>(x.b[j]));
    }
    r.v[l] = Offset != 0 ? s - c[l] : s;
  }
  return r;
}

#endif

}  // namespace quant
}  // inline namespace SPECDEC_QUANT_ISA
}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
