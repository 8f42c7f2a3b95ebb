// specdec's CUDA emulator (cuda_runtime.h): the __nv_bfloat16 type and its conversions.
#pragma once

#include <cuda_runtime.h>

#include <bit>
#include <cstdint>

struct __nv_bfloat16 {
  unsigned short x;
};

inline float __bfloat162float(__nv_bfloat16 v) { return std::bit_cast<float>(static_cast<std::uint32_t>(v.x) << 16); }

// float -> bfloat16, round to nearest even; a NaN stays a quiet NaN.
inline __nv_bfloat16 __float2bfloat16_rn(float v) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(v);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return __nv_bfloat16{static_cast<unsigned short>((u >> 16) | 0x40u)};
  u += 0x7FFFu + ((u >> 16) & 1u);
  return __nv_bfloat16{static_cast<unsigned short>(u >> 16)};
}
