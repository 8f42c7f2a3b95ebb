// skip_decode: SkipDecode (arXiv 2307.02628) as a model wrapper. It satisfies sequence_model and
// layered_sequence_model for any layered_sequence_model backend, so the ordinary decoder drives it:
// prefill runs at full depth (or on the schedule's t = 0 set), decode steps run the layers the
// schedule gives for their generation index t (position - prompt length when decoding began).
//
// A step is a *decode* step when it asks for the logits of every row (logits_request::all); prefill
// chunks ask for none or the last one. The first decode step of a sequence fixes its prompt length.
//
// Soundness: every sequence keeps the intersection of the layer sets its rows have run (run_set).
// A step runs at most run_set, so every layer a row runs was run by all the sequence's earlier rows
// and their K/V there exist. This also holds across tree steps, partial commits and truncation
// (truncation back into the prompt restores the prefill set).
//
// Batches (batch-uniform exit): the backend gets one layer list per forward. Requests of different
// ages want different sets, and no single set suits them all soundly except their intersection (a
// layer that a sequence has skipped cannot be run for it again). Two policies:
//   shallowest (default)  every decode step of the batch runs the intersection of their sets, in one
//                         forward; a younger request is skipped as deep as the oldest one (its quality
//                         drops, the batch stays dense). Requests that start together are unaffected.
//   per_set               steps are grouped by their set, one backend forward per distinct set; every
//                         request follows exactly its own schedule, at the price of more forwards.
// Prefill steps at full depth always form their own forward under both policies. With several
// backend forwards, an error in a later one leaves the earlier ones' rows pending (truncate clears).
#pragma once

#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/batch.hpp>
#include <specdec/error.hpp>
#include <specdec/skip/layer_schedule.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace specdec::skip {

enum class batch_policy { shallowest, per_set };

struct skip_decode_options {
  bool skip_prefill = false;  // prefill on the schedule's t = 0 set instead of every layer
  batch_policy policy = batch_policy::shallowest;
};

// What the wrapper ran: per decode row the number of layers, and forwards.
struct skip_counters {
  std::int64_t decode_rows = 0;         // rows of decode steps
  std::int64_t decode_layer_rows = 0;   // sum over decode rows of the layers they ran
  std::int64_t prefill_rows = 0;
  std::int64_t prefill_layer_rows = 0;
  std::int64_t forwards = 0;            // calls of forward()
  std::int64_t backend_forwards = 0;    // forwards passed to the backend (> forwards under per_set)

  // Layers per decode row actually run.
  [[nodiscard]] double mean_decode_layers() const noexcept {
    return decode_rows > 0 ? static_cast<double>(decode_layer_rows) / static_cast<double>(decode_rows) : 0.0;
  }
};

template <layered_sequence_model Model>
class skip_decode {
 public:
  skip_decode(Model& model, layer_schedule schedule, skip_decode_options opt = {})
      : model_(model), schedule_(std::move(schedule)), opt_(opt) {
    if (schedule_.n_layers() != static_cast<std::int32_t>(model.n_layers())) {
      throw error(error_category::invalid_argument,
                  "skip_decode: the schedule is for " + std::to_string(schedule_.n_layers()) +
                      " layers but the model has " + std::to_string(model.n_layers()));
    }
    all_.resize(static_cast<std::size_t>(model.n_layers()));
    for (std::int32_t l = 0; l < model.n_layers(); ++l) all_[static_cast<std::size_t>(l)] = l;
    const auto t0 = schedule_.layers_at(0);
    prefill_set_ = opt.skip_prefill ? std::vector<std::int32_t>(t0.begin(), t0.end()) : all_;
  }

  [[nodiscard]] std::int32_t n_vocab() const { return model_.n_vocab(); }
  [[nodiscard]] std::int32_t n_ctx() const { return model_.n_ctx(); }
  [[nodiscard]] std::int32_t max_sequences() const { return model_.max_sequences(); }
  [[nodiscard]] std::int32_t n_layers() const { return model_.n_layers(); }
  [[nodiscard]] std::int32_t n_past(seq_id s) const { return model_.n_past(s); }
  [[nodiscard]] std::int32_t n_pending(seq_id s) const { return model_.n_pending(s); }
  [[nodiscard]] const layer_schedule& schedule() const noexcept { return schedule_; }
  [[nodiscard]] const skip_counters& counters() const noexcept { return counters_; }
  void reset_counters() noexcept { counters_ = {}; }
  Model& backend() noexcept { return model_; }

  seq_id create_sequence() {
    const seq_id s = model_.create_sequence();
    if (s < 0) throw error(error_category::model, "skip_decode: the backend returned sequence id " + std::to_string(s));
    if (static_cast<std::size_t>(s) >= states_.size()) states_.resize(static_cast<std::size_t>(s) + 1);
    states_[static_cast<std::size_t>(s)] = seq_state{true, false, 0, prefill_set_};
    return s;
  }
  void free_sequence(seq_id s) {
    model_.free_sequence(s);
    state(s).live = false;
  }

  // Generation index of the sequence's next committed position (0 while it prefills).
  [[nodiscard]] std::int64_t generation_index(seq_id s) const {
    const seq_state& q = state(s);
    return q.decoding ? model_.n_past(s) - q.prompt_length : 0;
  }
  // The layers every row of the sequence has run so far (ascending).
  [[nodiscard]] std::span<const std::int32_t> run_set(seq_id s) const { return state(s).run_set; }

  batch_logits forward(const forward_batch& b) { return run(b, all_); }

  // Runs at most `layers` (ascending) for every step, on top of the schedule.
  batch_logits forward(const forward_batch& b, std::span<const std::int32_t> layers) { return run(b, layers); }

  void commit(seq_id s, std::span<const std::int32_t> rows) { model_.commit(s, rows); }

  void truncate(seq_id s, std::int32_t n) {
    model_.truncate(s, n);
    seq_state& q = state(s);
    if (q.decoding && n <= q.prompt_length) {  // only prompt rows are left: they ran the prefill set
      q.decoding = false;
      q.run_set = prefill_set_;
    }
  }

 private:
  struct seq_state {
    bool live = false;                 // created through this wrapper and not freed
    bool decoding = false;
    std::int32_t prompt_length = 0;    // n_past when the first decode step came
    std::vector<std::int32_t> run_set; // ascending
  };

  // Sequences must be created through the wrapper: it keeps their run sets.
  const seq_state& state(seq_id s) const {
    if (s < 0 || static_cast<std::size_t>(s) >= states_.size() || !states_[static_cast<std::size_t>(s)].live) {
      throw error(error_category::invalid_argument,
                  "skip_decode: sequence " + std::to_string(s) + " was not created through this wrapper");
    }
    return states_[static_cast<std::size_t>(s)];
  }
  seq_state& state(seq_id s) { return const_cast<seq_state&>(std::as_const(*this).state(s)); }

  static std::vector<std::int32_t> intersect(std::span<const std::int32_t> a, std::span<const std::int32_t> b) {
    std::vector<std::int32_t> out;
    std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
  }

  batch_logits run(const forward_batch& b, std::span<const std::int32_t> cap) {
    ++counters_.forwards;
    const std::size_t n_steps = b.steps.size();
    // The set each step wants, and whether it decodes.
    sets_.assign(n_steps, {});
    decode_.assign(n_steps, false);
    for (std::size_t k = 0; k < n_steps; ++k) {
      const sequence_step& st = b.steps[k];
      if (st.size() == 0) continue;
      seq_state& q = state(st.seq);
      const bool decode = st.logits == logits_request::all;
      decode_[k] = decode;
      std::span<const std::int32_t> want = prefill_set_;
      if (decode) {
        const std::int32_t prompt_length = q.decoding ? q.prompt_length : model_.n_past(st.seq);
        // One set per step: the deepest row's (the smallest set; rows of a tree step share it).
        const std::int32_t last = *std::max_element(st.positions.begin(), st.positions.end());
        want = schedule_.layers_at(std::max<std::int64_t>(0, last - prompt_length));
      }
      sets_[k] = intersect(intersect(want, q.run_set), cap);
    }
    if (opt_.policy == batch_policy::shallowest) {
      std::vector<std::int32_t> common;
      bool any = false;
      for (std::size_t k = 0; k < n_steps; ++k) {
        if (!decode_[k]) continue;
        common = any ? intersect(common, sets_[k]) : sets_[k];
        any = true;
      }
      for (std::size_t k = 0; k < n_steps; ++k) {
        if (decode_[k]) sets_[k] = common;
      }
    }

    // Group the non-empty steps by set; one backend forward per group.
    groups_.clear();
    group_of_.assign(n_steps, -1);
    for (std::size_t k = 0; k < n_steps; ++k) {
      if (b.steps[k].size() == 0) continue;
      std::size_t g = 0;
      while (g < groups_.size() && groups_[g] != sets_[k]) ++g;
      if (g == groups_.size()) groups_.push_back(sets_[k]);
      group_of_[k] = static_cast<std::int32_t>(g);
    }

    if (groups_.size() <= 1) {
      const std::span<const std::int32_t> layers = groups_.empty() ? std::span<const std::int32_t>(all_) : groups_[0];
      batch_logits out = model_.forward(b, layers);
      ++counters_.backend_forwards;
      after(b, 0, true);
      return out;
    }

    // Several groups: run each, copy its logits out (the next forward invalidates them).
    const auto n_vocab = static_cast<std::size_t>(model_.n_vocab());
    std::vector<std::int32_t> first(n_steps, 0), count(n_steps, 0);
    std::vector<std::vector<float>> step_rows(n_steps);
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      forward_batch sub;
      std::vector<std::size_t> members;
      for (std::size_t k = 0; k < n_steps; ++k) {
        if (group_of_[k] == static_cast<std::int32_t>(g)) {
          sub.steps.push_back(b.steps[k]);
          members.push_back(k);
        }
      }
      const batch_logits out = model_.forward(sub, groups_[g]);
      ++counters_.backend_forwards;
      for (std::size_t i = 0; i < members.size(); ++i) {
        const logits_view v = out.step(i);
        const float* p = v.data;
        step_rows[members[i]].assign(p, p + static_cast<std::size_t>(v.n_rows) * n_vocab);
        count[members[i]] = v.n_rows;
      }
      after(b, static_cast<std::int32_t>(g), false);
    }
    logits_.clear();
    for (std::size_t k = 0; k < n_steps; ++k) {
      first[k] = static_cast<std::int32_t>(logits_.size() / n_vocab);
      logits_.insert(logits_.end(), step_rows[k].begin(), step_rows[k].end());
    }
    batch_logits out;
    out.first = std::move(first);
    out.count = std::move(count);
    out.rows = logits_view{logits_.data(), static_cast<std::int32_t>(logits_.size() / n_vocab), model_.n_vocab()};
    return out;
  }

  // Book-keeping once group g (or, with all_groups, every step) has run.
  void after(const forward_batch& b, std::int32_t g, bool all_groups) {
    for (std::size_t k = 0; k < b.steps.size(); ++k) {
      if (group_of_[k] < 0 || (!all_groups && group_of_[k] != g)) continue;
      const sequence_step& st = b.steps[k];
      seq_state& q = state(st.seq);
      const auto& used = sets_[k];
      if (decode_[k]) {
        if (!q.decoding) {
          q.decoding = true;
          q.prompt_length = model_.n_past(st.seq);
        }
        counters_.decode_rows += st.size();
        counters_.decode_layer_rows += static_cast<std::int64_t>(st.size()) * static_cast<std::int64_t>(used.size());
      } else {
        counters_.prefill_rows += st.size();
        counters_.prefill_layer_rows += static_cast<std::int64_t>(st.size()) * static_cast<std::int64_t>(used.size());
      }
      if (used.size() < q.run_set.size()) q.run_set = used;  // used is a subset of run_set
    }
  }

  Model& model_;
  layer_schedule schedule_;
  skip_decode_options opt_;
  std::vector<std::int32_t> all_;
  std::vector<std::int32_t> prefill_set_;
  std::vector<seq_state> states_;  // indexed by seq_id
  skip_counters counters_;
  // Per-forward scratch.
  std::vector<std::vector<std::int32_t>> sets_, groups_;
  std::vector<bool> decode_;
  std::vector<std::int32_t> group_of_;
  std::vector<float> logits_;
};

}  // namespace specdec::skip
