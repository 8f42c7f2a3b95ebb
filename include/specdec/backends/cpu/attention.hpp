// Tree attention of the CPU backend, grouped-query, for a batch of rows from many sequences. A row
// attends to its sequence's committed slots [0, n_past) and to its pending ancestors and itself.
// Keys are visited in slot order (committed first, then pending ancestors by pending index), which
// is the order the same path would have as a plain sequence, and every sum runs in that order: a
// row's output is bit-identical to running its root-to-node path alone, whatever else is in the batch.
// Scores use dot4 (bit-identical to dot); exp runs vectorised over an aligned buffer padded to
// whole packets, so every element takes the same code path whatever the number of keys. The K/V
// rows of a GQA group are read once per task for all the task's rows and query heads (see
// attention_tasks), not once per (row, head). K/V stored as fp16 or bf16 are widened exactly as
// they are loaded; everything after the load is the fp32 code.
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

// How the (row, query head) pairs of a step are cut into tasks: a task holds one KV group g, a
// chunk of consecutive rows and a chunk of g's query heads, and reads each K/V row of the group
// once for all of its (row, head) pairs (key blocks small enough to stay in L1 between the pairs):
// the rows of one sequence share its committed slots, the heads of a group share their K/V. Rows
// are split before heads, into at least tasks_per_thread x threads tasks where there are enough.
// The cut changes no result: every (row, head) is computed by the same code in the same order.
// n_rows >= 1.
struct attention_tasks {
  std::size_t kv = 1, row_chunks = 1, head_chunks = 1, rows_per_chunk = 1, heads_per_chunk = 1;
  static constexpr std::size_t tasks_per_thread = 4;

  attention_tasks(std::size_t n_rows, std::size_t n_head_kv, std::size_t group, std::size_t threads)
      : kv(std::max<std::size_t>(n_head_kv, 1)) {
    const std::size_t want = tasks_per_thread * std::max<std::size_t>(threads, 1);
    row_chunks = std::clamp<std::size_t>((want + kv - 1) / kv, 1, std::max<std::size_t>(n_rows, 1));
    rows_per_chunk = (n_rows + row_chunks - 1) / row_chunks;
    row_chunks = std::max<std::size_t>((n_rows + rows_per_chunk - 1) / rows_per_chunk, 1);
    const std::size_t have = kv * row_chunks;
    head_chunks = have >= want ? 1 : std::min(group, (want + have - 1) / have);
    heads_per_chunk = (group + head_chunks - 1) / head_chunks;
    head_chunks = (group + heads_per_chunk - 1) / heads_per_chunk;
  }
  [[nodiscard]] std::size_t count() const noexcept { return kv * row_chunks * head_chunks; }
};

namespace detail {

// tree_attention over a cache of element type T (float, fp16_bits or bf16_bits): the same code
// and order for each, K and V widened to fp32 as they are loaded.
template <class T>
inline void tree_attention_as(thread_pool& pool, const kv_cache& cache, std::int32_t layer,
                              std::span<const attention_row> rows, const std::int32_t* ancestors, const float* q,
                              float* out, const attention_shape& s) {
  const auto n = rows.size();
  if (n == 0) return;
  const auto group = static_cast<std::size_t>(s.n_head / s.n_head_kv);
  const auto n_kv = static_cast<std::size_t>(s.n_head_kv);
  const auto hd = static_cast<std::size_t>(s.head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
  const std::size_t q_stride = static_cast<std::size_t>(s.n_head) * hd;
  std::int32_t most_keys = 0;
  for (const auto& r : rows) most_keys = std::max(most_keys, r.n_past + r.count);
  const attention_tasks cut(n, n_kv, group, pool.size());
  // Keys per block of the K and V passes: 64 keys of 64 floats are 16 KB of K (or V).
  constexpr std::size_t key_block = 64;

  pool.parallel_for(cut.count(), [&](std::size_t begin, std::size_t end) {
    constexpr Eigen::Index packet = 16;  // pad to whole AVX-512 packets (a multiple of every ISA's)
    const auto capacity = static_cast<std::size_t>((most_keys + packet - 1) / packet * packet);
    const std::size_t max_pairs = cut.rows_per_chunk * cut.heads_per_chunk;
    Eigen::ArrayXf scores(static_cast<Eigen::Index>(max_pairs * capacity));  // aligned by Eigen (EIGEN_MAX_ALIGN_BYTES); rows of `capacity` floats keep it
    std::vector<const T*> keys(cut.rows_per_chunk * static_cast<std::size_t>(most_keys));
    std::vector<const T*> values(keys.size());
    std::vector<std::size_t> n_keys(cut.rows_per_chunk);
    std::vector<float> inv_sum(max_pairs);
    for (std::size_t task = begin; task < end; ++task) {
      // g major, so a thread's consecutive tasks share a group's K/V.
      const std::size_t g = task / (cut.row_chunks * cut.head_chunks);
      const std::size_t rc = task / cut.head_chunks % cut.row_chunks, hc = task % cut.head_chunks;
      const std::size_t i0 = rc * cut.rows_per_chunk, i1 = std::min(n, i0 + cut.rows_per_chunk);
      const std::size_t h0 = g * group + hc * cut.heads_per_chunk;
      const std::size_t h1 = std::min(g * group + group, h0 + cut.heads_per_chunk);
      const std::size_t nh = h1 - h0;

      // Row i's keys and values are at keys / values [row_slots(i), + n_keys[i - i0]).
      const auto row_slots = [&](std::size_t i) { return (i - i0) * static_cast<std::size_t>(most_keys); };
      std::size_t longest = 0;
      for (std::size_t i = i0; i < i1; ++i) {
        const attention_row& row = rows[i];
        const std::size_t base = row_slots(i);
        std::size_t m = 0;
        auto add_slot = [&](std::int32_t slot) {
          keys[base + m] = cache.k<T>(*row.table, layer, static_cast<std::int32_t>(g), slot);
          values[base + m] = cache.v<T>(*row.table, layer, static_cast<std::int32_t>(g), slot);
          ++m;
        };
        for (std::int32_t t = 0; t < row.n_past; ++t) add_slot(t);
        for (std::int32_t a = 0; a < row.count; ++a) add_slot(ancestors[row.first + a]);
        n_keys[i - i0] = m;
        longest = std::max(longest, m);
      }
      // A task of one (row, head) shares nothing: one block of all its keys.
      const std::size_t kb = (i1 - i0) * nh == 1 ? std::max<std::size_t>(longest, 1) : key_block;
      auto pair_scores = [&](std::size_t i, std::size_t h) {
        return scores.data() + ((i - i0) * nh + (h - h0)) * capacity;
      };
      auto output = [&](std::size_t i, std::size_t h) { return out + i * q_stride + h * hd; };
      // fn(i, h, k0, k1) for every block [k0, k1) of every (row, head) of the task, block by block,
      // so that a block's K (or V) rows are read from memory once for all the pairs.
      auto for_each_block = [&](auto&& fn) {
        for (std::size_t k0 = 0; k0 < longest; k0 += kb) {
          for (std::size_t i = i0; i < i1; ++i) {
            const std::size_t m = n_keys[i - i0];
            if (k0 >= m) continue;
            for (std::size_t h = h0; h < h1; ++h) fn(i, h, k0, std::min(m, k0 + kb));
          }
        }
      };

      // Scores. dot4 is bit-identical to dot, so the grouping of keys does not matter.
      for_each_block([&](std::size_t i, std::size_t h, std::size_t k0, std::size_t k1) {
        const float* qi = q + i * q_stride + h * hd;
        const T* const* ki = keys.data() + row_slots(i);
        float* sc = pair_scores(i, h);
        std::size_t k = k0;
        for (; k + 4 <= k1; k += 4) dot4(qi, ki[k], ki[k + 1], ki[k + 2], ki[k + 3], hd, sc + k);
        for (; k < k1; ++k) sc[k] = dot(qi, ki[k], hd);
      });
      // Softmax of each (row, head) over its keys, as for a row run alone.
      for (std::size_t i = i0; i < i1; ++i) {
        const std::size_t m = n_keys[i - i0];
        for (std::size_t h = h0; h < h1; ++h) {
          Eigen::Map<Eigen::ArrayXf, Eigen::AlignedMax> sc(pair_scores(i, h), static_cast<Eigen::Index>(capacity));
          float max_score = -std::numeric_limits<float>::infinity();
          for (std::size_t k = 0; k < m; ++k) {
            sc[static_cast<Eigen::Index>(k)] *= scale;
            max_score = std::max(max_score, sc[static_cast<Eigen::Index>(k)]);
          }
          const auto padded = static_cast<Eigen::Index>((m + packet - 1) / packet * packet);
          sc.segment(static_cast<Eigen::Index>(m), padded - static_cast<Eigen::Index>(m)).setConstant(max_score);
          sc.head(padded) = (sc.head(padded) - max_score).exp();
          float sum = 0.0f;
          for (std::size_t k = 0; k < m; ++k) sum += sc[static_cast<Eigen::Index>(k)];
          inv_sum[(i - i0) * nh + (h - h0)] = 1.0f / sum;
          std::fill(output(i, h), output(i, h) + hd, 0.0f);
        }
      }
      // Weighted sums of V onto the zeroed outputs (weighted_sum_add over consecutive blocks keeps
      // the key order of one weighted_sum over all keys), then the normalisation.
      for_each_block([&](std::size_t i, std::size_t h, std::size_t k0, std::size_t k1) {
        weighted_sum_add(pair_scores(i, h) + k0, values.data() + row_slots(i) + k0, k1 - k0, output(i, h), hd);
      });
      for (std::size_t i = i0; i < i1; ++i) {
        for (std::size_t h = h0; h < h1; ++h) {
          float* oi = output(i, h);
          const float inv = inv_sum[(i - i0) * nh + (h - h0)];
          for (std::size_t d = 0; d < hd; ++d) oi[d] *= inv;
        }
      }
    }
  });
}

}  // namespace detail

// q:   [n, n_head * head_dim]  (rotated)           out: [n, n_head * head_dim]
// K/V of the step's rows are already in their cache slots of `layer`.
inline void tree_attention(thread_pool& pool, const kv_cache& cache, std::int32_t layer,
                           std::span<const attention_row> rows, const std::int32_t* ancestors, const float* q,
                           float* out, const attention_shape& s) {
  visit_kv_element(cache.format(), [&](auto tag) {
    detail::tree_attention_as<decltype(tag)>(pool, cache, layer, rows, ancestors, q, out, s);
  });
}

}  // namespace specdec::cpu
