// Unpacking of GGUF weight blocks into the integer kernel's operands: for each 32-value block of
// a row, the 32 values as unsigned bytes u = q + offset (the format's zero point: Q4_0 8, Q5_0 16,
// Q6_K 32, Q8_0 128, Q4_1 / Q4_K / Q5_K 0) and, per lane of 4 values, the scale d and the
// additive term m, so that the weight value is d * (u - offset) + m exactly as
// gguf/dequantize.hpp computes it (up to that function's own float rounding of d * q + m).
// Block layouts are ggml's (see dequantize.hpp); the x86 paths unpack with SIMD, the portable
// path value by value.
#pragma once

#include <specdec/backends/cpu/quant/isa.hpp>
#include <specdec/backends/cpu/weight_matrix.hpp>
#include <specdec/model/gguf/dequantize.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {
inline namespace SPECDEC_QUANT_ISA {
namespace quant {

constexpr int zero_point(block_format f) noexcept {
  switch (f) {
    case block_format::q4_0: return 8;
    case block_format::q5_0: return 16;
    case block_format::q6_k: return 32;
    case block_format::q8_0: return 128;
    default: return 0;
  }
}
constexpr bool has_min(block_format f) noexcept {
  return f == block_format::q4_1 || f == block_format::q4_k || f == block_format::q5_k;
}

inline float half(const std::uint8_t* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return gguf::fp16_to_fp32(h);
#endif
}

// Where block k (values 32k .. 32k+31) of a row lives, and its scales, per format.
struct block_ref {
  const std::uint8_t* q;  // format-specific start of the packed values
  float d_lo, d_hi;       // scale of lanes 0-3 and 4-7 (differ only for Q6_K's 16-value blocks)
  float m;                // additive term (Q4_1, Q4_K, Q5_K)
  int sub;                // position inside a K-quant super-block (0..7)
};

template <block_format F>
inline block_ref locate(const std::uint8_t* row, std::size_t k) noexcept {
  block_ref b{};
  if constexpr (F == block_format::q4_0 || F == block_format::q5_0 || F == block_format::q8_0) {
    const std::uint8_t* p = row + k * traits(F).block_bytes;
    b.d_lo = b.d_hi = half(p);
    b.q = p + 2;
  } else if constexpr (F == block_format::q4_1) {
    const std::uint8_t* p = row + k * 20;
    b.d_lo = b.d_hi = half(p);
    b.m = half(p + 2);
    b.q = p + 4;
  } else if constexpr (F == block_format::q4_k || F == block_format::q5_k) {
    const std::uint8_t* p = row + k / 8 * traits(F).block_bytes;
    b.sub = static_cast<int>(k % 8);
    std::uint8_t sc, mn;
    gguf::detail::k_scale_min(b.sub, p + 4, sc, mn);
    b.d_lo = b.d_hi = half(p) * static_cast<float>(sc);
    b.m = -(half(p + 2) * static_cast<float>(mn));
    b.q = p;  // super-block start
  } else if constexpr (F == block_format::q6_k) {
    const std::uint8_t* p = row + k / 8 * 210;
    b.sub = static_cast<int>(k % 8);
    const auto* sc = reinterpret_cast<const std::int8_t*>(p + 192) + 8 * (b.sub / 4) + 2 * (b.sub % 4);
    const float d = half(p + 208);
    b.d_lo = d * static_cast<float>(sc[0]);
    b.d_hi = d * static_cast<float>(sc[1]);
    b.q = p;
  }
  return b;
}

// The 32 unsigned values u of block k, portable.
template <block_format F>
inline void unpack_scalar(const block_ref& b, std::uint8_t* u) noexcept {
  const std::uint8_t* q = b.q;
  if constexpr (F == block_format::q4_0 || F == block_format::q4_1) {
    for (int j = 0; j < 16; ++j) {
      u[j] = q[j] & 0xF;
      u[j + 16] = q[j] >> 4;
    }
  } else if constexpr (F == block_format::q5_0) {
    std::uint32_t qh;
    std::memcpy(&qh, q, 4);
    for (int j = 0; j < 16; ++j) {
      u[j] = static_cast<std::uint8_t>((q[4 + j] & 0xF) | (((qh >> j) & 1) << 4));
      u[j + 16] = static_cast<std::uint8_t>((q[4 + j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
    }
  } else if constexpr (F == block_format::q8_0) {
    for (int j = 0; j < 32; ++j) u[j] = static_cast<std::uint8_t>(q[j] ^ 0x80);
  } else if constexpr (F == block_format::q4_k) {
    const std::uint8_t* qs = q + 16 + 32 * (b.sub / 2);
    for (int j = 0; j < 32; ++j) u[j] = (b.sub & 1) ? qs[j] >> 4 : qs[j] & 0xF;
  } else if constexpr (F == block_format::q5_k) {
    const std::uint8_t* qh = q + 16;
    const std::uint8_t* qs = q + 48 + 32 * (b.sub / 2);
    for (int j = 0; j < 32; ++j) {
      const int lo = (b.sub & 1) ? qs[j] >> 4 : qs[j] & 0xF;
      u[j] = static_cast<std::uint8_t>(lo | (((qh[j] >> b.sub) & 1) << 4));
    }
  } else if constexpr (F == block_format::q6_k) {
    const int half_index = b.sub / 4, kk = b.sub % 4;
    const std::uint8_t* ql = q + 64 * half_index + (kk & 1) * 32;
    const std::uint8_t* qh = q + 128 + 32 * half_index;
    for (int j = 0; j < 32; ++j) {
      const int lo = kk < 2 ? ql[j] & 0xF : ql[j] >> 4;
      u[j] = static_cast<std::uint8_t>(lo | (((qh[j] >> (2 * kk)) & 3) << 4));
    }
  }
}

#if defined(SPECDEC_QUANT_512) || defined(SPECDEC_QUANT_256)

struct block256 {
  __m256i u;
  __m256 d;
  __m256 m;
};

inline __m256i low_nibbles(__m256i v) noexcept { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
inline __m256i high_nibbles(__m256i v) noexcept {
  return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}
// 16 packed bytes -> [low nibbles | high nibbles] (values 0-15, then 16-31).
inline __m256i split_nibbles(const std::uint8_t* p) noexcept {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}
inline __m256i load256(const std::uint8_t* p) noexcept {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

template <block_format F>
inline block256 unpack256(const std::uint8_t* row, std::size_t k) noexcept {
  block256 r;
  block_ref b{};
  if constexpr (F == block_format::q4_0 || F == block_format::q5_0 || F == block_format::q8_0 ||
                F == block_format::q4_1) {
    // One fp16 scale (and min) per block: broadcast and convert in the vector unit.
    const std::uint8_t* p = row + k * traits(F).block_bytes;
    std::uint16_t h;
    std::memcpy(&h, p, 2);
    r.d = _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h)));
    if constexpr (F == block_format::q4_1) {
      std::memcpy(&h, p + 2, 2);
      r.m = _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(h)));
      b.q = p + 4;
    } else {
      r.m = _mm256_setzero_ps();
      b.q = p + 2;
    }
  } else {
    b = locate<F>(row, k);
    r.d = _mm256_set_m128(_mm_set1_ps(b.d_hi), _mm_set1_ps(b.d_lo));
    r.m = _mm256_set1_ps(b.m);
  }
  const std::uint8_t* q = b.q;
  if constexpr (F == block_format::q4_0 || F == block_format::q4_1) {
    r.u = split_nibbles(q);
  } else if constexpr (F == block_format::q5_0) {
    std::uint32_t qh;
    std::memcpy(&qh, q, 4);
    // Byte j takes byte j / 8 of qh, then its bit j % 8.
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(static_cast<int>(qh)),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
                         3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    const __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
    r.u = _mm256_or_si256(split_nibbles(q + 4), hi);
  } else if constexpr (F == block_format::q8_0) {
    r.u = _mm256_xor_si256(load256(q), _mm256_set1_epi8(static_cast<char>(0x80)));
  } else if constexpr (F == block_format::q4_k) {
    const __m256i v = load256(q + 16 + 32 * (b.sub / 2));
    r.u = (b.sub & 1) ? high_nibbles(v) : low_nibbles(v);
  } else if constexpr (F == block_format::q5_k) {
    const __m256i v = load256(q + 48 + 32 * (b.sub / 2));
    const __m256i bit = _mm256_set1_epi8(static_cast<char>(1u << b.sub));
    const __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(load256(q + 16), bit), bit),
                                        _mm256_set1_epi8(0x10));
    r.u = _mm256_or_si256((b.sub & 1) ? high_nibbles(v) : low_nibbles(v), hi);
  } else if constexpr (F == block_format::q6_k) {
    const int half_index = b.sub / 4, kk = b.sub % 4;
    const __m256i v = load256(q + 64 * half_index + (kk & 1) * 32);
    const __m256i h = load256(q + 128 + 32 * half_index);
    const __m256i hi2 = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(2 * kk)), _mm256_set1_epi8(3));
    r.u = _mm256_or_si256(kk < 2 ? low_nibbles(v) : high_nibbles(v), _mm256_slli_epi16(hi2, 4));
  }
  return r;
}

#endif

// One group of a row: u bytes, lane scales d and lane terms m, for group g of a row with
// n_blocks 32-value blocks (blocks past the row are zero).
struct group_weights {
  ivec u;
  fvec d;
  fvec m;
};

template <block_format F>
inline group_weights load_group(const std::uint8_t* row, std::size_t g, [[maybe_unused]] std::size_t n_blocks) noexcept {
#if defined(SPECDEC_QUANT_512)
  const block256 a = unpack256<F>(row, 2 * g);
  block256 b{_mm256_setzero_si256(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  if (2 * g + 1 < n_blocks) b = unpack256<F>(row, 2 * g + 1);
  // The all-ones mask forms avoid GCC 12's false -Wmaybe-uninitialized (bug 105593, see vec.hpp).
  const auto join = [](__m256 lo, __m256 hi) {
    const __m512d z = _mm512_setzero_pd();
    const __m512d l = _mm512_mask_insertf64x4(z, 0xFF, z, _mm256_castps_pd(lo), 0);
    return _mm512_castpd_ps(_mm512_mask_insertf64x4(l, 0xFF, l, _mm256_castps_pd(hi), 1));
  };
  const __m512i z = _mm512_setzero_si512();
  const __m512i u = _mm512_mask_inserti64x4(z, 0xFF, z, a.u, 0);
  return {_mm512_mask_inserti64x4(u, 0xFF, u, b.u, 1), join(a.d, b.d), join(a.m, b.m)};
#elif defined(SPECDEC_QUANT_256)
  const block256 a = unpack256<F>(row, g);
  return {a.u, a.d, a.m};
#else
  group_weights w;
  const block_ref b = locate<F>(row, g);
  unpack_scalar<F>(b, w.u.b);
  for (std::size_t l = 0; l < lanes; ++l) {
    w.d.v[l] = l < 4 ? b.d_lo : b.d_hi;
    w.m.v[l] = b.m;
  }
  return w;
#endif
}

}  // namespace quant
}  // inline namespace SPECDEC_QUANT_ISA
}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
