// top_k: the ids of the k largest values of one logits row, in one pass over the row.
// Order: value descending, ties to the lower id; NaN ranks as -inf. Token Recycling (arXiv 2408.08696)
// runs it on every verified node's row each step, so it must cost little more than reading the row:
// a sorted buffer of k (value, id) pairs keeps a running threshold (its k-th value), and the row is
// tested against that threshold 64 floats at a time (AVX-512 or AVX, from the consumer's flags), so
// most elements cost one vector compare. top_k_reference is the plain full-sort version it is tested against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include <specdec/error.hpp>

#if defined(__AVX512F__)
#include <immintrin.h>
#define SPECDEC_TOPK_ISA topk_avx512
#elif defined(__AVX__)
#include <immintrin.h>
#define SPECDEC_TOPK_ISA topk_avx
#else
#define SPECDEC_TOPK_ISA topk_generic
#endif

namespace specdec {

// Largest k the one-pass versions accept (the buffer lives on the stack).
inline constexpr std::int32_t top_k_max = 64;

namespace detail {

// The k best (value, id) pairs seen so far, best first. Elements arrive in increasing id order, so an
// element equal to the threshold loses the tie and only a strictly larger one enters.
//
//   value  9.1  7.0  7.0  3.2      <- threshold = value[k-1] = 3.2
//   id     40   2    17   5        (ties: lower id first)
class top_k_buffer {
 public:
  // Takes x[0, k) as the first candidates (NaN as -inf).
  top_k_buffer(const float* x, std::int32_t k) noexcept : k_(k) {
    SPECDEC_ASSERT(k >= 1 && k <= top_k_max);
    for (std::int32_t i = 0; i < k; ++i) {
      const float v = std::isnan(x[i]) ? -std::numeric_limits<float>::infinity() : x[i];
      std::int32_t j = i;
      for (; j > 0 && v > value_[j - 1]; --j) {
        value_[j] = value_[j - 1];
        id_[j] = id_[j - 1];
      }
      value_[j] = v;
      id_[j] = i;
    }
  }

  [[nodiscard]] float threshold() const noexcept { return value_[k_ - 1]; }

  // Considers element `id` of value v (ids must increase from call to call).
  void offer(float v, std::int32_t id) noexcept {
    if (!(v > value_[k_ - 1])) return;
    std::int32_t j = k_ - 1;
    for (; j > 0 && v > value_[j - 1]; --j) {
      value_[j] = value_[j - 1];
      id_[j] = id_[j - 1];
    }
    value_[j] = v;
    id_[j] = id;
  }

  void write(std::span<std::int32_t> ids) const noexcept { std::copy_n(id_, k_, ids.data()); }

 private:
  std::int32_t k_;
  float value_[top_k_max];      // [k], descending
  std::int32_t id_[top_k_max];  // [k]
};

}  // namespace detail

// Plain reference: a partial sort of all ids. Writes ids.size() ids; values.size() >= ids.size().
inline void top_k_reference(std::span<const float> values, std::span<std::int32_t> ids) {
  std::vector<std::int32_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  auto key = [&](std::int32_t i) {
    const float v = values[static_cast<std::size_t>(i)];
    return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
  };
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(ids.size()), order.end(),
                    [&](std::int32_t a, std::int32_t b) { return key(a) > key(b) || (key(a) == key(b) && a < b); });
  std::copy_n(order.begin(), ids.size(), ids.begin());
}

namespace detail {

// Bit j of the result is set when x[j] > threshold, for the 64 elements x[0, 64). Ordered compare:
// NaN never is. This one is plain C++ that the compiler can vectorise.
inline std::uint64_t above_portable(const float* x, float threshold) noexcept {
  std::uint32_t n_above = 0;
  for (int j = 0; j < 64; ++j) n_above += x[j] > threshold ? 1u : 0u;
  if (n_above == 0) return 0;
  std::uint64_t bits = 0;
  for (int j = 0; j < 64; ++j) bits |= std::uint64_t{x[j] > threshold} << j;
  return bits;
}

// The one-pass driver: blocks of 64 are tested against the running threshold, and only the
// candidates of a block are offered to the buffer one by one.
template <std::uint64_t (*Above)(const float*, float) noexcept>
void top_k_blocks(std::span<const float> values, std::span<std::int32_t> ids) noexcept {
  SPECDEC_ASSERT(!ids.empty() && ids.size() <= static_cast<std::size_t>(top_k_max) && ids.size() <= values.size());
  const float* x = values.data();
  const std::size_t n = values.size();
  top_k_buffer best(x, static_cast<std::int32_t>(ids.size()));
  std::size_t i = ids.size();
  for (; i + 64 <= n; i += 64) {
    std::uint64_t bits = Above(x + i, best.threshold());
    while (bits != 0) {
      const auto j = static_cast<std::size_t>(__builtin_ctzll(bits));
      bits &= bits - 1;
      best.offer(x[i + j], static_cast<std::int32_t>(i + j));
    }
  }
  for (; i < n; ++i) best.offer(x[i], static_cast<std::int32_t>(i));
  best.write(ids);
}

}  // namespace detail

// One pass, portable C++. Requires 1 <= ids.size() <= top_k_max and ids.size() <= values.size().
inline void top_k_portable(std::span<const float> values, std::span<std::int32_t> ids) noexcept {
  detail::top_k_blocks<detail::above_portable>(values, ids);
}

// The versions below depend on the compile flags; the inline namespace keeps translation units built
// with different flags apart (ODR). Every version returns exactly top_k_reference's ids.
inline namespace SPECDEC_TOPK_ISA {

// above_portable with the widest compare the flags allow.
inline std::uint64_t top_k_above_simd(const float* x, float threshold) noexcept {
#if defined(__AVX512F__)
  const __m512 t = _mm512_set1_ps(threshold);
  const __mmask16 m0 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x), t, _CMP_GT_OQ);
  const __mmask16 m1 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16), t, _CMP_GT_OQ);
  const __mmask16 m2 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + 32), t, _CMP_GT_OQ);
  const __mmask16 m3 = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + 48), t, _CMP_GT_OQ);
  if ((m0 | m1 | m2 | m3) == 0) return 0;
  return std::uint64_t{m0} | std::uint64_t{m1} << 16 | std::uint64_t{m2} << 32 | std::uint64_t{m3} << 48;
#elif defined(__AVX__)
  const __m256 t = _mm256_set1_ps(threshold);
  __m256 m[8];
  __m256 any = _mm256_setzero_ps();
  for (int j = 0; j < 8; ++j) {
    m[j] = _mm256_cmp_ps(_mm256_loadu_ps(x + 8 * j), t, _CMP_GT_OQ);
    any = _mm256_or_ps(any, m[j]);
  }
  if (_mm256_testz_ps(any, any)) return 0;
  std::uint64_t bits = 0;
  for (int j = 0; j < 8; ++j) bits |= std::uint64_t{static_cast<std::uint32_t>(_mm256_movemask_ps(m[j]))} << (8 * j);
  return bits;
#else
  return detail::above_portable(x, threshold);
#endif
}

// The one-pass top-k with SIMD compares; same contract as top_k_portable.
inline void top_k(std::span<const float> values, std::span<std::int32_t> ids) noexcept {
  detail::top_k_blocks<top_k_above_simd>(values, ids);
}

}  // inline namespace SPECDEC_TOPK_ISA

}  // namespace specdec
