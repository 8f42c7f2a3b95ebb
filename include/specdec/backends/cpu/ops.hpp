// Row-wise operations of the Llama forward pass on the CPU: RMSNorm, rotary position embedding and
// SwiGLU. Each works on one token's row at a time with a fixed order of operations, so a token's
// result never depends on how many tokens share the call (docs/design.md, "Exactness"). Elementwise
// work runs through Eigen maps over the same memory; reductions use vec.hpp's fixed-order dot.
#pragma once

#include <specdec/backends/cpu/vec.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace specdec::cpu {

// out[e] = x[e] / sqrt(mean(x^2) + eps) * w[e] for one row of n_embd values.
inline void rms_norm_row(const float* x, const float* w, float* out, std::size_t n_embd, float eps) noexcept {
  const float mean_sq = dot(x, x, n_embd) / static_cast<float>(n_embd);
  const float scale = 1.0f / std::sqrt(mean_sq + eps);
  Eigen::Map<Eigen::ArrayXf>(out, static_cast<Eigen::Index>(n_embd)) =
      Eigen::Map<const Eigen::ArrayXf>(x, static_cast<Eigen::Index>(n_embd)) * scale *
      Eigen::Map<const Eigen::ArrayXf>(w, static_cast<Eigen::Index>(n_embd));
}

// cos/sin of the rotation angles for one position: angle_i = pos * base^(-2i / n_rot) / factor_i
// (factor_i from rope_freqs.weight when present) with positions divided by the linear scaling factor.
inline void rope_angles(std::int32_t pos, std::int64_t n_rot, float freq_base, float linear_scale,
                        const float* freq_factors, float* cos_out, float* sin_out) noexcept {
  const double p = static_cast<double>(pos) / static_cast<double>(linear_scale);
  for (std::int64_t i = 0; i < n_rot / 2; ++i) {
    double theta = p * std::pow(static_cast<double>(freq_base), -2.0 * static_cast<double>(i) / static_cast<double>(n_rot));
    if (freq_factors != nullptr) theta /= static_cast<double>(freq_factors[i]);
    cos_out[i] = static_cast<float>(std::cos(theta));
    sin_out[i] = static_cast<float>(std::sin(theta));
  }
}

// Rotates the first n_rot dimensions of each of n_heads heads of size head_dim, in place.
//   normal layout (Llama in GGUF): pairs (2i, 2i + 1)      neox layout: pairs (i, i + n_rot / 2)
inline void rope_heads(float* x, std::int64_t n_heads, std::int64_t head_dim, std::int64_t n_rot, bool neox,
                       const float* cos_v, const float* sin_v) noexcept {
  const std::int64_t half = n_rot / 2;
  for (std::int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (std::int64_t i = 0; i < half; ++i) {
      const std::int64_t a = neox ? i : 2 * i;
      const std::int64_t b = neox ? i + half : 2 * i + 1;
      const float x0 = v[a], x1 = v[b];
      v[a] = x0 * cos_v[i] - x1 * sin_v[i];
      v[b] = x0 * sin_v[i] + x1 * cos_v[i];
    }
  }
}

// h[j] = silu(gate[j]) * up[j] for one row, where gate_up holds [gate (n_ff) | up (n_ff)].
// Eigen's vectorised exp and std::exp differ in the last bit, and Eigen computes the elements before
// the destination's first packet boundary with the scalar one: a row written straight to `h` would
// depend on h's address (on where the activation buffer happened to be allocated). The row is
// computed into an aligned scratch row instead, so every row takes the same path.
inline void swiglu_row(const float* gate_up, float* h, std::size_t n_ff) {
  const auto n = static_cast<Eigen::Index>(n_ff);
  thread_local Eigen::ArrayXf scratch;  // Eigen allocates it aligned to its packet size
  if (scratch.size() < n) scratch.resize(n);
  Eigen::Map<const Eigen::ArrayXf> g(gate_up, n), u(gate_up + n_ff, n);
  scratch.head(n) = g / (1.0f + (-g).exp()) * u;
  std::memcpy(h, scratch.data(), n_ff * sizeof(float));
}

// y[e] += x[e] for one row.
inline void add_row(float* y, const float* x, std::size_t n) noexcept {
  Eigen::Map<Eigen::ArrayXf>(y, static_cast<Eigen::Index>(n)) +=
      Eigen::Map<const Eigen::ArrayXf>(x, static_cast<Eigen::Index>(n));
}

}  // namespace specdec::cpu
