// A fake model with the full version-2 boundary for unit tests of the decoder: several sequences,
// pending rows across forwards, commit of a path, truncate. The logits after a row depend only on the
// row's token and its parent's (or the last committed token), from the same pseudo-random table as
// mock_model, so greedy outputs are predictable. It checks what the decoder sends: positions must be
// n_past + depth and commits must be root-to-node paths.
#pragma once

#include "mock_model.hpp"

#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/batch.hpp>

#include <stdexcept>
#include <vector>

namespace specdec::test {

class mock_batch_model {
 public:
  explicit mock_batch_model(std::int32_t max_sequences = 4, std::int32_t n_vocab = 16, std::int32_t n_ctx = 256)
      : table_(n_vocab, n_ctx), max_sequences_(max_sequences) {}

  [[nodiscard]] std::int32_t n_vocab() const noexcept { return table_.n_vocab(); }
  [[nodiscard]] std::int32_t n_ctx() const noexcept { return table_.n_ctx(); }
  [[nodiscard]] std::int32_t max_sequences() const noexcept { return max_sequences_; }
  [[nodiscard]] const mock_model& table() const noexcept { return table_; }
  std::int64_t n_forwards = 0;
  std::int32_t most_steps_in_a_forward = 0;

  seq_id create_sequence() {
    for (std::size_t i = 0; i < seqs_.size(); ++i) {
      if (!seqs_[i].live) {
        seqs_[i] = {};
        seqs_[i].live = true;
        return static_cast<seq_id>(i);
      }
    }
    if (static_cast<std::int32_t>(seqs_.size()) >= max_sequences_) throw error(error_category::capacity, "mock: full");
    seqs_.push_back({});
    seqs_.back().live = true;
    return static_cast<seq_id>(seqs_.size() - 1);
  }
  void free_sequence(seq_id s) { at(s) = {}; }
  [[nodiscard]] std::int32_t n_past(seq_id s) const { return static_cast<std::int32_t>(at(s).committed.size()); }
  [[nodiscard]] std::int32_t n_pending(seq_id s) const { return static_cast<std::int32_t>(at(s).tokens.size()); }
  [[nodiscard]] const std::vector<token_id>& committed(seq_id s) const { return at(s).committed; }

  batch_logits forward(const forward_batch& b) {
    ++n_forwards;
    std::int32_t active = 0;
    batch_logits out;
    rows_.clear();
    for (const auto& st : b.steps) {
      out.first.push_back(static_cast<std::int32_t>(rows_.size() / static_cast<std::size_t>(n_vocab())));
      std::int32_t returned = 0;
      if (st.size() > 0) ++active;
      seq& q = at(st.seq);
      validate_step(st, n_pending(st.seq), 0, n_vocab(), "mock_batch_model");
      if (n_past(st.seq) + n_pending(st.seq) + st.size() > n_ctx()) throw error(error_category::capacity, "mock: context");
      for (std::int32_t i = 0; i < st.size(); ++i) {
        const auto iu = static_cast<std::size_t>(i);
        const std::int32_t parent = st.parents[iu];
        const std::int32_t depth = parent < 0 ? 0 : q.depth[static_cast<std::size_t>(parent)] + 1;
        if (st.positions[iu] != n_past(st.seq) + depth) throw std::logic_error("mock_batch_model: position is not n_past + depth");
        const token_id prev = parent >= 0 ? q.tokens[static_cast<std::size_t>(parent)]
                                          : (q.committed.empty() ? -1 : q.committed.back());
        q.tokens.push_back(st.tokens[iu]);
        q.parents.push_back(parent);
        q.depth.push_back(depth);
        const bool want = st.logits == logits_request::all || (st.logits == logits_request::last && i + 1 == st.size());
        if (!want) continue;
        ++returned;
        for (token_id v = 0; v < n_vocab(); ++v) rows_.push_back(table_.logit(prev, st.tokens[iu], v));
      }
      out.count.push_back(returned);
    }
    most_steps_in_a_forward = std::max(most_steps_in_a_forward, active);
    out.rows = logits_view{rows_.data(), static_cast<std::int32_t>(rows_.size() / static_cast<std::size_t>(n_vocab())), n_vocab()};
    return out;
  }

  void commit(seq_id s, std::span<const std::int32_t> rows) {
    seq& q = at(s);
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const auto r = static_cast<std::size_t>(rows[k]);
      if (r >= q.tokens.size() || q.parents[r] != (k == 0 ? -1 : rows[k - 1])) {
        throw std::logic_error("mock_batch_model: commit of rows that are not a root-to-node path");
      }
      q.committed.push_back(q.tokens[r]);
    }
    q.tokens.clear();
    q.parents.clear();
    q.depth.clear();
  }

  void truncate(seq_id s, std::int32_t n) {
    seq& q = at(s);
    q.committed.resize(static_cast<std::size_t>(n));
    q.tokens.clear();
    q.parents.clear();
    q.depth.clear();
  }

 private:
  struct seq {
    bool live = false;
    std::vector<token_id> committed;
    std::vector<token_id> tokens;  // pending
    std::vector<std::int32_t> parents, depth;
  };
  seq& at(seq_id s) { return const_cast<seq&>(static_cast<const mock_batch_model&>(*this).at(s)); }
  [[nodiscard]] const seq& at(seq_id s) const {
    if (s < 0 || static_cast<std::size_t>(s) >= seqs_.size() || !seqs_[static_cast<std::size_t>(s)].live) {
      throw std::logic_error("mock_batch_model: no such sequence");
    }
    return seqs_[static_cast<std::size_t>(s)];
  }

  mock_model table_;
  std::int32_t max_sequences_;
  std::vector<seq> seqs_;
  std::vector<float> rows_;
};

}  // namespace specdec::test
