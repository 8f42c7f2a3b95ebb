// Lossless sampling on a tiny random Llama run by the real CPU backend, for Token Recycling, Lookahead,
// a full two-level tree that forces descent on every draw, and plain sampling (null drafter):
//
//  * distribution: the empirical distribution of the first three generated tokens under each drafter
//    matches the exact one (chi-square, fixed seeds, 20,000 samples, p > 0.001). The exact
//    distribution is not computed by the code under test: tools/reference/sampling_fixtures.py builds
//    the model, writes it as a GGUF, and computes P(t1, t2, t3 | prompt) with the float64 NumPy forward
//    of llama_ref.py and its own temperature / top-k / top-p (the ctest fixture sampling_reference).
//  * same tokens: with the same seed every drafter emits exactly plain sampling's tokens, because the
//    rule consumes one uniform draw per emitted token and the draft is fixed before the draws.
//
// The two overlap: while the same-token property holds, each drafter's 20,000 samples are the null
// drafter's samples (all drafters show the same chi-square statistic). The chi-square cases still tell
// two kinds of breakage apart: a change that keeps the distribution but breaks the same-token property
// (say, one extra draw per tree node) fails only the same-token case; a lossy rule or a wrong sampling
// distribution fails the chi-square too.
#include "sampling_check.hpp"

#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/drafters/token_recycling.hpp>

#include <catch2/catch.hpp>

#include <algorithm>

using namespace specdec;
using namespace specdec::test;

namespace {

constexpr int n_samples = 20000;
const char* const plain = "plain";             // T = 1, no top-k / top-p
const char* const truncated = "t0.7-k5-p0.9";  // T = 0.7, top-k 5, top-p 0.9

// The reference setting `name`, after checking it holds the parameters this test means.
const reference_setting& setting_of(const std::string& name) {
  const auto& s = reference().get(name);
  const sampling_params want = name == plain ? sampling_params{1.0f, 0, 1.0f}
                             : name == truncated ? sampling_params{0.7f, 5, 0.9f}
                                                 : sampling_params{1.3f, 0, 1.0f};
  INFO("setting " << name << " of distributions.json");
  REQUIRE(s.params.temperature == want.temperature);
  REQUIRE(s.params.top_k == want.top_k);
  REQUIRE(s.params.top_p == want.top_p);
  return s;
}

template <class Drafter>
void check(Drafter& d, const std::string& setting, std::int32_t budget, double min_mat) {
  const auto& ref = reference();
  const auto& s = setting_of(setting);
  auto m = tiny_llama();
  decode_stats stats;
  const auto counts = sample_three_tokens(m, d, ref.prompt, s.params, budget, n_samples, stats);
  const auto chi = chi_square(counts, s.probs);
  INFO(setting << ": chi2 " << chi.statistic << " dof " << chi.dof << " p " << chi.p_value << " MAT "
               << stats.mat());
  CHECK(chi.p_value > 0.001);
  CHECK(stats.mat() >= min_mat);  // the tree path is really exercised
}

// Generates `n_tokens` tokens for each of `n_seeds` seeds with `d` and with null_drafter; the token
// lists must be identical.
template <class Drafter>
void check_same_tokens(Drafter& d, const std::string& setting, std::int32_t budget, double min_mat) {
  constexpr int n_seeds = 200, n_tokens = 12;
  const auto& ref = reference();
  const sampling_rule rule{setting_of(setting).params};
  auto m = tiny_llama();
  null_drafter plain_d;
  decode_stats stats;
  int differing = 0;
  for (int s = 0; s < n_seeds; ++s) {
    generate_options opt;
    opt.max_new_tokens = n_tokens;
    opt.seed = 7919ull * static_cast<std::uint64_t>(s) + 3;
    auto plain_rule = rule;
    const auto want = generate(m, plain_d, plain_rule, ref.prompt, opt).tokens;
    opt.budget = budget;
    auto spec_rule = rule;
    const auto got = generate(m, d, spec_rule, ref.prompt, opt);
    stats.add(got.stats);
    REQUIRE(want.size() == static_cast<std::size_t>(n_tokens));
    if (got.tokens != want) {
      if (differing == 0) {
        UNSCOPED_INFO(setting << ": seed " << opt.seed << " is the first to differ");
      }
      ++differing;
    }
  }
  INFO(setting << ": " << differing << " of " << n_seeds << " seeds differ; MAT " << stats.mat());
  CHECK(differing == 0);
  CHECK(stats.mat() >= min_mat);
}

}  // namespace

TEST_CASE("the sampling reference fixture is usable", "[verify]") {
  const auto& ref = reference();
  REQUIRE(ref.n_vocab == 8);
  auto m = tiny_llama();
  REQUIRE(m.n_vocab() == ref.n_vocab);
  REQUIRE(ref.settings.size() == 5);  // two more for the draft-model tests (test_draft_model_exact.cpp)
  for (const char* name : {plain, truncated, "shifted-t1.3"}) setting_of(name);
  for (const auto& s : ref.settings) {
    INFO(s.name);
    REQUIRE(s.probs.size() == static_cast<std::size_t>(ref.n_vocab * ref.n_vocab * ref.n_vocab));
    double total = 0;
    for (double p : s.probs) total += p;
    CHECK(std::abs(total - 1.0) < 1e-9);
    // The float32 backend and the float64 reference place every top-k / top-p cut alike only if no
    // probability sits near a cut; sampling_fixtures.py refuses to write a fixture where one does.
    CHECK(s.min_cut_margin > ref.min_margin_required);
  }
}

TEST_CASE("the C++ sampler's distribution agrees with the float64 reference cell by cell", "[verify]") {
  // Not the chi-square's ground truth, a deterministic cross-check: the backend's float32 logits and
  // distribution() against the independent NumPy computation (same support, probabilities within 1e-5).
  const auto& ref = reference();
  auto m = tiny_llama();
  for (const auto& s : ref.settings) {
    const auto cpp = backend_three_token_distribution(m, ref.prompt, s.params);
    double worst = 0;
    int support_differs = 0;
    for (std::size_t i = 0; i < cpp.size(); ++i) {
      worst = std::max(worst, std::abs(cpp[i] - s.probs[i]));
      support_differs += (cpp[i] == 0) != (s.probs[i] == 0);
    }
    INFO(s.name << ": largest difference " << worst);
    CHECK(support_differs == 0);
    CHECK(worst < 1e-5);
  }
}

TEST_CASE("plain sampling (null drafter) matches the exact distribution", "[verify][slow]") {
  null_drafter d;
  check(d, plain, 1, 1.0);
  null_drafter d2;
  check(d2, truncated, 1, 1.0);
}

TEST_CASE("a full two-level tree keeps the distribution exact", "[verify][slow]") {
  full_tree_drafter d;
  check(d, plain, 73, 2.0);
  check(d, truncated, 73, 2.0);
}

TEST_CASE("Token Recycling keeps the sampling distribution exact", "[verify][slow]") {
  token_recycling_drafter d(8, token_recycling_options{"tr-8", 8});
  check(d, plain, 9, 1.2);
  token_recycling_drafter d2(8, token_recycling_options{"tr-8", 8});
  check(d2, truncated, 9, 1.2);
}

TEST_CASE("Lookahead keeps the sampling distribution exact", "[verify][slow]") {
  lookahead_trie_drafter d(lookahead_options{});
  check(d, plain, 9, 1.05);
  lookahead_trie_drafter d2(lookahead_options{});
  check(d2, truncated, 9, 1.05);
}

TEST_CASE("with the same seed every drafter emits exactly plain sampling's tokens", "[verify]") {
  for (const char* setting : {plain, truncated}) {
    SECTION(std::string("null drafter, ") + setting) {
      null_drafter d;
      check_same_tokens(d, setting, 1, 1.0);
    }
    SECTION(std::string("full two-level tree, ") + setting) {
      full_tree_drafter d;
      check_same_tokens(d, setting, 73, 2.0);
    }
    SECTION(std::string("Token Recycling, ") + setting) {
      token_recycling_drafter d(8, token_recycling_options{"tr-8", 8});
      check_same_tokens(d, setting, 9, 1.2);
    }
    SECTION(std::string("Lookahead, ") + setting) {
      lookahead_trie_drafter d(lookahead_options{});
      check_same_tokens(d, setting, 9, 1.05);
    }
  }
}

TEST_CASE("the chi-square check detects a wrong distribution", "[verify]") {
  // Sanity of the harness itself: counts drawn from a shifted distribution (T = 1.3) must fail against
  // the T = 1 reference, the reference's own expected counts must pass, and one count in a cell of
  // probability 0 (a token outside the top-k / top-p set) must fail.
  const auto& exact = setting_of(plain).probs;
  const auto& shifted = setting_of("shifted-t1.3").probs;
  std::vector<std::int64_t> counts(exact.size());
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<std::int64_t>(std::llround(shifted[i] * n_samples));
  CHECK(chi_square(counts, exact).p_value < 1e-6);
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<std::int64_t>(std::llround(exact[i] * n_samples));
  CHECK(chi_square(counts, exact).p_value > 0.5);

  const auto& cut = setting_of(truncated).probs;
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<std::int64_t>(std::llround(cut[i] * n_samples));
  CHECK(chi_square(counts, cut).p_value > 0.5);
  const auto zero = static_cast<std::size_t>(std::find(cut.begin(), cut.end(), 0.0) - cut.begin());
  REQUIRE(zero < cut.size());
  ++counts[zero];
  CHECK(chi_square(counts, cut).p_value == 0.0);
}
