// Exact sampling with trees drawn from a draft model (multi-candidate speculative sampling in
// sampling_rule): the tiny random Llama of sampling_check.hpp is the target and its first layer
// alone the draft (layer_subset), a real draft/target pair with a shared vocabulary whose draft
// distribution differs from the target's. For DySpec (both algorithms), chain SpS and the fixed
// k-ary tree, the empirical distribution of the first three generated tokens matches the exact one
// computed by the float64 NumPy reference (chi-square, 20,000 samples, p > 0.001), at T = 0.6 and
// T = 1 with top-k and top-p, and at plain T = 1. A deliberately wrong variant of the rule (on a
// rejection it keeps p instead of the residual max(p - q, 0)) is refused by the same check. A draft
// with a restricted head (5 of the 8 tokens, core/restricted_head.hpp) is exact too: its q is zero
// on tokens the target can emit, which only the residual draws can produce.
#include "sampling_check.hpp"

#include <specdec/core/layer_subset.hpp>
#include <specdec/core/restricted_head.hpp>
#include <specdec/drafters/model_drafter.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

using namespace specdec;
using namespace specdec::test;

namespace {

constexpr int n_samples = 20000;

// The wrong rule: the classic accept test, but a rejected child leaves the target distribution as it
// was, and the token is then drawn from p itself. It over-weights the drafted tokens.
struct no_residual_rule {
  sampling_params params;
  template <class Rng>
  acceptance accept(const draft_tree& tree, const logits_view& logits, Rng& rng) const {
    acceptance a;
    a.path.push_back(0);
    std::int32_t node = 0;
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    while (true) {
      const auto p = distribution(logits.row(node), params);
      const token_distribution* q = tree.children_drawn_from(node);
      std::int32_t next = -1;
      for (std::int32_t c = node + 1; q != nullptr && c < tree.size() && next < 0; ++c) {
        if (tree.parent[static_cast<std::size_t>(c)] != node) continue;
        const token_id y = tree.tokens[static_cast<std::size_t>(c)];
        if (uniform(rng) * q->prob(y) < p.prob(y)) next = c;
      }
      if (next < 0) {
        a.next_token = sample(p, rng);
        return a;
      }
      a.path.push_back(next);
      node = next;
    }
  }
};

template <class Rule, class Draft>
std::vector<std::int64_t> sample_with(cpu::llama_cpu& m, model_drafter<Draft>& d,
                                      const Rule& rule, std::int32_t budget, decode_stats& stats) {
  const auto& ref = reference();
  const std::int32_t v = m.n_vocab();
  std::vector<std::int64_t> counts(static_cast<std::size_t>(v * v * v), 0);
  generate_options opt;
  opt.max_new_tokens = 3;
  opt.budget = budget;
  for (int s = 0; s < n_samples; ++s) {
    opt.seed = 1000003ull * static_cast<std::uint64_t>(s) + 17;
    auto r_copy = rule;
    const auto r = generate(m, d, r_copy, ref.prompt, opt);
    ++counts[static_cast<std::size_t>((r.tokens[0] * v + r.tokens[1]) * v + r.tokens[2])];
    stats.add(r.stats);
  }
  return counts;
}

model_drafter_options shape_options(draft_shape shape, std::uint64_t seed) {
  model_drafter_options o;
  o.shape = shape;
  o.temperature = 0.6f;  // the paper's draft temperature, whatever the target's
  o.top_k = 0;           // the whole (8-token) vocabulary
  o.branching = {3, 2};
  o.seed = seed;
  return o;
}

void check_shape(draft_shape shape, std::int32_t budget, const std::string& setting) {
  const auto& s = reference().get(setting);
  auto m = tiny_llama();
  layer_subset<cpu::llama_cpu> draft(m, {0});
  model_drafter<layer_subset<cpu::llama_cpu>> d(draft, shape_options(shape, 99));
  decode_stats stats;
  const auto counts = sample_with(m, d, sampling_rule{s.params}, budget, stats);
  const auto chi = chi_square(counts, s.probs);
  INFO(to_string(shape) << ", budget " << budget << ", " << setting << ": chi2 " << chi.statistic << " dof "
                        << chi.dof << " p " << chi.p_value << " MAT " << stats.mat() << " drafted "
                        << stats.n_drafted);
  CHECK(chi.p_value > 0.001);
  // The trees are really used: tokens are accepted, so the rule's acceptance path is exercised, and
  // rejections happen too (MAT below the budget's depth bound), so the residual path is exercised.
  CHECK(stats.mat() > 1.2);
  CHECK(stats.n_accept < stats.n_drafted);
}

}  // namespace

TEST_CASE("the reference settings for draft-model sampling are the ones meant", "[verify]") {
  const auto& ref = reference();
  const auto& a = ref.get("t0.6-k5-p0.9");
  CHECK(a.params.temperature == 0.6f);
  CHECK(a.params.top_k == 5);
  CHECK(a.params.top_p == 0.9f);
  const auto& b = ref.get("t1-k5-p0.95");
  CHECK(b.params.temperature == 1.0f);
  CHECK(b.params.top_k == 5);
  CHECK(b.params.top_p == 0.95f);
}

TEST_CASE("DySpec trees (heap, one forward per node) keep the sampling distribution exact", "[verify][slow]") {
  check_shape(draft_shape::dyspec, 6, "t0.6-k5-p0.9");
  check_shape(draft_shape::dyspec, 6, "t1-k5-p0.95");
  check_shape(draft_shape::dyspec, 6, "plain");
}

TEST_CASE("DySpec trees grown a level per forward keep the sampling distribution exact", "[verify][slow]") {
  check_shape(draft_shape::dyspec_level, 8, "t0.6-k5-p0.9");
  check_shape(draft_shape::dyspec_level, 8, "t1-k5-p0.95");
}

TEST_CASE("chain speculative sampling keeps the sampling distribution exact", "[verify][slow]") {
  check_shape(draft_shape::chain, 4, "t0.6-k5-p0.9");
  check_shape(draft_shape::chain, 4, "t1-k5-p0.95");
}

TEST_CASE("a fixed k-ary tree drawn from the draft keeps the sampling distribution exact", "[verify][slow]") {
  check_shape(draft_shape::kary, 10, "t0.6-k5-p0.9");
  check_shape(draft_shape::kary, 10, "t1-k5-p0.95");
}

TEST_CASE("the chi-square check refuses a rule that skips the residual", "[verify][slow]") {
  for (const char* setting : {"t1-k5-p0.95", "plain"}) {
    const auto& s = reference().get(setting);
    auto m = tiny_llama();
    layer_subset<cpu::llama_cpu> draft(m, {0});
    model_drafter<layer_subset<cpu::llama_cpu>> d(draft, shape_options(draft_shape::dyspec, 99));
    decode_stats stats;
    const auto counts = sample_with(m, d, no_residual_rule{s.params}, 6, stats);
    const auto chi = chi_square(counts, s.probs);
    INFO(setting << ": wrong rule: chi2 " << chi.statistic << " dof " << chi.dof << " p " << chi.p_value);
    CHECK(chi.p_value < 1e-6);
  }
}

TEST_CASE("a draft with a restricted head keeps the sampling distribution exact", "[verify][slow]") {
  for (const auto shape : {draft_shape::dyspec_level, draft_shape::chain}) {
    for (const char* setting : {"t0.6-k5-p0.9", "plain"}) {
      const auto& s = reference().get(setting);
      auto m = tiny_llama();
      restricted_head<cpu::llama_cpu> draft(m, {6, 1, 2, 4, 7}, {0});
      model_drafter<restricted_head<cpu::llama_cpu>> d(draft, shape_options(shape, 99));
      decode_stats stats;
      const auto counts = sample_with(m, d, sampling_rule{s.params}, shape == draft_shape::chain ? 4 : 8, stats);
      const auto chi = chi_square(counts, s.probs);
      INFO(to_string(shape) << ", restricted head, " << setting << ": chi2 " << chi.statistic << " dof " << chi.dof
                            << " p " << chi.p_value << " MAT " << stats.mat());
      CHECK(chi.p_value > 0.001);
      CHECK(stats.mat() > 1.1);
      CHECK(stats.n_accept < stats.n_drafted);
    }
  }
}

TEST_CASE("a restricted head's columns are mapped back to token ids", "[verify]") {
  // The draft is the target itself (every layer) with a head holding the whole vocabulary in another
  // order, drafting its argmax: column j is token perm[j], so every drafted token is the target's
  // argmax and greedy verification accepts all of them. Reading columns as ids would not.
  auto m = tiny_llama();
  restricted_head<cpu::llama_cpu> draft(m, {5, 3, 7, 0, 6, 1, 4, 2});
  REQUIRE(draft.n_vocab() == 8);
  model_drafter_options o;
  o.shape = draft_shape::chain;
  o.temperature = 0;
  model_drafter<restricted_head<cpu::llama_cpu>> d(draft, o);
  greedy_rule rule;
  generate_options opt;
  opt.max_new_tokens = 24;
  opt.budget = 4;
  const auto got = generate(m, d, rule, reference().prompt, opt);
  null_drafter ar;
  const auto want = generate(m, ar, rule, reference().prompt, opt);
  CHECK(got.tokens == want.tokens);
  CHECK(got.stats.n_drafted > 0);
  CHECK(got.stats.n_accept == got.stats.n_drafted);
}
