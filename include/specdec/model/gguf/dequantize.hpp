// Dequantization of GGUF tensor data to fp32.
// Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K. Block layouts follow
// ggml's (ggml-common.h); each is checked in tests/gguf against the `gguf` Python package.
// Other types parse (their size is known) but converting them is an `unsupported` error.
#pragma once

#include <specdec/error.hpp>
#include <specdec/model/gguf/format.hpp>
#include <specdec/model/gguf/reader.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace specdec::gguf {

// IEEE-754 binary16 -> binary32, exact for every input (subnormals, infinities, NaNs).
inline float fp16_to_fp32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  std::uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(bits);
}

inline float bf16_to_fp32(std::uint16_t h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}

namespace detail {

inline std::uint16_t load_u16(const std::uint8_t* p) noexcept {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline float load_fp16(const std::uint8_t* p) noexcept { return fp16_to_fp32(load_u16(p)); }

// 6-bit scale and min of sub-block j from the 12 packed bytes of a Q4_K / Q5_K super-block.
inline void k_scale_min(int j, const std::uint8_t* q, std::uint8_t& sc, std::uint8_t& m) noexcept {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = static_cast<std::uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = static_cast<std::uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Block layouts (bytes): d, m are fp16; qs packs two 4-bit values per byte, low nibbles first.
inline void q4_0(const std::uint8_t* b, float* y) noexcept {  // d[2] qs[16]
  const float d = load_fp16(b);
  const std::uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

inline void q4_1(const std::uint8_t* b, float* y) noexcept {  // d[2] m[2] qs[16]
  const float d = load_fp16(b), m = load_fp16(b + 2);
  const std::uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0xF) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

inline void q5_0(const std::uint8_t* b, float* y) noexcept {  // d[2] qh[4] qs[16]
  const float d = load_fp16(b);
  std::uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const std::uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int hi0 = static_cast<int>(((qh >> j) << 4) & 0x10);
    const int hi1 = static_cast<int>((qh >> (j + 12)) & 0x10);
    y[j] = static_cast<float>(((qs[j] & 0xF) | hi0) - 16) * d;
    y[j + 16] = static_cast<float>(((qs[j] >> 4) | hi1) - 16) * d;
  }
}

inline void q5_1(const std::uint8_t* b, float* y) noexcept {  // d[2] m[2] qh[4] qs[16]
  const float d = load_fp16(b), m = load_fp16(b + 2);
  std::uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const std::uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int hi0 = static_cast<int>(((qh >> j) << 4) & 0x10);
    const int hi1 = static_cast<int>((qh >> (j + 12)) & 0x10);
    y[j] = static_cast<float>((qs[j] & 0xF) | hi0) * d + m;
    y[j + 16] = static_cast<float>((qs[j] >> 4) | hi1) * d + m;
  }
}

inline void q8_0(const std::uint8_t* b, float* y) noexcept {  // d[2] qs[32] (int8)
  const float d = load_fp16(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<std::int8_t>(b[2 + j])) * d;
}

// Super-block of 256: d[2] dmin[2] scales[12] qs[128]; 8 sub-blocks of 32 with 6-bit scale/min.
inline void q4_k(const std::uint8_t* b, float* y) noexcept {
  const float d = load_fp16(b), dmin = load_fp16(b + 2);
  const std::uint8_t* scales = b + 4;
  const std::uint8_t* q = b + 16;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
    std::uint8_t sc, m;
    k_scale_min(is, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    k_scale_min(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

// Super-block of 256: d[2] dmin[2] scales[12] qh[32] qs[128]; the fifth bit comes from qh.
inline void q5_k(const std::uint8_t* b, float* y) noexcept {
  const float d = load_fp16(b), dmin = load_fp16(b + 2);
  const std::uint8_t* scales = b + 4;
  const std::uint8_t* qh = b + 16;
  const std::uint8_t* ql = b + 48;
  std::uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32) {
    std::uint8_t sc, m;
    k_scale_min(is, scales, sc, m);
    const float d1 = d * sc, m1 = dmin * m;
    k_scale_min(is + 1, scales, sc, m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    u1 = static_cast<std::uint8_t>(u1 << 2);
    u2 = static_cast<std::uint8_t>(u2 << 2);
  }
}

// Super-block of 256: ql[128] qh[64] scales[16] (int8) d[2]; 6-bit values centred on 32.
inline void q6_k(const std::uint8_t* b, float* y) noexcept {
  const std::uint8_t* ql = b;
  const std::uint8_t* qh = b + 128;
  const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
  const float d = load_fp16(b + 208);
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

template <void (*Block)(const std::uint8_t*, float*), int BlockSize, int TypeSize>
void blocks(const std::uint8_t* src, float* dst, std::uint64_t n) noexcept {
  for (std::uint64_t i = 0; i < n / BlockSize; ++i) Block(src + i * TypeSize, dst + i * BlockSize);
}

}  // namespace detail

inline bool can_dequantize(ggml_type t) noexcept {
  switch (t) {
    case ggml_type::f32: case ggml_type::f16: case ggml_type::bf16: case ggml_type::q4_0:
    case ggml_type::q4_1: case ggml_type::q5_0: case ggml_type::q5_1: case ggml_type::q8_0:
    case ggml_type::q4_k: case ggml_type::q5_k: case ggml_type::q6_k:
      return true;
    default:
      return false;
  }
}

// Converts n values (a multiple of the type's block size) starting at src. Returns false, writing
// nothing, when the type is not supported.
inline bool dequantize_row(ggml_type t, const std::byte* src_bytes, float* dst, std::uint64_t n) noexcept {
  const auto* src = reinterpret_cast<const std::uint8_t*>(src_bytes);
  switch (t) {
    case ggml_type::f32: std::memcpy(dst, src, n * 4); return true;
    case ggml_type::f16:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = detail::load_fp16(src + 2 * i);
      return true;
    case ggml_type::bf16:
      for (std::uint64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(detail::load_u16(src + 2 * i));
      return true;
    case ggml_type::q4_0: detail::blocks<detail::q4_0, 32, 18>(src, dst, n); return true;
    case ggml_type::q4_1: detail::blocks<detail::q4_1, 32, 20>(src, dst, n); return true;
    case ggml_type::q5_0: detail::blocks<detail::q5_0, 32, 22>(src, dst, n); return true;
    case ggml_type::q5_1: detail::blocks<detail::q5_1, 32, 24>(src, dst, n); return true;
    case ggml_type::q8_0: detail::blocks<detail::q8_0, 32, 34>(src, dst, n); return true;
    case ggml_type::q4_k: detail::blocks<detail::q4_k, 256, 144>(src, dst, n); return true;
    case ggml_type::q5_k: detail::blocks<detail::q5_k, 256, 176>(src, dst, n); return true;
    case ggml_type::q6_k: detail::blocks<detail::q6_k, 256, 210>(src, dst, n); return true;
    default: return false;
  }
}

// Dequantizes a whole tensor into dst (n_elements floats); throws `unsupported` naming the tensor.
inline void dequantize(const file& f, const tensor_info& t, float* dst) {
  if (!can_dequantize(t.type)) {
    throw error(error_category::unsupported, f.source() + ": tensor '" + t.name + "' has type " +
                                                 std::string(to_string(t.type)) +
                                                 ", which specdec cannot dequantize yet");
  }
  dequantize_row(t.type, t.data, dst, t.n_elements);
}

inline std::vector<float> dequantize(const file& f, const tensor_info& t) {
  if (!can_dequantize(t.type)) dequantize(f, t, nullptr);  // throws the error above
  std::vector<float> out(static_cast<std::size_t>(t.n_elements));
  dequantize(f, t, out.data());
  return out;
}

}  // namespace specdec::gguf
