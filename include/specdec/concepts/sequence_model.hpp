// The model boundary, version 2: a model that holds sequences, runs a batch of per-sequence steps in
// one forward, keeps rows pending across forwards until a commit, and rolls back (core/batch.hpp has
// the data types and a picture).
//
// Required expressions, for M& m, const M& cm, const forward_batch& b, seq_id s,
// std::span<const std::int32_t> rows, std::int32_t n:
//   cm.n_vocab(), cm.n_ctx()     -> std::int32_t   n_ctx: positions one sequence can hold (cache + pending)
//   cm.max_sequences()           -> std::int32_t   sequences held at once (1 for a one-sequence engine)
//   m.create_sequence()          -> seq_id         a new, empty sequence; capacity error when full
//   m.free_sequence(s)                             its cache is released; the id may be reused
//   cm.n_past(s), cm.n_pending(s) -> std::int32_t  committed positions; rows run since the last commit
//   m.forward(b)                 -> batch_logits   runs every step; row r of a step attends to its
//                                                  sequence's committed cache, its pending ancestors
//                                                  and itself; its rows become pending
//   m.commit(s, rows)            keeps pending rows `rows` (pending indices) as committed positions
//                                n_past, n_past + 1, ...: rows[0] is a root (parent -1) at position
//                                n_past, rows[k]'s parent is rows[k - 1] at position n_past + k.
//                                Every other pending row is dropped. An empty list drops them all.
//   m.truncate(s, n)             drops every pending row and the committed positions >= n (n <= n_past)
// A forward that would exceed n_ctx for a sequence throws specdec::error (capacity) before any state
// changes; so does a malformed step (invalid_argument), naming the sequence and the row.
//
// Capabilities, each its own concept; everything above the backend works without them:
//   layered_sequence_model:   cm.n_layers(), m.forward(b, layers) runs only the listed transformer
//                             layers (ascending; embedding, final norm, head always run). Layers
//                             skipped for a row leave no K/V for it in that layer (SkipDecode,
//                             self-speculation).
//   embedding_input_model:    cm.n_embd(), m.token_embedding(t, out) writes token t's input
//                             embedding [n_embd]; steps may carry embedding rows (parallel prompt
//                             decoding's prompt tokens).
//   several sequences per call: a runtime capability, max_sequences() > 1.
// Logits come back as host rows (batch_logits); a device backend copies only the rows a step asks for
// (logits_request), which is why prefill chunks ask for none.
// A one-sequence engine implements only the small forward_step concept; single_sequence_adapter
// (core/single_sequence_adapter.hpp) turns it into a sequence_model.
#pragma once

#include <specdec/core/batch.hpp>

#include <concepts>
#include <cstdint>
#include <span>

namespace specdec {

template <class M>
concept sequence_model = requires(M& m, const M& cm, const forward_batch& b, seq_id s,
                                  std::span<const std::int32_t> rows, std::int32_t n) {
  { cm.n_vocab() } -> std::convertible_to<std::int32_t>;
  { cm.n_ctx() } -> std::convertible_to<std::int32_t>;
  { cm.max_sequences() } -> std::convertible_to<std::int32_t>;
  { m.create_sequence() } -> std::same_as<seq_id>;
  m.free_sequence(s);
  { cm.n_past(s) } -> std::convertible_to<std::int32_t>;
  { cm.n_pending(s) } -> std::convertible_to<std::int32_t>;
  { m.forward(b) } -> std::same_as<batch_logits>;
  m.commit(s, rows);
  m.truncate(s, n);
};

template <class M>
concept layered_sequence_model =
    sequence_model<M> && requires(M& m, const M& cm, const forward_batch& b, std::span<const std::int32_t> layers) {
      { cm.n_layers() } -> std::convertible_to<std::int32_t>;
      { m.forward(b, layers) } -> std::same_as<batch_logits>;
    };

template <class M>
concept embedding_input_model =
    sequence_model<M> && requires(const M& cm, token_id t, std::span<float> out) {
      { cm.n_embd() } -> std::convertible_to<std::int32_t>;
      cm.token_embedding(t, out);
    };

}  // namespace specdec
