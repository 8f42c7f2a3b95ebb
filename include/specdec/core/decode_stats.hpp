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
    prefill_s += o.prefill_s;
    draft_s += o.draft_s;
    verify_s += o.verify_s;
    accept_s += o.accept_s;
    observe_s += o.observe_s;
    total_s += o.total_s;
  }
};

}  // namespace specdec
