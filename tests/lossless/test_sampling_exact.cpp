// Lossless sampling: on a tiny random model run by the real CPU backend, the empirical distribution of
// the first three generated tokens under each drafter matches the exact distribution of plain sampling
// (chi-square, fixed seeds, 20,000 samples, p > 0.001): Token Recycling, Lookahead, a full two-level
// tree that forces descent on every draw, and plain sampling (null drafter) as the control.
#include "sampling_check.hpp"

#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/drafters/token_recycling.hpp>

#include <catch2/catch.hpp>

using namespace specdec;
using namespace specdec::test;

namespace {

const std::vector<token_id> prompt = {1, 2, 3, 1, 2, 3, 1, 2};
constexpr int n_samples = 20000;

template <class Drafter>
void check(Drafter& d, const sampling_params& sp, std::int32_t budget, double min_mat) {
  auto m = tiny_llama(11);
  const auto exact = exact_three_token_distribution(m, prompt, sp);
  decode_stats stats;
  const auto counts = sample_three_tokens(m, d, prompt, sp, budget, n_samples, stats);
  const auto chi = chi_square(counts, exact);
  INFO("chi2 " << chi.statistic << " dof " << chi.dof << " p " << chi.p_value << " MAT " << stats.mat());
  CHECK(chi.p_value > 0.001);
  CHECK(stats.mat() >= min_mat);  // the tree path is really exercised
}

}  // namespace

TEST_CASE("plain sampling (null drafter) matches the exact distribution", "[verify][slow]") {
  null_drafter d;
  check(d, sampling_params{1.0f, 0, 1.0f}, 1, 1.0);
}

TEST_CASE("a full two-level tree keeps the distribution exact", "[verify][slow]") {
  full_tree_drafter d;
  check(d, sampling_params{1.0f, 0, 1.0f}, 73, 2.0);
  check(d, sampling_params{0.7f, 5, 0.9f}, 73, 2.0);
}

TEST_CASE("Token Recycling keeps the sampling distribution exact", "[verify][slow]") {
  token_recycling_drafter d(8, token_recycling_options{"tr-8", 8});
  check(d, sampling_params{1.0f, 0, 1.0f}, 9, 1.2);
  token_recycling_drafter d2(8, token_recycling_options{"tr-8", 8});
  check(d2, sampling_params{0.7f, 5, 0.9f}, 9, 1.2);
}

TEST_CASE("Lookahead keeps the sampling distribution exact", "[verify][slow]") {
  lookahead_trie_drafter d(lookahead_options{});
  check(d, sampling_params{1.0f, 0, 1.0f}, 9, 1.05);
  lookahead_trie_drafter d2(lookahead_options{});
  check(d2, sampling_params{0.7f, 5, 0.9f}, 9, 1.05);
}

TEST_CASE("the chi-square check detects a wrong distribution", "[verify]") {
  // Sanity of the harness itself: counts drawn from a shifted distribution must fail.
  auto m = tiny_llama(11);
  const sampling_params sp{1.0f, 0, 1.0f};
  const auto exact = exact_three_token_distribution(m, prompt, sp);
  const auto shifted = exact_three_token_distribution(m, prompt, sampling_params{1.3f, 0, 1.0f});
  std::vector<std::int64_t> counts(exact.size());
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<std::int64_t>(std::llround(shifted[i] * n_samples));
  CHECK(chi_square(counts, exact).p_value < 1e-6);
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<std::int64_t>(std::llround(exact[i] * n_samples));
  CHECK(chi_square(counts, exact).p_value > 0.5);
}
