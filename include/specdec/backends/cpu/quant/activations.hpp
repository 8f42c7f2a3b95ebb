// Activations quantized for the integer products: per block of 32 values, int8 q = round(x / d)
// with d = max|x| / 127 (fp32), so |x - d q| <= d / 2. All weight formats use the same 32-value
// blocks (K-quants' sub-blocks are 32 or 16 values, both inside one block), so a token is
// quantized once per product whatever the format. Each token's blocks are laid out in groups
// of quant::group values (one register of bytes) with the per-lane terms the kernel needs:
//
//   group g of token t, 4 * group bytes:
//   [ q: group int8 ][ d: lanes fp32 ][ d * sum4(q): lanes fp32 ][ offset * sum4(q): lanes int32 ]
//
// where lane l covers values 4l .. 4l+3 of the group and d is its block's scale. Values past
// cols are zero. The quantization of a token depends on that token only (batch invariance).
#pragma once

#include <specdec/backends/cpu/quant/isa.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace specdec::cpu {
inline namespace SPECDEC_CPU_ISA {
inline namespace SPECDEC_QUANT_ISA {
namespace quant {

inline constexpr std::size_t act_block = 32;
inline constexpr std::size_t group_bytes = 4 * group;
inline constexpr std::size_t scale_offset = group;                       // d per lane
inline constexpr std::size_t sum_offset = group + 4 * lanes;             // d * sum4(q) per lane
inline constexpr std::size_t corr_offset = group + 8 * lanes;            // offset * sum4(q)

[[nodiscard]] constexpr std::size_t n_groups(std::size_t cols) noexcept { return (cols + group - 1) / group; }
[[nodiscard]] constexpr std::size_t token_bytes(std::size_t cols) noexcept { return n_groups(cols) * group_bytes; }

// Quantizes one token's 32-value block: q[j] = round-half-even(x[j] * (1 / d)), d = max|x| / 127;
// values j >= count are zero. Returns d.
inline float quantize_block(const float* x, std::size_t count, std::int8_t* q) noexcept {
  float amax = 0.0f;
  for (std::size_t j = 0; j < count; ++j) amax = std::max(amax, std::abs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (std::size_t j = 0; j < act_block; ++j) {
    q[j] = j < count ? static_cast<std::int8_t>(std::nearbyint(x[j] * id)) : std::int8_t{0};
  }
  return d;
}

// x [n, cols] -> out [n, token_bytes(cols)]; offset is the weight format's zero point (0, 8, 16,
// 32 or 128), folded into the int32 correction lanes.
inline void quantize_activations(const float* x, std::size_t n, std::size_t cols, int offset,
                                 std::byte* out) noexcept {
  const std::size_t ng = n_groups(cols);
  for (std::size_t t = 0; t < n; ++t) {
    const float* xt = x + t * cols;
    std::byte* tok = out + t * token_bytes(cols);
    for (std::size_t g = 0; g < ng; ++g) {
      std::byte* rec = tok + g * group_bytes;
      auto* q = reinterpret_cast<std::int8_t*>(rec);
      float d_lane[lanes], s_lane[lanes];
      std::int32_t c_lane[lanes];
      for (std::size_t b = 0; b < group / act_block; ++b) {
        const std::size_t begin = g * group + b * act_block;
        const std::size_t count = begin < cols ? std::min(act_block, cols - begin) : 0;
        const float d = quantize_block(xt + std::min(begin, cols), count, q + b * act_block);
        for (std::size_t l = b * act_block / 4; l < (b + 1) * act_block / 4; ++l) {
          std::int32_t s = 0;
          for (std::size_t j = 4 * l; j < 4 * l + 4; ++j) s += q[j];
          d_lane[l] = d;
          s_lane[l] = d * static_cast<float>(s);
          c_lane[l] = offset * s;
        }
      }
      std::memcpy(rec + scale_offset, d_lane, sizeof d_lane);
      std::memcpy(rec + sum_offset, s_lane, sizeof s_lane);
      std::memcpy(rec + corr_offset, c_lane, sizeof c_lane);
    }
  }
}

}  // namespace quant
}  // inline namespace SPECDEC_QUANT_ISA
}  // inline namespace SPECDEC_CPU_ISA
}  // namespace specdec::cpu
