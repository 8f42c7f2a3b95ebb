// single_sequence_adapter: the version-2 boundary (sequence_model) on top of an engine that offers
// only the small forward_step concept: one sequence, one step at a time, commit of the last step.
//   - one sequence: create_sequence() a second time is a capacity error; max_sequences() == 1.
//   - trees over several forwards: the adapter remembers the pending rows and re-runs them with the
//     new rows in one step (their K/V are recomputed; with batch-invariant kernels their logits are
//     the same), returning only the new rows' logits. Costlier than a native implementation, exact.
//   - truncate: the engine's own truncate(n) when it has one, else reset and replay of the kept tokens.
//   - layer subsets: forwarded when the engine is a layered_forward_step.
//   - embedding rows: refused (invalid_argument); the small concept has token ids only.
#pragma once

#include <specdec/concepts/forward_step.hpp>
#include <specdec/core/batch.hpp>
#include <specdec/core/step.hpp>
#include <specdec/error.hpp>

#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace specdec {

template <forward_step Model>
class single_sequence_adapter {
 public:
  explicit single_sequence_adapter(Model& m) : m_(m) {}

  [[nodiscard]] std::int32_t n_vocab() const { return static_cast<std::int32_t>(m_.n_vocab()); }
  [[nodiscard]] std::int32_t n_ctx() const { return static_cast<std::int32_t>(m_.n_ctx()); }
  [[nodiscard]] std::int32_t max_sequences() const noexcept { return 1; }
  [[nodiscard]] std::int32_t n_layers() const
    requires layered_forward_step<Model>
  {
    return static_cast<std::int32_t>(m_.n_layers());
  }
  [[nodiscard]] Model& engine() noexcept { return m_; }

  seq_id create_sequence() {
    if (in_use_) throw error(error_category::capacity, "single_sequence_adapter: the engine holds one sequence");
    in_use_ = true;
    m_.reset();
    history_.clear();
    pending_ = {};
    return 0;
  }
  void free_sequence(seq_id s) {
    check(s);
    in_use_ = false;
    m_.reset();
    history_.clear();
    pending_ = {};
  }
  [[nodiscard]] std::int32_t n_past(seq_id s) const {
    check(s);
    return static_cast<std::int32_t>(m_.n_past());
  }
  [[nodiscard]] std::int32_t n_pending(seq_id s) const {
    check(s);
    return pending_.size();
  }

  batch_logits forward(const forward_batch& b) {
    return run(b, [&](const step_batch& sb) { return m_.forward(sb); });
  }
  batch_logits forward(const forward_batch& b, std::span<const std::int32_t> layers)
    requires layered_forward_step<Model>
  {
    return run(b, [&](const step_batch& sb) { return m_.forward(sb, layers); });
  }

  void commit(seq_id s, std::span<const std::int32_t> rows) {
    check(s);
    const std::int32_t n_past0 = n_past(s);
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::int32_t r = rows[k];
      if (r < 0 || r >= pending_.size()) {
        throw error(error_category::invalid_argument, "commit: row " + std::to_string(r) + " is not pending");
      }
      const std::int32_t want_parent = k == 0 ? -1 : rows[k - 1];
      if (pending_.parents[static_cast<std::size_t>(r)] != want_parent ||
          pending_.positions[static_cast<std::size_t>(r)] != n_past0 + static_cast<std::int32_t>(k)) {
        throw error(error_category::invalid_argument,
                    "commit: rows must be a root-to-node path continuing the cache (row " + std::to_string(r) + ")");
      }
    }
    if (!rows.empty()) {
      if (!ran_pending_) rerun_pending();
      m_.commit(rows);  // the engine's last step holds every pending row, in pending order
      for (auto r : rows) history_.push_back(pending_.tokens[static_cast<std::size_t>(r)]);
    }
    pending_ = {};
    ran_pending_ = false;
  }

  void truncate(seq_id s, std::int32_t n) {
    check(s);
    const std::int32_t past = n_past(s);
    if (n < 0 || n > past) {
      throw error(error_category::invalid_argument, "truncate: length " + std::to_string(n) + " outside [0, n_past = " +
                                                        std::to_string(past) + "]");
    }
    pending_ = {};
    ran_pending_ = false;
    if (n == past) return;
    history_.resize(static_cast<std::size_t>(n));
    if constexpr (requires { m_.truncate(n); }) {
      m_.truncate(n);
    } else {
      m_.reset();
      if (n > 0) {
        (void)m_.forward(step_batch::chain(history_, 0));
        std::vector<std::int32_t> all(history_.size());
        std::iota(all.begin(), all.end(), 0);
        m_.commit(all);
      }
    }
  }

 private:
  struct rows_t {
    std::vector<token_id> tokens;
    std::vector<std::int32_t> positions, parents;
    [[nodiscard]] std::int32_t size() const noexcept { return static_cast<std::int32_t>(tokens.size()); }
  };

  void check(seq_id s) const {
    if (!in_use_ || s != 0) {
      throw error(error_category::invalid_argument, "single_sequence_adapter: sequence " + std::to_string(s) + " does not exist");
    }
  }

  [[nodiscard]] step_batch as_step() const {
    step_batch sb;
    sb.tokens = pending_.tokens;
    sb.positions = pending_.positions;
    sb.mask = tree_mask::from_parents(pending_.parents);
    return sb;
  }

  // The engine's last step must hold every pending row before a commit (e.g. after a truncate).
  void rerun_pending() { (void)m_.forward(as_step()); }

  template <class Run>
  batch_logits run(const forward_batch& b, Run&& run_step) {
    batch_logits out;
    out.first.assign(b.steps.size(), 0);
    out.count.assign(b.steps.size(), 0);
    out.rows = logits_view{nullptr, 0, n_vocab()};
    std::size_t active = b.steps.size();
    for (std::size_t k = 0; k < b.steps.size(); ++k) {
      if (b.steps[k].size() == 0) continue;
      if (active != b.steps.size()) {
        throw error(error_category::invalid_argument, "single_sequence_adapter: one step per forward");
      }
      active = k;
    }
    if (active == b.steps.size()) return out;
    const sequence_step& s = b.steps[active];
    check(s.seq);
    validate_step(s, pending_.size(), 0, n_vocab(), "single_sequence_adapter::forward");
    const std::int32_t n_before = pending_.size();
    if (static_cast<std::int64_t>(n_past(s.seq)) + n_before + s.size() > n_ctx()) {
      throw error(error_category::capacity, "context full: sequence " + std::to_string(s.seq));
    }
    rows_t grown = pending_;
    grown.tokens.insert(grown.tokens.end(), s.tokens.begin(), s.tokens.end());
    grown.positions.insert(grown.positions.end(), s.positions.begin(), s.positions.end());
    grown.parents.insert(grown.parents.end(), s.parents.begin(), s.parents.end());
    std::swap(pending_, grown);
    logits_view all;
    try {
      all = run_step(as_step());
    } catch (...) {
      std::swap(pending_, grown);  // leave the state as it was
      throw;
    }
    ran_pending_ = true;
    const std::int32_t first = s.logits == logits_request::all ? n_before : n_before + s.size() - 1;
    const std::int32_t count = s.logits == logits_request::all ? s.size() : s.logits == logits_request::last ? 1 : 0;
    out.rows = logits_view{all.data + static_cast<std::size_t>(first) * static_cast<std::size_t>(all.n_vocab), count,
                           all.n_vocab};
    out.first[active] = 0;
    out.count[active] = count;
    return out;
  }

  Model& m_;
  bool in_use_ = false;
  bool ran_pending_ = false;        // the engine's last step is exactly the pending rows
  std::vector<token_id> history_;   // committed tokens (for replay after truncate)
  rows_t pending_;
};

}  // namespace specdec
