// Acceptance rules on hand-made trees and logits: greedy follows the argmax path; the sampling rule
// descends when the draw matches a child and is exact for a single step (its draws follow the target).
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/sampling.hpp>
#include <specdec/core/batch.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <map>

using namespace specdec;

namespace {

// Tree: 0 -> {1:A=2, 2:B=3}, 1 -> {3: C=1}, 3 -> {4: D=0}. Vocabulary 4.
draft_tree sample_tree() {
  draft_tree t = draft_tree::root_only(0);
  const auto a = t.add(0, 2);
  t.add(0, 3);
  const auto c = t.add(a, 1);
  t.add(c, 0);
  t.validate();
  return t;
}

}  // namespace

TEST_CASE("greedy follows the argmax through the tree and returns the bonus token", "[verify]") {
  const draft_tree t = sample_tree();
  // argmax per node: node0 -> 2 (child 1), node1 -> 1 (child 3), node3 -> 3 (no child 3 under node 3).
  std::vector<float> l = {0, 0, 9, 1,  /**/ 0, 9, 0, 0, /**/ 9, 0, 0, 0, /**/ 0, 0, 1, 9, /**/ 9, 0, 0, 0};
  const logits_view view{l.data(), 5, 4};
  std::mt19937_64 rng(1);
  const auto a = greedy_rule{}.accept(t, view, rng);
  CHECK(a.path == std::vector<std::int32_t>{0, 1, 3});
  CHECK(a.next_token == 3);
}

TEST_CASE("greedy on a root-only tree is plain argmax", "[verify]") {
  const draft_tree t = draft_tree::root_only(5);
  std::vector<float> l = {0.5f, 2.0f, 2.0f, -1.0f};
  std::mt19937_64 rng(1);
  const auto a = greedy_rule{}.accept(t, logits_view{l.data(), 1, 4}, rng);
  CHECK(a.path == std::vector<std::int32_t>{0});
  CHECK(a.next_token == 1);  // ties go to the lowest id
}

TEST_CASE("sampling rule: emitted first token follows the target distribution", "[verify]") {
  const draft_tree t = sample_tree();
  std::vector<float> l(5 * 4, 0.0f);
  const float target[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  for (int v = 0; v < 4; ++v) l[static_cast<std::size_t>(v)] = std::log(target[v]);
  sampling_rule rule{sampling_params{1.0f, 0, 1.0f}};
  std::mt19937_64 rng(7);
  std::map<token_id, int> first;
  const int n = 40000;
  for (int i = 0; i < n; ++i) {
    const auto a = rule.accept(t, logits_view{l.data(), 5, 4}, rng);
    const token_id tok = a.path.size() > 1 ? t.tokens[static_cast<std::size_t>(a.path[1])] : a.next_token;
    ++first[tok];
    if (a.path.size() > 1) CHECK(t.tokens[static_cast<std::size_t>(a.path[1])] != 0);
  }
  for (int v = 0; v < 4; ++v) {
    const double p = static_cast<double>(first[v]) / n;
    CHECK(std::abs(p - target[v]) < 4 * std::sqrt(target[v] * (1 - target[v]) / n));
  }
}

TEST_CASE("draft_tree validation catches broken trees", "[verify]") {
  draft_tree t = sample_tree();
  t.tokens[2] = 2;  // sibling of node 1 with the same token
  CHECK_THROWS_WITH(t.validate(), Catch::Contains("siblings"));
  draft_tree u = sample_tree();
  u.parent[3] = 3;
  CHECK_THROWS_AS(u.validate(), error);
  draft_tree v = sample_tree();
  v.depth[4] = 7;
  CHECK_THROWS_WITH(v.validate(), Catch::Contains("depth"));
}

TEST_CASE("extra rows follow the nodes, chain by pending index and are checked", "[verify]") {
  draft_tree t = sample_tree();
  const std::int32_t n = t.size();
  const std::vector<float> e{0.5f, -1.0f};
  const std::int32_t a = t.add_extra(0, e);      // the root's first prompt row
  const std::int32_t b = t.add_extra(a, e);      // its second, chained
  const std::int32_t c = t.add_extra(n - 1, e);  // the deepest node's
  CHECK(a == n);
  CHECK(b == n + 1);
  CHECK(c == n + 2);
  CHECK(t.n_extra() == 3);
  CHECK(t.n_rows() == n + 3);
  CHECK(t.extra_depth == std::vector<std::int32_t>{1, 2, t.depth.back() + 1});
  CHECK_NOTHROW(t.validate());

  const auto step = specdec::sequence_step::tree(7, t, 10);
  REQUIRE(step.size() == n + 3);
  CHECK(step.tokens[static_cast<std::size_t>(n)] == specdec::embedding_row);
  CHECK(step.parents[static_cast<std::size_t>(n + 1)] == a);
  CHECK(step.positions[static_cast<std::size_t>(n + 1)] == 12);
  CHECK(step.embeddings.size() == 6);

  draft_tree bad = t;
  bad.extra_depth[1] = 5;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("depth of extra row 1"));
  bad = t;
  bad.extra_parent[0] = n + 2;  // not an earlier row
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("parent of extra row 0"));
}
