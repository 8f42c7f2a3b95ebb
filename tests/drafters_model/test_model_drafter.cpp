// model_drafter on mock models (tests/mocks/mock_batch_model.hpp, a fake model with the version-2
// boundary whose logits depend on a row's token and its parent's): the tree growth of each shape
// checked against properties the test recomputes from the tree's own distributions, the draft
// cache kept in step with the target, greedy output equal to plain greedy decoding, and clear errors.
#include "../mocks/mock_batch_model.hpp"

#include <specdec/core/layer_subset.hpp>
#include <specdec/drafters/model_drafter.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using namespace specdec;
using specdec::test::mock_batch_model;

namespace {

// Share of what was left of the parent's q when child c was drawn: q(y_c) / (1 - q(earlier siblings)).
std::vector<double> shares(const draft_tree& t) {
  std::vector<double> share(static_cast<std::size_t>(t.size()), 1.0);
  for (std::int32_t p = 0; p < t.size(); ++p) {
    const token_distribution* q = t.children_drawn_from(p);
    double used = 0;
    for (std::int32_t c = p + 1; c < t.size(); ++c) {
      if (t.parent[static_cast<std::size_t>(c)] != p) continue;
      REQUIRE(q != nullptr);
      const double qy = q->prob(t.tokens[static_cast<std::size_t>(c)]);
      REQUIRE(qy > 0);
      share[static_cast<std::size_t>(c)] = qy / (1.0 - used);
      used += qy;
    }
  }
  return share;
}

// The value of the heap entry each child was drawn from: the parent's value times (1 - share) of
// every earlier sibling. DySpec's heap pops entries in non-increasing order of these.
std::vector<double> entry_values(const draft_tree& t, std::vector<double>& value) {
  const auto share = shares(t);
  value.assign(static_cast<std::size_t>(t.size()), 1.0);
  std::vector<double> remaining(static_cast<std::size_t>(t.size()), 1.0);
  std::vector<double> entry(static_cast<std::size_t>(t.size()), 0.0);
  for (std::int32_t c = 1; c < t.size(); ++c) {
    const auto p = static_cast<std::size_t>(t.parent[static_cast<std::size_t>(c)]);
    const auto cu = static_cast<std::size_t>(c);
    entry[cu] = remaining[p];
    value[cu] = remaining[p] * share[cu];
    remaining[p] *= 1.0 - share[cu];
    remaining[cu] = value[cu];
  }
  return entry;
}

model_drafter_options opts(draft_shape shape, float temp = 1.0f) {
  model_drafter_options o;
  o.shape = shape;
  o.temperature = temp;
  o.top_k = 0;
  return o;
}

std::vector<token_id> prompt() { return {3, 1, 4, 1, 5, 9, 2, 6}; }

// One draft from a fresh request on `draft`.
draft_tree one_draft(mock_batch_model& draft, const model_drafter_options& o, std::int32_t budget,
                     model_drafter_counters* counters = nullptr) {
  model_drafter<mock_batch_model> d(draft, o);
  const auto p = prompt();
  d.begin(1, p);
  auto t = d.draft(1, draft_request{p, budget});
  t.validate();
  if (counters != nullptr) *counters = d.counters();
  d.end(1);
  return t;
}

}  // namespace

TEST_CASE("DySpec's heap draws from the most valuable entry first and runs only expanded nodes", "[drafter]") {
  for (std::uint64_t seed : {1u, 2u, 3u, 4u, 5u}) {
    mock_batch_model draft(4, 16);
    auto o = opts(draft_shape::dyspec);
    o.seed = seed;
    model_drafter_counters c;
    const auto t = one_draft(draft, o, 12, &c);
    INFO("seed " << seed);
    REQUIRE(t.size() == 12);
    std::vector<double> value;
    const auto entry = entry_values(t, value);
    // Each pop adds one node, so node order is pop order: entry values never increase.
    for (std::int32_t c2 = 2; c2 < t.size(); ++c2) CHECK(entry[static_cast<std::size_t>(c2)] <= entry[static_cast<std::size_t>(c2 - 1)] + 1e-12);
    // What is left in the heap is worth no more than the last pop: every leaf, and every node's
    // remaining mass after its children.
    const double last = entry.back();
    for (std::int32_t n = 1; n < t.size(); ++n) {
      if (t.children_drawn_from(n) == nullptr) CHECK(value[static_cast<std::size_t>(n)] <= last + 1e-12);
    }
    // One forward for the context, one per node that was drawn from besides the root.
    std::int64_t expanded = 0;
    for (std::int32_t n = 1; n < t.size(); ++n) expanded += t.children_drawn_from(n) != nullptr;
    CHECK(c.forwards == 1 + expanded);
    CHECK(c.nodes == 11);
  }
}

TEST_CASE("DySpec by levels: one forward per level, nodes by depth, values at least the threshold", "[drafter]") {
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    mock_batch_model draft(4, 16);
    auto o = opts(draft_shape::dyspec_level);
    o.seed = seed;
    o.threshold = 0.05;
    model_drafter_counters c;
    const auto t = one_draft(draft, o, 40, &c);
    INFO("seed " << seed);
    REQUIRE(t.size() <= 40);
    std::vector<double> value;
    const auto entry = entry_values(t, value);
    for (std::int32_t n = 2; n < t.size(); ++n) {
      CHECK(t.depth[static_cast<std::size_t>(n)] >= t.depth[static_cast<std::size_t>(n - 1)]);
      if (t.depth[static_cast<std::size_t>(n)] == t.depth[static_cast<std::size_t>(n - 1)]) {
        CHECK(entry[static_cast<std::size_t>(n)] <= entry[static_cast<std::size_t>(n - 1)] + 1e-12);
      }
    }
    for (std::int32_t n = 1; n < t.size(); ++n) {
      CHECK(entry[static_cast<std::size_t>(n)] >= o.threshold);
      // A node is run (and drawn from) only when its value reached the threshold.
      if (t.children_drawn_from(n) != nullptr) CHECK(value[static_cast<std::size_t>(n)] >= o.threshold);
    }
    CHECK(c.forwards == t.max_depth());  // the context forward, then one per level below the root's children
  }
}

TEST_CASE("chain and k-ary shapes", "[drafter]") {
  mock_batch_model draft(4, 16);
  model_drafter_counters c;
  const auto chain = one_draft(draft, opts(draft_shape::chain), 6, &c);
  REQUIRE(chain.size() == 6);
  for (std::int32_t n = 1; n < 6; ++n) CHECK(chain.parent[static_cast<std::size_t>(n)] == n - 1);
  CHECK(c.forwards == 5);  // context + nodes 1..4; the last node is never run

  auto o = opts(draft_shape::kary);
  o.branching = {3, 2};
  const auto k = one_draft(draft, o, 1 + 3 + 6 + 12, &c);
  REQUIRE(k.size() == 22);
  std::vector<std::int32_t> children(22, 0);
  for (std::int32_t n = 1; n < k.size(); ++n) ++children[static_cast<std::size_t>(k.parent[static_cast<std::size_t>(n)])];
  CHECK(children[0] == 3);
  for (std::int32_t n = 1; n < k.size(); ++n) CHECK(children[static_cast<std::size_t>(n)] == (k.depth[static_cast<std::size_t>(n)] < 3 ? 2 : 0));
  CHECK(c.forwards == 3);  // one per level with children
}

TEST_CASE("argmax drafting at draft temperature 0 is deterministic and one-hot", "[drafter]") {
  mock_batch_model draft(4, 16);
  const auto a = one_draft(draft, opts(draft_shape::chain, 0.0f), 5);
  const auto b = one_draft(draft, opts(draft_shape::chain, 0.0f), 5);
  CHECK(a.tokens == b.tokens);
  for (std::int32_t n = 0; n < 4; ++n) {
    const auto* q = a.children_drawn_from(n);
    REQUIRE(q != nullptr);
    CHECK(q->ids.size() == 1);
  }
}

namespace {

// Wraps a model_drafter and checks, at every draft, that the draft model's committed tokens are the
// context's first n_past tokens and that at most the last two (bonus, an accepted leaf) are missing.
struct checked_drafter {
  model_drafter<mock_batch_model>* inner;
  mock_batch_model* model;
  int checks = 0;
  void begin(request_id id, std::span<const token_id> p) { inner->begin(id, p); }
  draft_tree draft(request_id id, const draft_request& r) {
    auto t = inner->draft(id, r);
    const auto& committed = model->committed(0);
    REQUIRE(committed.size() <= r.context.size());
    CHECK(std::equal(committed.begin(), committed.end(), r.context.begin()));
    CHECK(r.context.size() - committed.size() <= 2);
    ++checks;
    return t;
  }
  void observe(request_id id, const step_outcome& o) { inner->observe(id, o); }
  void end(request_id id) { inner->end(id); }
};

}  // namespace

TEST_CASE("the draft model stays in step with the target, and greedy output equals plain greedy", "[drafter]") {
  mock_batch_model target(4, 16);
  null_drafter ar;
  greedy_rule rule;
  generate_options opt;
  opt.max_new_tokens = 40;
  const auto p = prompt();
  const auto want = generate(target, ar, rule, p, opt).tokens;
  for (const auto shape : {draft_shape::dyspec, draft_shape::dyspec_level, draft_shape::chain, draft_shape::kary}) {
    INFO(to_string(shape));
    // The draft is another mock with the same table: its argmax agrees with the target's, so drafts
    // are accepted and the cache follows accepted paths of several tokens.
    mock_batch_model draft(4, 16);
    model_drafter<mock_batch_model> d(draft, opts(shape, 0.6f));
    checked_drafter c{&d, &draft};
    opt.budget = 8;
    const auto got = generate(target, c, rule, p, opt);
    CHECK(got.tokens == want);
    CHECK(got.stats.mat() > 1.5);
    CHECK(c.checks == got.stats.steps);
  }
}

TEST_CASE("a draft with no room left proposes the root alone", "[drafter]") {
  mock_batch_model draft(4, 16, 12);  // 12 positions: the 8-token prompt leaves room for a few rows
  model_drafter<mock_batch_model> d(draft, opts(draft_shape::chain));
  const auto p = prompt();
  d.begin(1, p);
  const auto t = d.draft(1, draft_request{p, 8});
  CHECK(t.size() == 1);
  d.end(1);
}

TEST_CASE("bad draft options, layer subsets and requests are clear errors", "[drafter]") {
  auto o = opts(draft_shape::dyspec);
  o.temperature = -1;
  CHECK_THROWS_WITH(o.validate(), Catch::Contains("draft temperature"));
  o = opts(draft_shape::kary);
  o.branching = {2, 0};
  CHECK_THROWS_WITH(o.validate(), Catch::Contains("branching"));
  o = opts(draft_shape::dyspec_level);
  o.threshold = 1.5;
  CHECK_THROWS_WITH(o.validate(), Catch::Contains("threshold"));

  mock_batch_model draft(4, 16);
  model_drafter<mock_batch_model> d(draft, opts(draft_shape::chain));
  const auto p = prompt();
  CHECK_THROWS_WITH(d.draft(7, draft_request{p, 4}), Catch::Contains("request 7 has not begun"));
  d.begin(7, p);
  CHECK_THROWS_WITH(d.begin(7, p), Catch::Contains("began twice"));
  d.end(7);

  CHECK(parse_layer_list("first:3") == std::vector<std::int32_t>{0, 1, 2});
  CHECK(parse_layer_list("0-2,5,7-8") == std::vector<std::int32_t>{0, 1, 2, 5, 7, 8});
  CHECK_THROWS_WITH(parse_layer_list("3,1"), Catch::Contains("ascending"));
  CHECK_THROWS_WITH(parse_layer_list("2-x"), Catch::Contains("'x' is not a layer number"));
  CHECK_THROWS_WITH(parse_layer_list("5-2"), Catch::Contains("runs backwards"));
  CHECK_THROWS_WITH(parse_layer_list(""), Catch::Contains("not a layer number"));
}
