// The automatic tree budget (core/auto_budget.hpp) and the cost curve it stands on
// (core/cost_curve.hpp): interpolation and the cache file; the acceptance tracker converging to the
// probabilities it is fed; the chooser picking, on a synthetic cost curve and synthetic acceptance,
// the budget a brute force over a closed form written here picks; the best-tree model against a
// brute force over every subtree; a decode with the policy equal to plain greedy decoding; and the
// measurement on the default model.
#include "../cpu/model_fixture.hpp"
#include "../mocks/mock_batch_model.hpp"

#include <specdec/core/auto_budget.hpp>
#include <specdec/core/cost_curve.hpp>
#include <specdec/drafters/any_drafter.hpp>
#include <specdec/verify/decoder.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <unistd.h>

using namespace specdec;
using specdec::test::mock_batch_model;
using specdec::test::oracle_drafter;

namespace {

// A scratch directory removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    path = std::filesystem::temp_directory_path() / ("specdec_auto_budget_" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// A cost curve with a point at every row count 1..n, so that interpolation is exact at integers.
cost_curve dense_curve(double (*f)(std::int32_t), std::int32_t n) {
  std::vector<cost_point> p;
  for (std::int32_t k = 1; k <= n; ++k) p.push_back({k, f(k)});
  return cost_curve(p);
}

// A chain of `nodes` draft nodes under the root (ranks all 0).
draft_tree chain_tree(std::int32_t nodes) {
  draft_tree t = draft_tree::root_only(0);
  for (std::int32_t i = 0; i < nodes; ++i) t.add(i, static_cast<token_id>(i + 1));
  return t;
}

// Feeds the policy `steps` steps of a chain drafter whose depth-d node is accepted, given its
// parent was, with probability p[d - 1]; the drafter has nothing to offer (root only) with
// probability `empty`. Forward times follow `cost` exactly; overhead is a + b * rows.
void simulate_chain(auto_budget& policy, const std::vector<double>& p, std::int64_t steps, double (*cost)(std::int32_t),
                    double empty = 0.0, double a = 0.0, double b = 0.0, std::uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (std::int64_t s = 0; s < steps; ++s) {
    const std::int32_t budget = policy.budget(1, 1 << 16);
    const std::int32_t nodes = u(rng) < empty ? 0 : std::min<std::int32_t>(budget - 1, static_cast<std::int32_t>(p.size()));
    const draft_tree t = chain_tree(nodes);
    acceptance acc;
    acc.path = {0};
    for (std::int32_t d = 1; d <= nodes && u(rng) < p[static_cast<std::size_t>(d - 1)]; ++d) acc.path.push_back(d);
    policy.observe(budget_step{1, budget, t, acc, cost(t.n_rows()), t.n_rows(), a + b * t.n_rows()});
  }
}

double steep_cost(std::int32_t n) { return 0.020 + 0.004 * (n - 1) + 0.0006 * (n - 1) * (n - 1); }
double flat_cost(std::int32_t n) { return 0.020 + 0.001 * (n - 1); }

// The budget S in [1, max] maximising (1 + E[accepted]) / seconds for a chain with per-depth
// acceptance p, written out directly: E[accepted | S] = sum over i < S of prod_{d <= i} p[d - 1].
struct brute_choice {
  std::int32_t best = 1;
  double best_rate = 0, second_rate = 0;
};
brute_choice brute_chain(const std::vector<double>& p, std::int32_t max, double (*cost)(std::int32_t),
                         double empty = 0.0, double a = 0.0, double b = 0.0) {
  brute_choice c;
  for (std::int32_t s = 1; s <= max; ++s) {
    double acc = 0, prod = 1;
    for (std::int32_t i = 1; i < s && i <= static_cast<std::int32_t>(p.size()); ++i) {
      prod *= p[static_cast<std::size_t>(i - 1)];
      acc += prod;
    }
    const std::int32_t rows = std::min<std::int32_t>(s, static_cast<std::int32_t>(p.size()) + 1);
    const double t = empty * (cost(1) + a + b) + (1 - empty) * (cost(rows) + a + b * rows);
    const double rate = (1.0 + (1 - empty) * acc) / t;
    if (rate > c.best_rate) {
      c.second_rate = c.best_rate;
      c.best_rate = rate;
      c.best = s;
    } else if (rate > c.second_rate) {
      c.second_rate = rate;
    }
  }
  return c;
}

}  // namespace

TEST_CASE("cost curve: interpolation, extrapolation and the monotone fit", "[auto_budget]") {
  const cost_curve c({{1, 0.010}, {2, 0.012}, {4, 0.016}, {8, 0.030}});
  CHECK(c.seconds(1) == Approx(0.010));
  CHECK(c.seconds(0.5) == Approx(0.010));  // below the first point: flat
  CHECK(c.seconds(3) == Approx(0.014));
  CHECK(c.seconds(6) == Approx(0.023));
  CHECK(c.seconds(8) == Approx(0.030));
  CHECK(c.seconds(16) == Approx(0.060));  // beyond the last point: proportional to rows
  CHECK(c.max_rows() == 8);
  CHECK(cost_curve().seconds(4) == 0.0);
  CHECK_THROWS_AS(cost_curve({{2, 0.01}, {2, 0.02}}), error);
  CHECK_THROWS_AS(cost_curve({{0, 0.01}}), error);
  CHECK_THROWS_AS(cost_curve({{1, -1.0}}), error);
  const cost_curve m = cost_curve({{1, 0.010}, {2, 0.009}, {3, 0.012}, {4, 0.011}, {5, 0.010}}).monotone();
  REQUIRE(m.points().size() == 5);
  CHECK(m.points()[0].seconds == Approx(0.0095));
  CHECK(m.points()[1].seconds == Approx(0.0095));
  CHECK(m.points()[2].seconds == Approx(0.011));
  CHECK(m.points()[4].seconds == Approx(0.011));
}

TEST_CASE("cost curve cache: round trip, other key, missing and corrupt files", "[auto_budget]") {
  temp_dir dir;
  const auto file = dir.path / "curve.txt";
  const cost_curve c({{1, 0.0123456789}, {2, 0.015}, {16, 0.05}});
  const std::string key = "model=x.gguf size=123 weights=native threads=2 cpu=Some CPU @ 2.0GHz";
  CHECK_FALSE(load_cost_curve(file, key).has_value());  // missing
  save_cost_curve(file, key, c);
  const auto back = load_cost_curve(file, key);
  REQUIRE(back.has_value());
  REQUIRE(back->points().size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(back->points()[i].rows == c.points()[i].rows);
    CHECK(back->points()[i].seconds == Approx(c.points()[i].seconds).epsilon(1e-8));
  }
  CHECK_FALSE(load_cost_curve(file, key + " other").has_value());  // another key: measure again

  {
    std::ofstream out(file, std::ios::trunc);
    out << "specdec-cost-curve 1 " << key << "\n1 0.01\n2 zero\n";
  }
  try {
    (void)load_cost_curve(file, key);
    FAIL("a corrupt cache loaded");
  } catch (const error& e) {
    CHECK(e.category() == error_category::format);
    CHECK_THAT(e.what(), Catch::Contains(file.string() + ":3"));
  }
  {
    std::ofstream out(file, std::ios::trunc);
    out << "not a cost curve\n";
  }
  CHECK_THROWS_WITH(load_cost_curve(file, key), Catch::Contains(file.string() + ":1"));
  {
    std::ofstream out(file, std::ios::trunc);
    out << "specdec-cost-curve 1 " << key << "\n1 0.01\n1 0.02\n";
  }
  CHECK_THROWS_WITH(load_cost_curve(file, key), Catch::Contains(file.string() + ":3"));
}

TEST_CASE("acceptance tracker converges to the probabilities it is fed", "[auto_budget]") {
  // Tree: root -> a (rank 0), b (rank 1); a -> c (rank 0) -> e (rank 0). P(a) = 0.55, P(b) = 0.2
  // (exclusive), P(c | a) = 0.4, P(e | c) = 0.7.
  draft_tree t = draft_tree::root_only(0);
  const auto a = t.add(0, 1);
  const auto b = t.add(0, 2);
  const auto c = t.add(a, 3);
  const auto e = t.add(c, 4);
  acceptance_tracker_options o;
  o.window = 0;  // no decay: every step counts
  acceptance_tracker tr(o);
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const std::int64_t n = 20000;
  std::int64_t n_a = 0, n_c = 0;
  for (std::int64_t s = 0; s < n; ++s) {
    std::vector<std::int32_t> path{0};
    const double x = u(rng);
    if (x < 0.55) {
      path.push_back(a);
      ++n_a;
      if (u(rng) < 0.4) {
        path.push_back(c);
        ++n_c;
        if (u(rng) < 0.7) path.push_back(e);
      }
    } else if (x < 0.75) {
      path.push_back(b);
    }
    tr.observe(t, path);
  }
  CHECK(tr.trials(1, 0) == Approx(static_cast<double>(n)));
  CHECK(tr.trials(1, 1) == Approx(static_cast<double>(n)));
  CHECK(tr.trials(2, 0) == Approx(static_cast<double>(n_a)));
  CHECK(tr.trials(3, 0) == Approx(static_cast<double>(n_c)));
  CHECK(tr.ranks() == 2);
  // Within 4 standard errors of the sample proportion plus the prior's pull (2 pseudo-trials).
  const auto bound = [&](double p, double trials) {
    return 4.0 * std::sqrt(p * (1 - p) / trials) + o.prior_strength / (trials + o.prior_strength);
  };
  CHECK(std::abs(tr.estimate(1, 0) - 0.55) < bound(0.55, n));
  CHECK(std::abs(tr.estimate(1, 1) - 0.20) < bound(0.20, n));
  CHECK(std::abs(tr.estimate(2, 0) - 0.40) < bound(0.40, static_cast<double>(n_a)));
  CHECK(std::abs(tr.estimate(3, 0) - 0.70) < bound(0.70, static_cast<double>(n_c)));

  // With a window, old steps fade: after the text changes (P(a) = 0.1), the estimate follows.
  acceptance_tracker_options w;
  w.window = 64;
  acceptance_tracker tw(w);
  for (int s = 0; s < 2000; ++s) tw.observe(t, std::vector<std::int32_t>{0, a});
  for (int s = 0; s < 600; ++s) tw.observe(t, s % 10 == 0 ? std::vector<std::int32_t>{0, a} : std::vector<std::int32_t>{0});
  CHECK(tw.estimate(1, 0) < 0.15);
}

TEST_CASE("best-tree model equals a brute force over every subtree", "[auto_budget]") {
  // Binary tree of depth 3 (14 draft nodes): feed acceptances per (depth, rank), then compare the
  // tracker's best k-node tree with the best of all 2^14 node sets closed under parent.
  acceptance_tracker_options o;
  o.window = 0;
  o.max_depth = 3;
  o.max_rank = 2;
  acceptance_tracker tr(o);
  draft_tree t = draft_tree::root_only(0);
  std::vector<std::int32_t> rank(1, -1);
  for (std::int32_t i = 0; t.size() < 15; ++i) {
    if (t.depth[static_cast<std::size_t>(i)] == 3) continue;
    for (std::int32_t r = 0; r < 2; ++r) {
      t.add(i, static_cast<token_id>(t.size()));
      rank.push_back(r);
    }
  }
  REQUIRE(t.size() == 15);
  const double p[4][2] = {{0, 0}, {0.5, 0.3}, {0.6, 0.1}, {0.2, 0.15}};  // [depth][rank], exclusive per level
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int s = 0; s < 3000; ++s) {
    std::vector<std::int32_t> path{0};
    for (std::int32_t node = 0, d = 1; d <= 3; ++d) {
      const double x = u(rng);
      const std::int32_t r = x < p[d][0] ? 0 : x < p[d][0] + p[d][1] ? 1 : -1;
      if (r < 0) break;
      std::int32_t child = -1;
      for (std::int32_t j = node + 1; j < t.size(); ++j) {
        if (t.parent[static_cast<std::size_t>(j)] == node && rank[static_cast<std::size_t>(j)] == r) child = j;
      }
      path.push_back(child);
      node = child;
    }
    tr.observe(t, path);
  }
  std::vector<double> value(15, 1.0);  // path product of the tracker's estimates
  for (std::int32_t i = 1; i < 15; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    value[iu] = value[static_cast<std::size_t>(t.parent[iu])] * tr.estimate(t.depth[iu], rank[iu]);
  }
  std::vector<double> brute(15, 0.0);
  for (std::uint32_t set = 0; set < (1u << 14); ++set) {
    double sum = 0;
    std::int32_t k = 0;
    bool closed = true;
    for (std::int32_t i = 1; i < 15 && closed; ++i) {
      if (!(set >> (i - 1) & 1u)) continue;
      const std::int32_t par = t.parent[static_cast<std::size_t>(i)];
      closed = par == 0 || (set >> (par - 1) & 1u);
      sum += value[static_cast<std::size_t>(i)];
      ++k;
    }
    if (closed) brute[static_cast<std::size_t>(k)] = std::max(brute[static_cast<std::size_t>(k)], sum);
  }
  const auto model = tr.best_tree(14);
  for (std::size_t k = 0; k <= 14; ++k) {
    INFO("nodes " << k);
    CHECK(model[k] == Approx(brute[k]).epsilon(1e-12));
  }
}

TEST_CASE("measured acceptance per budget corrects a model that over-promises", "[auto_budget]") {
  // The drafter spends its budget on siblings: root -> S - 1 children, the first accepted with
  // probability 0.6, the others never. The best tree under independence would add the first
  // child's (never drafted) child instead, so the model over-promises every budget above 2; what
  // the steps at each budget accepted pulls it back. Brute force: E[accepted | S >= 2] = 0.6, so
  // the cheapest such budget, 2, is the best (flat curve: (1 + 0.6) / c(2) > 1 / c(1)).
  REQUIRE((1.6 / flat_cost(2) > 1.0 / flat_cost(1) && 1.6 / flat_cost(2) > 1.6 / flat_cost(3)));
  auto_budget_options o;
  o.max_budget = 8;
  auto_budget policy(dense_curve(flat_cost, 8), o);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int s = 0; s < 3000; ++s) {
    const std::int32_t budget = policy.budget(1, 8);
    draft_tree t = draft_tree::root_only(0);
    for (std::int32_t k = 1; k < budget; ++k) t.add(0, k);
    acceptance acc;
    acc.path = {0};
    if (budget > 1 && u(rng) < 0.6) acc.path.push_back(1);
    policy.observe(budget_step{1, budget, t, acc, flat_cost(t.n_rows()), t.n_rows(), 0.0});
  }
  CHECK(policy.rechoose() == 2);
  CHECK(policy.model_accepted(4) > 1.0);                               // what independence promises
  CHECK(policy.expected_accepted(4) == Approx(0.6).margin(0.15));      // what the steps showed
  CHECK(policy.measured()[2] == Approx(0.6).margin(0.1));
  CHECK(policy.model_accepted(2) == Approx(0.6).margin(0.1));         // one node: the model is right
}

TEST_CASE("the chooser picks the budget a brute force over the closed form picks", "[auto_budget]") {
  auto_budget_options o;
  o.max_budget = 16;
  o.window = 0;
  o.acceptance.window = 0;

  SECTION("steep curve, high acceptance: a middle budget") {
    const std::vector<double> p(15, 0.7);
    const brute_choice want = brute_chain(p, 16, steep_cost);
    REQUIRE(want.best_rate > 1.03 * want.second_rate);  // a clear optimum, so noise cannot flip it
    auto_budget policy(dense_curve(steep_cost, 16), o);
    simulate_chain(policy, p, 4000, steep_cost);
    CHECK(policy.rechoose() == want.best);
    CHECK(policy.best() > 2);
  }
  SECTION("flat curve: deeper, up to where acceptance drops") {
    std::vector<double> p(15, 0.05);
    std::fill(p.begin(), p.begin() + 8, 0.9);
    const brute_choice want = brute_chain(p, 16, flat_cost);
    REQUIRE(want.best_rate > 1.03 * want.second_rate);
    REQUIRE(want.best == 9);
    auto_budget policy(dense_curve(flat_cost, 16), o);
    simulate_chain(policy, p, 8000, flat_cost);
    CHECK(policy.rechoose() == want.best);
  }
  SECTION("low acceptance: plain decoding (budget 1)") {
    const std::vector<double> p(15, 0.05);
    const brute_choice want = brute_chain(p, 16, steep_cost);
    REQUIRE(want.best == 1);
    auto_budget policy(dense_curve(steep_cost, 16), o);
    simulate_chain(policy, p, 4000, steep_cost);
    CHECK(policy.rechoose() == 1);
  }
  SECTION("overhead that grows with rows (a draft model) lowers the budget") {
    const std::vector<double> p(15, 0.7);
    const double a = 0.0005, b = 0.008;
    const brute_choice want = brute_chain(p, 16, steep_cost, 0.0, a, b);
    const brute_choice without = brute_chain(p, 16, steep_cost);
    REQUIRE(want.best < without.best);
    REQUIRE(want.best_rate > 1.03 * want.second_rate);
    auto_budget policy(dense_curve(steep_cost, 16), o);
    simulate_chain(policy, p, 4000, steep_cost, 0.0, a, b);
    CHECK(policy.rechoose() == want.best);
    const auto [fa, fb] = policy.overhead_fit();
    CHECK(fa == Approx(a).margin(1e-6));
    CHECK(fb == Approx(b).margin(1e-6));
  }
  SECTION("a drafter that often has nothing: steps without drafts cost one row") {
    // Acceptance decreasing with depth; half the steps have no draft at all.
    std::vector<double> p(15, 0.2);
    p[0] = 0.9;
    p[1] = 0.8;
    p[2] = 0.3;
    const brute_choice want = brute_chain(p, 16, steep_cost, 0.5);
    REQUIRE(want.best_rate > 1.05 * want.second_rate);
    auto_budget policy(dense_curve(steep_cost, 16), o);
    simulate_chain(policy, p, 6000, steep_cost, 0.5);
    CHECK(policy.rechoose() == want.best);
    const auto surv = policy.availability(4);
    CHECK(surv[2] == Approx(0.5).margin(0.03));  // P(at least one draft node) ~ 1 - empty
    // An empty step costs one row whatever the budget: E[seconds | 4] ~ (c(1) + c(4)) / 2.
    CHECK(policy.expected_seconds(4) == Approx(0.5 * (steep_cost(1) + steep_cost(4))).epsilon(0.03));
  }
}

TEST_CASE("exploration is deterministic and the tracker sees deeper nodes", "[auto_budget]") {
  auto_budget_options o;
  o.max_budget = 8;
  auto_budget p1(dense_curve(steep_cost, 8), o), p2(dense_curve(steep_cost, 8), o);
  const std::vector<double> acc(7, 0.6);
  simulate_chain(p1, acc, 500, steep_cost, 0.0, 0.0, 0.0, 5);
  simulate_chain(p2, acc, 500, steep_cost, 0.0, 0.0, 0.0, 5);
  CHECK(p1.best() == p2.best());
  std::vector<std::int32_t> b1, b2;
  for (int i = 0; i < 64; ++i) {
    b1.push_back(p1.budget(1, 8));
    b2.push_back(p2.budget(1, 8));
  }
  CHECK(b1 == b2);
  CHECK(*std::max_element(b1.begin(), b1.end()) > p1.best());  // some calls explore above the best
  CHECK(p1.budget(1, 2) <= 2);                                   // never above what the caller allows
}

TEST_CASE("a custom acceptance model and rows-per-node relation plug in", "[auto_budget]") {
  // A drafter whose trees carry one extra row per node (PPD-like): k rows hold (k + 1) / 2 nodes.
  auto_budget_options o;
  o.max_budget = 8;
  auto_budget policy(dense_curve(flat_cost, 8), o);
  policy.set_nodes_for_rows([](std::int32_t rows) { return (rows + 1) / 2; });
  const auto tree = policy.acceptance().best_tree(8);
  CHECK(policy.expected_accepted(5) == Approx(tree[2]));  // 5 rows: 3 nodes, 2 drafted
  policy.set_accepted_model([](std::int32_t rows, const acceptance_tracker&) { return 0.25 * (rows - 1); });
  CHECK(policy.expected_accepted(5) == Approx(1.0));
  CHECK(policy.rate(5) == Approx(2.0 / flat_cost(5)));
}

TEST_CASE("a decode with the auto policy equals plain greedy decoding and reports its budgets", "[auto_budget]") {
  mock_batch_model m(3);
  auto_budget_options o;
  o.max_budget = 8;
  auto_budget policy(dense_curve(flat_cost, 16), o);
  any_drafter oracle(oracle_drafter(m.table(), 4));
  decoder<mock_batch_model, any_drafter, greedy_rule> dec(m);
  std::map<request_id, std::vector<token_id>> prompts;
  for (int k = 0; k < 5; ++k) {
    const std::vector<token_id> p = {static_cast<token_id>(k + 2), 7, static_cast<token_id>(k)};
    request_options ro;
    ro.max_new_tokens = 40;
    ro.budget = 8;
    ro.tree_budget_policy = &policy;
    prompts[dec.add(p, oracle, greedy_rule{}, ro)] = p;
  }
  dec.run();
  auto done = dec.take_finished();
  REQUIRE(done.size() == 5);
  std::int64_t steps = 0;
  for (const auto& r : done) {
    INFO("request " << r.id);
    CHECK(r.tokens == m.table().greedy(prompts.at(r.id), 40));
    std::int64_t by_budget = 0;
    for (std::size_t b = 0; b < r.stats.steps_by_budget.size(); ++b) {
      by_budget += r.stats.steps_by_budget[b];
      if (r.stats.steps_by_budget[b] > 0) CHECK((b >= 1 && b <= 8));
    }
    CHECK(by_budget == r.stats.steps);
    CHECK(r.stats.mean_budget() >= 1.0);
    CHECK(r.stats.mode_budget() >= 1);
    steps += r.stats.steps;
  }
  CHECK(policy.steps() == steps);
  // The oracle's correct child is its second (rank 1) and always accepted; its first never is.
  CHECK(policy.acceptance().estimate(1, 1) > 0.9);
  CHECK(policy.acceptance().estimate(1, 0) < 0.1);
  CHECK(policy.best() > 1);

  // One request through generate(), the policy kept from the decode above (hot start).
  null_drafter ar;
  greedy_rule rule;
  generate_options go;
  go.max_new_tokens = 12;
  go.budget = 4;
  go.tree_budget_policy = &policy;
  const std::vector<token_id> prompt{3, 1, 4};
  const auto g = generate(m, ar, rule, prompt, go);
  CHECK(g.tokens == m.table().greedy(prompt, 12));
  CHECK(g.stats.mode_budget() <= 4);
}

TEST_CASE("measure_cost_curve on the default model: positive, roughly increasing", "[auto_budget][model]") {
  auto& model = test::default_model();
  cost_measure_options o;
  o.rows = {1, 2, 4, 8, 16};
  const cost_measurement m = measure_cost_curve(model, o);
  REQUIRE(m.curve.points().size() == 5);
  CHECK(m.rounds >= o.min_rounds);
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(m.raw.points()[i].seconds > 0);
    if (i > 0) CHECK(m.curve.points()[i].seconds >= m.curve.points()[i - 1].seconds);  // monotone fit
  }
  // Sixteen rows cost more than one (with slack for a noisy machine), and less than sixteen ones.
  CHECK(m.raw.points()[4].seconds > 0.9 * m.raw.points()[0].seconds);
  CHECK(m.raw.points()[4].seconds < 16.0 * m.raw.points()[0].seconds);
  WARN("cost curve measured in " << m.seconds << " s over " << m.rounds << " rounds: 1 row " << 1e3 * m.curve.seconds(1)
                                 << " ms, 16 rows " << 1e3 * m.curve.seconds(16) << " ms");
  // The model's sequences are left as they were.
  const seq_id s = model.create_sequence();
  CHECK(model.n_past(s) == 0);
  model.free_sequence(s);
}
