// Batch-invariant vector primitives of the CPU backend: one SIMD register type, a dot product
// with a fixed reduction order, axpy, and the lane-reduction tree that matmul.hpp shares.
// Every dot product in the backend (weight products, attention scores, norms) sums in `lanes`
// partial sums over consecutive chunks of `lanes` elements, the last chunk zero-padded, then folds
// the lanes in the fixed tree of reduce_lanes. The order depends only on the length, never on the
// batch, the thread or the register block, so a token's result does not depend on its neighbours.
// The ISA (AVX-512F, AVX2+FMA, or portable C++) is chosen at compile time from the consumer's
// flags (results differ between ISAs, never within one build); the inline namespace keeps
// translation units built with different flags apart (ODR). -ffast-math (-fassociative-math)
// lets the compiler reorder the sums and voids the guarantee.
#pragma once

#include <specdec/backends/cpu/half.hpp>
#include <specdec/model/gguf/dequantize.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string_view>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#define SPECDEC_CPU_ISA avx512
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SPECDEC_CPU_ISA avx2
#else
#include <cmath>
#define SPECDEC_CPU_ISA generic
#endif

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {

// Lane-reduction tree (the same for every ISA, shown for 16 lanes; AVX2's 8 lanes start at
// step 2, the portable code's 4 at step 3):
//
//   v0 ... v7  v8 ... v15     step 1: s[i] = v[i] + v[i+8]   (i < 8)
//   s0 .. s3   s4 .. s7       step 2: s[i] = s[i] + s[i+4]   (i < 4)
//   s0 s1      s2 s3          step 3: s[i] = s[i] + s[i+2]   (i < 2)
//   s0         s1             step 4: result = s[0] + s[1]
namespace simd {

#if defined(__AVX512F__)

inline constexpr std::string_view isa_name = "avx512";
inline constexpr std::size_t lanes = 16;
inline constexpr std::size_t registers = 32;  // vector registers the compiler can allocate
using vec = __m512;

inline vec zero() noexcept { return _mm512_setzero_ps(); }
inline vec load(const float* p) noexcept { return _mm512_loadu_ps(p); }
// Loads p[0, count) into the low lanes and zeros above; 0 < count < lanes.
inline vec load_partial(const float* p, std::size_t count) noexcept {
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p);
}
inline vec broadcast(float a) noexcept { return _mm512_set1_ps(a); }
inline vec fmadd(vec a, vec b, vec acc) noexcept { return _mm512_fmadd_ps(a, b, acc); }
// Stops the compiler from folding a load into each of its uses as a memory operand (which turns
// one load shared by four FMAs into four loads).
inline void keep_in_register([[maybe_unused]] vec& v) noexcept {
#if defined(__GNUC__)
  asm("" : "+v"(v));
#endif
}
inline void store(float* p, vec v) noexcept { _mm512_storeu_ps(p, v); }
inline void store_partial(float* p, vec v, std::size_t count) noexcept {
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << count) - 1u), v);
}

// GCC 12's unmasked forms of the shuffles, extracts and 512-bit casts pass _mm*_undefined_ps()
// through and trip -Wmaybe-uninitialized in every consumer (GCC bug 105593); the all-ones mask
// forms below compile to the same instructions (the casts to none).
inline __m256 low256(__m512 v) noexcept {
  return _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, _mm512_castps_pd(v), 0));
}
inline __m256 high256(__m512 v) noexcept {
  return _mm256_castpd_ps(_mm512_mask_extractf64x4_pd(_mm256_setzero_pd(), 0xF, _mm512_castps_pd(v), 1));
}
inline __m128 low128(__m512 v) noexcept {
  return _mm512_mask_extractf32x4_ps(_mm_setzero_ps(), 0xF, v, 0);
}
#define SPECDEC_SHUF_F32X4(a, b, imm) _mm512_mask_shuffle_f32x4((a), 0xFFFF, (a), (b), (imm))
#define SPECDEC_PERMUTE_PS(a, imm) _mm512_mask_permute_ps((a), 0xFFFF, (a), (imm))

// Steps 1-2 for four accumulators at once: 128-bit lane j of the result holds the four step-2
// partial sums of accumulator j.
inline __m512 fold_to_quarters(vec a, vec b, vec c, vec d) noexcept {
  const __m512 ab = _mm512_add_ps(SPECDEC_SHUF_F32X4(a, b, 0x44),   // [a.q0 a.q1 b.q0 b.q1]
                                  SPECDEC_SHUF_F32X4(a, b, 0xEE));  // [a.q2 a.q3 b.q2 b.q3]
  const __m512 cd = _mm512_add_ps(SPECDEC_SHUF_F32X4(c, d, 0x44), SPECDEC_SHUF_F32X4(c, d, 0xEE));
  return _mm512_add_ps(SPECDEC_SHUF_F32X4(ab, cd, 0x88),   // [a.q0 b.q0 c.q0 d.q0]
                       SPECDEC_SHUF_F32X4(ab, cd, 0xDD));  // [a.q1 b.q1 c.q1 d.q1]
}

// Steps 3-4 inside each 128-bit lane, then gathers the four results: {a, b, c, d}.
inline __m128 finish_quarters(__m512 q) noexcept {
  q = _mm512_add_ps(q, SPECDEC_PERMUTE_PS(q, 0x4E));  // (s0+s2, s1+s3, ...)
  q = _mm512_add_ps(q, SPECDEC_PERMUTE_PS(q, 0xB1));  // every slot: (s0+s2)+(s1+s3)
  const __m512i first_of_each = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  return low128(_mm512_mask_permutexvar_ps(q, 0xFFFF, first_of_each, q));
}
#undef SPECDEC_SHUF_F32X4
#undef SPECDEC_PERMUTE_PS

// Reduces four accumulators with the tree above and stores {a, b, c, d} to out[0, 4).
inline void reduce4(vec a, vec b, vec c, vec d, float* out) noexcept {
  _mm_storeu_ps(out, finish_quarters(fold_to_quarters(a, b, c, d)));
}

inline float reduce_lanes(vec v) noexcept {
  const __m256 s8 = _mm256_add_ps(low256(v), high256(v));
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

#elif defined(__AVX2__) && defined(__FMA__)

inline constexpr std::string_view isa_name = "avx2";
inline constexpr std::size_t lanes = 8;
inline constexpr std::size_t registers = 16;
using vec = __m256;

inline __m256i partial_mask(std::size_t count) noexcept {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline vec zero() noexcept { return _mm256_setzero_ps(); }
inline vec load(const float* p) noexcept { return _mm256_loadu_ps(p); }
inline vec load_partial(const float* p, std::size_t count) noexcept {
  return _mm256_maskload_ps(p, partial_mask(count));
}
inline vec broadcast(float a) noexcept { return _mm256_set1_ps(a); }
inline vec fmadd(vec a, vec b, vec acc) noexcept { return _mm256_fmadd_ps(a, b, acc); }
inline void keep_in_register([[maybe_unused]] vec& v) noexcept {
#if defined(__GNUC__)
  asm("" : "+x"(v));
#endif
}
inline void store(float* p, vec v) noexcept { _mm256_storeu_ps(p, v); }
inline void store_partial(float* p, vec v, std::size_t count) noexcept {
  _mm256_maskstore_ps(p, partial_mask(count), v);
}

inline void reduce4(vec a, vec b, vec c, vec d, float* out) noexcept {
  // step 2 (8 lanes: s[i] + s[i+4]): [a.lo+a.hi | b.lo+b.hi] and [c.. | d..]
  const __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20),
                                  _mm256_permute2f128_ps(a, b, 0x31));
  const __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20),
                                  _mm256_permute2f128_ps(c, d, 0x31));
  // step 3: (s0+s2, s1+s3) -> [a02 a13 c02 c13 | b02 b13 d02 d13]
  const __m256 s = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, 0x44), _mm256_shuffle_ps(ab, cd, 0xEE));
  // step 4 -> [a c a c | b d b d]
  const __m256 r = _mm256_add_ps(_mm256_shuffle_ps(s, s, 0x88), _mm256_shuffle_ps(s, s, 0xDD));
  _mm_storeu_ps(out, _mm_unpacklo_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1)));
}

inline float reduce_lanes(vec v) noexcept {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

#else

// Portable C++: four lanes, one 16-byte register on SSE2 and NEON. GCC and Clang get a
// vector-extension type, which they keep in registers (an array stayed in memory: 7x slower);
// other compilers get an array.
inline constexpr std::string_view isa_name = "generic";
inline constexpr std::size_t lanes = 4;
inline constexpr std::size_t registers = 16;  // a guess; it only sizes the matmul block

#if defined(__GNUC__)
using vec = float __attribute__((vector_size(lanes * sizeof(float))));
// One expression for every element: a compiler that contracts it into a fused multiply-add
// (GCC's default -ffp-contract=fast, on targets with FMA) does so everywhere alike.
inline vec fmadd(vec a, vec b, vec acc) noexcept { return acc + a * b; }
inline vec broadcast(float a) noexcept { return vec{} + a; }
inline float lane(const vec& v, std::size_t i) noexcept { return v[i]; }
#else
struct vec {
  float v[lanes];
};
// One fused multiply-add where the target has it in hardware, else a multiply and an add; either
// way the same operation for every element, so results stay batch-invariant.
inline vec fmadd(vec a, vec b, vec acc) noexcept {
  for (std::size_t i = 0; i < lanes; ++i) {
#if defined(FP_FAST_FMAF)
    acc.v[i] = std::fma(a.v[i], b.v[i], acc.v[i]);
#else
    acc.v[i] = acc.v[i] + a.v[i] * b.v[i];
#endif
  }
  return acc;
}
inline vec broadcast(float a) noexcept {
  vec r;
  for (float& x : r.v) x = a;
  return r;
}
inline float lane(const vec& v, std::size_t i) noexcept { return v.v[i]; }
#endif

inline vec zero() noexcept { return vec{}; }
inline vec load(const float* p) noexcept {
  vec r;
  std::memcpy(&r, p, sizeof r);
  return r;
}
inline vec load_partial(const float* p, std::size_t count) noexcept {
  vec r{};
  std::memcpy(&r, p, count * sizeof(float));
  return r;
}
inline void keep_in_register(vec&) noexcept {}
inline void store(float* p, vec v) noexcept { std::memcpy(p, &v, sizeof v); }
inline void store_partial(float* p, vec v, std::size_t count) noexcept {
  std::memcpy(p, &v, count * sizeof(float));
}

inline float reduce_lanes(vec v) noexcept {
  return (lane(v, 0) + lane(v, 2)) + (lane(v, 1) + lane(v, 3));  // steps 3 and 4
}
inline void reduce4(vec a, vec b, vec c, vec d, float* out) noexcept {
  out[0] = reduce_lanes(a);
  out[1] = reduce_lanes(b);
  out[2] = reduce_lanes(c);
  out[3] = reduce_lanes(d);
}

#endif

// Loads of 16-bit storage (bf16 weights, the KV cache's fp16 / bf16 options): `lanes` values at p
// widened exactly to fp32 lanes, the same lanes as load() of the widened floats, so a product over
// them sums in the same order.
inline vec load_fp16(const void* p) noexcept {
#if defined(__AVX512F__)
  return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(static_cast<const __m256i*>(p)));
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
  return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(p)));
#else
  std::uint16_t h[lanes];
  std::memcpy(h, p, sizeof h);
  float f[lanes];
  for (std::size_t i = 0; i < lanes; ++i) f[i] = gguf::fp16_to_fp32(h[i]);
  return load(f);
#endif
}
inline vec load_bf16(const void* p) noexcept {
#if defined(__AVX512F__)
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
      0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(static_cast<const __m256i*>(p))), 16));
#elif defined(__AVX2__) && defined(__FMA__)
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(static_cast<const __m128i*>(p))), 16));
#else
  std::uint16_t h[lanes];
  std::memcpy(h, p, sizeof h);
  float f[lanes];
  for (std::size_t i = 0; i < lanes; ++i) f[i] = gguf::bf16_to_fp32(h[i]);
  return load(f);
#endif
}
inline vec load(const fp16_bits* p) noexcept { return load_fp16(p); }
inline vec load(const bf16_bits* p) noexcept { return load_bf16(p); }
// p[0, count) into the low lanes, zeros above; 0 < count < lanes.
template <class T>
  requires(std::is_same_v<T, fp16_bits> || std::is_same_v<T, bf16_bits>)
inline vec load_partial(const T* p, std::size_t count) noexcept {
  T tmp[lanes] = {};
  std::memcpy(tmp, p, count * sizeof(T));
  return load(tmp);
}

}  // namespace simd

// sum_i a[i] * b[i] over [0, n), in the backend's fixed order: bit-identical to the matching
// element of matmul() for the same two vectors.
// b may also be fp16_bits / bf16_bits (widened exactly as it is loaded).
template <class T>
inline float dot(const float* a, const T* b, std::size_t n) noexcept {
  simd::vec acc = simd::zero();
  std::size_t i = 0;
  for (; i + simd::lanes <= n; i += simd::lanes) {
    acc = simd::fmadd(simd::load(a + i), simd::load(b + i), acc);
  }
  if (i < n) acc = simd::fmadd(simd::load_partial(a + i, n - i), simd::load_partial(b + i, n - i), acc);
  return simd::reduce_lanes(acc);
}

// Four dot products of a with b0..b3, each bit-identical to dot(a, bi, n): the same lane sums,
// folded by reduce4, which applies reduce_lanes' tree to four vectors at once.
template <class T>
inline void dot4(const float* a, const T* b0, const T* b1, const T* b2, const T* b3, std::size_t n,
                 float* out) noexcept {
  simd::vec acc0 = simd::zero(), acc1 = simd::zero(), acc2 = simd::zero(), acc3 = simd::zero();
  std::size_t i = 0;
  for (; i + simd::lanes <= n; i += simd::lanes) {
    const simd::vec va = simd::load(a + i);
    acc0 = simd::fmadd(va, simd::load(b0 + i), acc0);
    acc1 = simd::fmadd(va, simd::load(b1 + i), acc1);
    acc2 = simd::fmadd(va, simd::load(b2 + i), acc2);
    acc3 = simd::fmadd(va, simd::load(b3 + i), acc3);
  }
  if (i < n) {
    const std::size_t r = n - i;
    const simd::vec va = simd::load_partial(a + i, r);
    acc0 = simd::fmadd(va, simd::load_partial(b0 + i, r), acc0);
    acc1 = simd::fmadd(va, simd::load_partial(b1 + i, r), acc1);
    acc2 = simd::fmadd(va, simd::load_partial(b2 + i, r), acc2);
    acc3 = simd::fmadd(va, simd::load_partial(b3 + i, r), acc3);
  }
  simd::reduce4(acc0, acc1, acc2, acc3, out);
}

// y += sum_k w[k] * x[k] over k in [0, m), accumulated in k order onto y's values: bit-identical to
// calling axpy(w[k], x[k], y, n) for k = 0, 1, ... (attention's weighted sum of V, which may come in
// consecutive key blocks), with the accumulators held in registers when n is a multiple of the
// lanes and at most 8 vectors.
// x may also point at fp16_bits / bf16_bits rows.
template <class T>
inline void weighted_sum_add(const float* w, const T* const* x, std::size_t m, float* y, std::size_t n) noexcept;
// The same from y = 0.
template <class T>
inline void weighted_sum(const float* w, const T* const* x, std::size_t m, float* y, std::size_t n) noexcept;

// y[i] = a * x[i] + y[i] over [0, n), the same (fused where SIMD) operation for every element.
template <class T>
inline void axpy(float a, const T* x, float* y, std::size_t n) noexcept {
  const simd::vec va = simd::broadcast(a);
  std::size_t i = 0;
  for (; i + simd::lanes <= n; i += simd::lanes) {
    simd::store(y + i, simd::fmadd(va, simd::load(x + i), simd::load(y + i)));
  }
  if (i < n) {
    simd::store_partial(y + i, simd::fmadd(va, simd::load_partial(x + i, n - i),
                                           simd::load_partial(y + i, n - i)), n - i);
  }
}

template <class T>
inline void weighted_sum_add(const float* w, const T* const* x, std::size_t m, float* y, std::size_t n) noexcept {
  constexpr std::size_t max_vectors = 8;
  const std::size_t n_vec = n / simd::lanes;
  if (n % simd::lanes == 0 && n_vec <= max_vectors) {
    simd::vec acc[max_vectors];
    for (std::size_t j = 0; j < n_vec; ++j) acc[j] = simd::load(y + j * simd::lanes);
    for (std::size_t k = 0; k < m; ++k) {
      const simd::vec wk = simd::broadcast(w[k]);
      for (std::size_t j = 0; j < n_vec; ++j) acc[j] = simd::fmadd(wk, simd::load(x[k] + j * simd::lanes), acc[j]);
    }
    for (std::size_t j = 0; j < n_vec; ++j) simd::store(y + j * simd::lanes, acc[j]);
    return;
  }
  for (std::size_t k = 0; k < m; ++k) axpy(w[k], x[k], y, n);
}

template <class T>
inline void weighted_sum(const float* w, const T* const* x, std::size_t m, float* y, std::size_t n) noexcept {
  std::fill(y, y + n, 0.0f);
  weighted_sum_add(w, x, m, y, n);
}

}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
