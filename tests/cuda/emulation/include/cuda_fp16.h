// specdec's CUDA emulator (cuda_runtime.h): the __half type and the conversions the backend uses.
#pragma once

#include <cuda_runtime.h>

#include <bit>
#include <cstdint>

struct __half_raw {
  unsigned short x;
};

struct __half {
  unsigned short x;
  __half() = default;
  constexpr __half(__half_raw r) : x(r.x) {}
  constexpr operator __half_raw() const { return __half_raw{x}; }
};

// float -> IEEE binary16, round to nearest even (GCC's _Float16 conversion).
inline __half __float2half_rn(float v) {
  const _Float16 h = static_cast<_Float16>(v);
  return __half(__half_raw{std::bit_cast<unsigned short>(h)});
}
inline float __half2float(__half h) { return static_cast<float>(std::bit_cast<_Float16>(h.x)); }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
