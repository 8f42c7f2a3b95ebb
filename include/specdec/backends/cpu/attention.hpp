// Tree attention of the CPU backend, grouped-query, for a batch of rows from many sequences. A row
// attends to its sequence's committed slots [0, n_past) and to its pending ancestors and itself.
// Keys are visited in slot order (committed first, then pending ancestors by pending index), which
// is the order the same path would have as a plain sequence, and every sum runs in that order: a
// row's output is bit-identical to running its root-to-node path alone, whatever else is in the batch.
// Scores use dot4 (bit-identical to dot); exp runs vectorised over a 64-byte aligned buffer padded to
// whole packets, so every element takes the same code path whatever the number of keys.
#pragma once

#include <specdec/backends/cpu/kv_cache.hpp>
#include <specdec/backends/cpu/thread_pool.hpp>
#include <specdec/backends/cpu/vec.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace specdec::cpu {

struct attention_shape {
  std::int64_t n_head = 0;
  std::int64_t n_head_kv = 0;
  std::int64_t head_dim = 0;
};

// Which keys one query row sees: its sequence's committed slots [0, n_past) and the pending slots
// listed at ancestors[first .. first + count) (its ancestors and itself, in increasing order).
struct attention_row {
  const kv_cache::table* table = nullptr;
  std::int32_t n_past = 0;
  std::int32_t first = 0;
  std::int32_t count = 0;
};

// q:   [n, n_head * head_dim]  (rotated)           out: [n, n_head * head_dim]
// K/V of the step's rows are already in their cache slots of `layer`.
inline void tree_attention(thread_pool& pool, const kv_cache& cache, std::int32_t layer,
                           std::span<const attention_row> rows, const std::int32_t* ancestors, const float* q,
                           float* out, const attention_shape& s) {
  const auto n = static_cast<std::int32_t>(rows.size());
  const std::int64_t group = s.n_head / s.n_head_kv;
  const auto hd = static_cast<std::size_t>(s.head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const std::size_t q_stride = static_cast<std::size_t>(s.n_head) * hd;
  std::int32_t most_keys = 0;
  for (const auto& r : rows) most_keys = std::max(most_keys, r.n_past + r.count);

  pool.parallel_for(static_cast<std::size_t>(n) * static_cast<std::size_t>(s.n_head),
                    [&](std::size_t begin, std::size_t end) {
    constexpr Eigen::Index packet = 16;  // pad to whole AVX-512 packets (a multiple of every ISA's)
    const auto capacity = static_cast<Eigen::Index>((most_keys + packet - 1) / packet * packet);
    Eigen::ArrayXf scores(capacity);  // 64-byte aligned by Eigen
    std::vector<const float*> keys(static_cast<std::size_t>(most_keys));
    std::vector<const float*> values(static_cast<std::size_t>(most_keys));
    for (std::size_t task = begin; task < end; ++task) {
      const auto i = static_cast<std::int32_t>(task / static_cast<std::size_t>(s.n_head));
      const auto h = static_cast<std::int64_t>(task % static_cast<std::size_t>(s.n_head));
      const auto g = static_cast<std::int32_t>(h / group);
      const attention_row& row = rows[static_cast<std::size_t>(i)];
      const float* qi = q + static_cast<std::size_t>(i) * q_stride + static_cast<std::size_t>(h) * hd;
      float* oi = out + static_cast<std::size_t>(i) * q_stride + static_cast<std::size_t>(h) * hd;

      std::size_t n_keys = 0;
      auto add_slot = [&](std::int32_t slot) {
        keys[n_keys] = cache.k(*row.table, layer, g, slot);
        values[n_keys] = cache.v(*row.table, layer, g, slot);
        ++n_keys;
      };
      for (std::int32_t t = 0; t < row.n_past; ++t) add_slot(t);
      for (std::int32_t a = 0; a < row.count; ++a) add_slot(ancestors[row.first + a]);
    std::size_t k = 0;
      for (; k + 4 <= n_keys; k += 4) dot4(qi, keys[k], keys[k + 1], keys[k + 2], keys[k + 3], hd, &scores[static_cast<Eigen::Index>(k)]);
      for (; k < n_keys; ++k) scores[static_cast<Eigen::Index>(k)] = dot(qi, keys[k], hd);
      float max_score = -std::numeric_limits<float>::infinity();
      for (k = 0; k < n_keys; ++k) {
        scores[static_cast<Eigen::Index>(k)] *= scale;
        max_score = std::max(max_score, scores[static_cast<Eigen::Index>(k)]);
      }
      const auto padded = static_cast<Eigen::Index>((n_keys + packet - 1) / packet * packet);
      scores.segment(static_cast<Eigen::Index>(n_keys), padded - static_cast<Eigen::Index>(n_keys)).setConstant(max_score);
      scores.head(padded) = (scores.head(padded) - max_score).exp();
      float sum = 0.0f;
      for (k = 0; k < n_keys; ++k) sum += scores[static_cast<Eigen::Index>(k)];
      weighted_sum(scores.data(), values.data(), n_keys, oi, hd);
      const float inv = 1.0f / sum;
      for (std::size_t d = 0; d < hd; ++d) oi[d] *= inv;
    }
  });
}

}  // namespace specdec::cpu
