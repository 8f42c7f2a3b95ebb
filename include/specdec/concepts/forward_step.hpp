// The small model boundary: what a one-sequence inference engine exposes to use specdec. The full
// boundary is sequence_model (concepts/sequence_model.hpp: many sequences, trees over several
// forwards, rollback); single_sequence_adapter (core/single_sequence_adapter.hpp) builds it from this.
//
// Required expressions, for M& m, const M& cm, const step_batch& b, std::span<const std::int32_t> rows,
// std::span<const std::int32_t> layers:
//   cm.n_vocab(), cm.n_ctx(), cm.n_past()   -> std::int32_t
//   m.forward(b)          -> logits_view [b.size(), n_vocab]: token i attends to every committed cache
//                            position and to the step tokens that b.mask marks (its ancestors, itself);
//                            position of token i is b.positions[i]. The step's K/V are held, not kept.
//   m.commit(rows)        keeps rows of the last step, in the given order, as the next committed cache
//                         entries (n_past grows by rows.size()); every other row is dropped. The rows'
//                         positions must be n_past, n_past + 1, ... (an accepted root-to-leaf path).
//   m.reset()             empties the cache (n_past = 0).
// layered_forward_step adds
//   cm.n_layers()         -> std::int32_t
//   m.forward(b, layers)  the same, running only the listed transformer layers (ascending indices);
//                         embedding, final norm and head always run. The hook for SkipDecode and
//                         self-drafting. Layers skipped for a token leave no K/V for it in that layer.
// A forward that would exceed n_ctx throws specdec::error (capacity) before touching the cache.
// Optional: m.truncate(n) drops committed positions >= n (else the adapter resets and replays).
#pragma once

#include <specdec/core/step.hpp>

#include <concepts>
#include <cstdint>
#include <span>

namespace specdec {

template <class M>
concept forward_step = requires(M& m, const M& cm, const step_batch& b, std::span<const std::int32_t> rows) {
  { cm.n_vocab() } -> std::convertible_to<std::int32_t>;
  { cm.n_ctx() } -> std::convertible_to<std::int32_t>;
  { cm.n_past() } -> std::convertible_to<std::int32_t>;
  { m.forward(b) } -> std::same_as<logits_view>;
  m.commit(rows);
  m.reset();
};

template <class M>
concept layered_forward_step =
    forward_step<M> && requires(M& m, const M& cm, const step_batch& b, std::span<const std::int32_t> layers) {
      { cm.n_layers() } -> std::convertible_to<std::int32_t>;
      { m.forward(b, layers) } -> std::same_as<logits_view>;
    };

}  // namespace specdec
