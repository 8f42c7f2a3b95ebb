// Test helper: the exact distribution of the first three generated tokens of the tiny model, the
// empirical one from speculative generation, and a chi-square goodness-of-fit test between them.
#pragma once

#include "tiny_model.hpp"

#include <specdec/core/sampling.hpp>
#include <specdec/core/sequence_view.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/sampling.hpp>

#include <cmath>
#include <vector>

namespace specdec::test {

inline std::vector<float> dense(const token_distribution& d, std::int32_t n_vocab) {
  std::vector<float> p(static_cast<std::size_t>(n_vocab), 0.0f);
  for (std::size_t i = 0; i < d.ids.size(); ++i) p[static_cast<std::size_t>(d.ids[i])] = d.probs[i];
  return p;
}

// P(t1, t2, t3 | prompt) as the sampler sees it, flattened [V * V * V].
inline std::vector<double> exact_three_token_distribution(cpu::llama_cpu& model, const std::vector<token_id>& prompt,
                                                          const sampling_params& sp) {
  sequence_view<cpu::llama_cpu> m(model);
  const std::int32_t v = m.n_vocab();
  auto next = [&](const std::vector<token_id>& ctx) {
    m.reset();
    const auto l = m.forward(step_batch::chain(ctx, 0));
    return dense(distribution(l.row(l.n_rows - 1), sp), v);
  };
  std::vector<double> p(static_cast<std::size_t>(v * v * v), 0.0);
  const auto p1 = next(prompt);
  for (token_id a = 0; a < v; ++a) {
    if (p1[static_cast<std::size_t>(a)] == 0) continue;
    auto ctx = prompt;
    ctx.push_back(a);
    const auto p2 = next(ctx);
    for (token_id b = 0; b < v; ++b) {
      if (p2[static_cast<std::size_t>(b)] == 0) continue;
      auto ctx2 = ctx;
      ctx2.push_back(b);
      const auto p3 = next(ctx2);
      for (token_id c = 0; c < v; ++c) {
        p[static_cast<std::size_t>((a * v + b) * v + c)] = static_cast<double>(p1[static_cast<std::size_t>(a)]) *
                                                           p2[static_cast<std::size_t>(b)] * p3[static_cast<std::size_t>(c)];
      }
    }
  }
  return p;
}

struct chi_square_result {
  double statistic = 0;
  int dof = 0;
  double p_value = 0;
};

// Pearson's chi-square of counts against expected probabilities; cells with expected count < 5 are
// pooled into one. The p-value uses the Wilson-Hilferty normal approximation of the chi-square
// distribution, accurate to a few percent of p for the tens to hundreds of degrees of freedom here.
inline chi_square_result chi_square(const std::vector<std::int64_t>& counts, const std::vector<double>& probs) {
  std::int64_t n = 0;
  for (auto c : counts) n += c;
  double stat = 0, pooled_e = 0, pooled_o = 0;
  int cells = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double e = probs[i] * static_cast<double>(n);
    if (e < 5) {
      pooled_e += e;
      pooled_o += static_cast<double>(counts[i]);
      continue;
    }
    stat += (static_cast<double>(counts[i]) - e) * (static_cast<double>(counts[i]) - e) / e;
    ++cells;
  }
  if (pooled_e > 0) {
    stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / std::max(pooled_e, 1e-9);
    ++cells;
  }
  chi_square_result r;
  r.statistic = stat;
  r.dof = cells - 1;
  const double k = r.dof;
  const double z = (std::cbrt(stat / k) - (1 - 2 / (9 * k))) / std::sqrt(2 / (9 * k));
  r.p_value = 0.5 * std::erfc(z / std::sqrt(2.0));
  return r;
}

// Generates `n_samples` three-token continuations with `drafter` (its learned state carries over from
// sample to sample, as in a server) and returns the counts per (t1, t2, t3) and the loop's counters.
template <class Drafter>
std::vector<std::int64_t> sample_three_tokens(cpu::llama_cpu& m, Drafter& d, const std::vector<token_id>& prompt,
                                              const sampling_params& sp, std::int32_t budget, int n_samples,
                                              decode_stats& stats) {
  const std::int32_t v = m.n_vocab();
  std::vector<std::int64_t> counts(static_cast<std::size_t>(v * v * v), 0);
  sampling_rule rule{sp};
  generate_options opt;
  opt.max_new_tokens = 3;
  opt.budget = budget;
  for (int s = 0; s < n_samples; ++s) {
    opt.seed = 1000003ull * static_cast<std::uint64_t>(s) + 17;
    const auto r = generate(m, d, rule, prompt, opt);
    const auto& t = r.tokens;
    ++counts[static_cast<std::size_t>((t[0] * v + t[1]) * v + t[2])];
    stats.add(r.stats);
  }
  return counts;
}

// Proposes every token at depth 1 and every pair at depth 2 (8 + 64 nodes for vocabulary 8), so each
// sample walks two levels of the tree: the rule's descent is exercised on every draw.
struct full_tree_drafter {
  std::int32_t n_vocab = 8;
  void begin(request_id, std::span<const token_id>) {}
  draft_tree draft(request_id, const draft_request& r) const {
    draft_tree t = draft_tree::root_only(r.context.back());
    for (token_id a = 0; a < n_vocab && t.size() < r.budget; ++a) {
      const auto node = t.add(0, a);
      for (token_id b = 0; b < n_vocab && t.size() < r.budget; ++b) t.add(node, b);
    }
    return t;
  }
  void observe(request_id, const step_outcome&) {}
  void end(request_id) {}
};

}  // namespace specdec::test
