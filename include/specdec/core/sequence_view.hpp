// sequence_view: one sequence of a sequence_model seen through the small forward_step concept (the
// reverse of single_sequence_adapter): forward(step_batch) replaces the previous step's pending rows,
// commit(rows) keeps rows of the last step, reset() empties the sequence. For code written against
// the one-sequence boundary (tests, simple programs) that runs on a batched backend.
// The step's tree mask must be ancestor-closed (a tree): row i's parent is its nearest marked row.
#pragma once

#include <specdec/concepts/forward_step.hpp>
#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/batch.hpp>
#include <specdec/core/step.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace specdec {

template <sequence_model Model>
class sequence_view {
 public:
  explicit sequence_view(Model& m) : m_(m), seq_(m.create_sequence()) {}
  sequence_view(const sequence_view&) = delete;
  sequence_view& operator=(const sequence_view&) = delete;
  ~sequence_view() {
    try {
      m_.free_sequence(seq_);
    } catch (...) {  // never throws for a live sequence
    }
  }

  [[nodiscard]] seq_id id() const noexcept { return seq_; }
  [[nodiscard]] Model& model() noexcept { return m_; }
  [[nodiscard]] std::int32_t n_vocab() const { return static_cast<std::int32_t>(m_.n_vocab()); }
  [[nodiscard]] std::int32_t n_ctx() const { return static_cast<std::int32_t>(m_.n_ctx()); }
  [[nodiscard]] std::int32_t n_past() const { return static_cast<std::int32_t>(m_.n_past(seq_)); }
  [[nodiscard]] std::int32_t n_layers() const
    requires layered_sequence_model<Model>
  {
    return static_cast<std::int32_t>(m_.n_layers());
  }

  logits_view forward(const step_batch& b) {
    m_.truncate(seq_, n_past());
    return m_.forward(as_batch(b)).rows;
  }
  logits_view forward(const step_batch& b, std::span<const std::int32_t> layers)
    requires layered_sequence_model<Model>
  {
    m_.truncate(seq_, n_past());
    return m_.forward(as_batch(b), layers).rows;
  }
  void commit(std::span<const std::int32_t> rows) { m_.commit(seq_, rows); }
  void reset() { m_.truncate(seq_, 0); }
  void truncate(std::int32_t n) { m_.truncate(seq_, n); }
  logits_view prefill(std::span<const token_id> tokens)
    requires requires(Model& m, seq_id s) { m.prefill(s, tokens); }
  {
    m_.truncate(seq_, n_past());
    return m_.prefill(seq_, tokens);
  }

 private:
  [[nodiscard]] forward_batch as_batch(const step_batch& b) const {
    forward_batch fb;
    sequence_step s;
    s.seq = seq_;
    s.tokens = b.tokens;
    s.positions = b.positions;
    s.parents.assign(b.tokens.size(), -1);
    for (std::int32_t i = 0; i < b.size(); ++i) {
      for (std::int32_t j = i - 1; j >= 0; --j) {
        if (b.mask.attends(i, j)) {
          s.parents[static_cast<std::size_t>(i)] = j;
          break;
        }
      }
    }
    fb.steps.push_back(std::move(s));
    return fb;
  }

  Model& m_;
  seq_id seq_;
};

}  // namespace specdec
