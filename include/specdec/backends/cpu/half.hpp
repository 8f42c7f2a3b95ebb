// 16-bit float storage of the CPU backend (the KV cache's fp16 and bf16 options): the two storage
// types, distinct so that overloads can tell them apart, and the scalar fp32 -> 16-bit roundings
// (round to nearest even, as the hardware converters and the gguf package do). The 16-bit -> fp32
// direction is exact; its SIMD loads live in vec.hpp, the scalar ones in gguf/dequantize.hpp.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace specdec::cpu {

// IEEE binary16 bits, and bfloat16 bits (the high half of a binary32).
struct fp16_bits {
  std::uint16_t bits;
};
struct bf16_bits {
  std::uint16_t bits;
};

// IEEE binary32 -> binary16, round to nearest even (overflow to infinity).
inline std::uint16_t fp32_to_fp16(float x) noexcept {
  const std::uint32_t b = std::bit_cast<std::uint32_t>(x);
  const std::uint32_t sign = (b >> 16) & 0x8000u;
  const std::uint32_t abs = b & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<std::uint16_t>(sign | 0x7E00u);  // NaN
  if (abs >= 0x477FF000u) return static_cast<std::uint16_t>(sign | 0x7C00u);  // rounds past 65504
  if (abs < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
    // value / 2^-24, rounded to nearest even, is the subnormal's mantissa.
    const float scaled = std::bit_cast<float>(abs) * 16777216.0f;  // exact: a power-of-two scale
    return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(std::nearbyint(scaled)));
  }
  const std::uint32_t mant = abs + 0xFFFu + ((abs >> 13) & 1u) - 0x38000000u;  // rebias, round
  return static_cast<std::uint16_t>(sign | (mant >> 13));
}

// IEEE binary32 -> bfloat16, round to nearest even (NaN stays NaN), as the gguf package does.
inline std::uint16_t fp32_to_bf16(float x) noexcept {
  std::uint32_t b = std::bit_cast<std::uint32_t>(x);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((b >> 16) | 0x40u);
  b += 0x7FFFu + ((b >> 16) & 1u);
  return static_cast<std::uint16_t>(b >> 16);
}

// Stores n floats as T (float: a copy; the 16-bit types: rounded to nearest even).
template <class T>
inline void store_as(const float* x, T* y, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    if constexpr (std::is_same_v<T, float>) {
      y[i] = x[i];
    } else if constexpr (std::is_same_v<T, fp16_bits>) {
      y[i] = fp16_bits{fp32_to_fp16(x[i])};
    } else {
      static_assert(std::is_same_v<T, bf16_bits>);
      y[i] = bf16_bits{fp32_to_bf16(x[i])};
    }
  }
}

}  // namespace specdec::cpu
