// Counters of one generation, named like llama.cpp's (n_drafted, n_accept, accept %) plus the mean
// number of accepted tokens per step (MAT, vLLM's "mean acceptance length"), acceptance by depth and
// where the time went.
#pragma once

#include <cstdint>
#include <vector>

namespace specdec {

struct decode_stats {
  std::int64_t n_prompt = 0;     // prompt tokens
  std::int64_t n_generated = 0;  // tokens emitted (end token excluded)
  std::int64_t steps = 0;        // verification forwards
  std::int64_t n_drafted = 0;    // draft nodes proposed (root excluded)
  std::int64_t n_accept = 0;     // draft nodes accepted
  std::int64_t n_extra_rows = 0; // rows verified that were not candidates (PPD's prompt tokens)
  std::vector<std::int64_t> drafted_by_depth;   // [d]: nodes proposed at depth d (index 0 unused)
  std::vector<std::int64_t> accepted_by_depth;  // [d]: steps that accepted a node at depth d
  std::vector<std::int64_t> steps_by_budget;    // [b]: steps whose drafter was allowed b rows (fixed or auto)
  double prefill_s = 0;
  double draft_s = 0;    // drafter.draft
  double verify_s = 0;   // model forward of the tree
  double accept_s = 0;   // acceptance rule + commit
  double observe_s = 0;  // drafter.observe
  double total_s = 0;    // prefill excluded

  [[nodiscard]] double accept_rate() const noexcept {
    return n_drafted > 0 ? static_cast<double>(n_accept) / static_cast<double>(n_drafted) : 0.0;
  }
  // Mean tokens emitted per verification step (1.0 for autoregressive decoding).
  [[nodiscard]] double mat() const noexcept {
    return steps > 0 ? static_cast<double>(n_accept + steps) / static_cast<double>(steps) : 0.0;
  }
  [[nodiscard]] double tokens_per_s() const noexcept {
    return total_s > 0 ? static_cast<double>(n_generated) / total_s : 0.0;
  }
  // Mean budget over the steps (0 without steps), and the most frequent one (the smaller on a tie).
  [[nodiscard]] double mean_budget() const noexcept {
    std::int64_t n = 0, sum = 0;
    for (std::size_t b = 0; b < steps_by_budget.size(); ++b) {
      n += steps_by_budget[b];
      sum += steps_by_budget[b] * static_cast<std::int64_t>(b);
    }
    return n > 0 ? static_cast<double>(sum) / static_cast<double>(n) : 0.0;
  }
  [[nodiscard]] std::int32_t mode_budget() const noexcept {
    std::size_t best = 0;
    for (std::size_t b = 1; b < steps_by_budget.size(); ++b) {
      if (steps_by_budget[b] > steps_by_budget[best]) best = b;
    }
    return steps_by_budget.empty() || steps_by_budget[best] == 0 ? 0 : static_cast<std::int32_t>(best);
  }
  [[nodiscard]] double draft_share() const noexcept {
    return total_s > 0 ? (draft_s + observe_s) / total_s : 0.0;
  }

  void add(const decode_stats& o) {
    n_prompt += o.n_prompt;
    n_generated += o.n_generated;
    steps += o.steps;
    n_drafted += o.n_drafted;
    n_accept += o.n_accept;
    n_extra_rows += o.n_extra_rows;
    auto merge = [](std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b) {
      if (a.size() < b.size()) a.resize(b.size(), 0);
      for (std::size_t i = 0; i < b.size(); ++i) a[i] += b[i];
    };
    merge(drafted_by_depth, o.drafted_by_depth);
    merge(accepted_by_depth, o.accepted_by_depth);
    merge(steps_by_budget, o.steps_by_budget);
    prefill_s += o.prefill_s;
    draft_s += o.draft_s;
    verify_s += o.verify_s;
    accept_s += o.accept_s;
    observe_s += o.observe_s;
    total_s += o.total_s;
  }
};

}  // namespace specdec
