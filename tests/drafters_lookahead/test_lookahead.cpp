// Lookahead trie drafter (arXiv 2312.12728): n-gram insertion and counts against a plain map
// reference, hierarchical multi-branch retrieval, depth and budget limits, prompt n-grams forgotten
// at end() while output n-grams persist, eviction under a small cap, bad options, and the decode loop
// on the mock model (lossless; a repeated request is drafted from the first one's output).
#include "../mocks/mock_model.hpp"

#include <specdec/concepts/drafter.hpp>
#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <span>
#include <vector>

#include <catch2/catch.hpp>

using namespace specdec;
using tokens = std::vector<token_id>;

namespace {

lookahead_options options_with(std::int32_t branch_length, std::int32_t decoding_length = 32,
                               std::size_t max_nodes = std::size_t{1} << 16) {
  lookahead_options o;
  o.branch_length = branch_length;
  o.decoding_length = decoding_length;
  o.max_nodes = max_nodes;
  return o;
}

// Reports `generated` to the drafter as verified steps of `chunk` tokens (root-only trees, empty
// logits: the drafter reads only new_tokens and context). `ctx` is the history, extended in place.
void feed(lookahead_trie_drafter& d, tokens& ctx, std::span<const token_id> generated, std::size_t chunk,
          const std::function<void()>& after_step = {}) {
  for (std::size_t i = 0; i < generated.size(); i += chunk) {
    const std::size_t n = std::min(chunk, generated.size() - i);
    const draft_tree tree = draft_tree::root_only(ctx.back());
    acceptance acc;
    acc.path = {0};
    acc.next_token = generated[i + n - 1];
    ctx.insert(ctx.end(), generated.begin() + static_cast<std::ptrdiff_t>(i),
               generated.begin() + static_cast<std::ptrdiff_t>(i + n));
    const std::span<const token_id> fresh(ctx.data() + ctx.size() - n, n);
    d.observe(step_outcome{tree, logits_view{}, acc, fresh, ctx});
    if (after_step) after_step();
  }
}

void run_request(lookahead_trie_drafter& d, const tokens& prompt, const tokens& generated, std::size_t chunk = 1) {
  d.begin(prompt);
  tokens ctx = prompt;
  feed(d, ctx, generated, chunk);
  d.end();
}

// The node of `tree` reached from the root by `path`, or -1.
std::int32_t node_at(const draft_tree& tree, std::initializer_list<token_id> path) {
  std::int32_t node = 0;
  for (token_id t : path) {
    node = tree.find_child(node, t);
    if (node < 0) return -1;
  }
  return node;
}

// Tokens from the root (excluded) down to node i.
tokens path_to(const draft_tree& tree, std::int32_t i) {
  tokens p;
  for (; i > 0; i = tree.parent[static_cast<std::size_t>(i)]) p.push_back(tree.tokens[static_cast<std::size_t>(i)]);
  std::reverse(p.begin(), p.end());
  return p;
}

lookahead_retrieval checked_retrieve(const lookahead_trie_drafter& d, const tokens& ctx, std::int32_t budget) {
  lookahead_retrieval r = d.retrieve(ctx, budget);
  REQUIRE_NOTHROW(r.tree.validate());
  REQUIRE(r.tree.root() == ctx.back());
  REQUIRE(r.tree.size() <= std::max(1, std::min(budget, d.options().decoding_length)));
  REQUIRE(r.tree.max_depth() <= d.options().branch_length);
  return r;
}

// The plain reference: a map from [key, t1, ..., tk] to (input, output) counts.
struct reference_store {
  std::map<tokens, std::pair<std::uint32_t, std::uint32_t>> counts;

  void add(token_id key, std::span<const token_id> seq, bool input) {
    tokens p{key};
    for (token_id t : seq) {
      p.push_back(t);
      auto& c = counts[p];
      ++(input ? c.first : c.second);
    }
  }
  void clear_input() {
    for (auto it = counts.begin(); it != counts.end();) {
      it->second.first = 0;
      it = it->second.second == 0 ? counts.erase(it) : std::next(it);
    }
  }
  // One request: prompt n-grams (input), then output n-grams from the last prompt token on; the
  // tails shorter than len only when the request is finished.
  void request(const tokens& prompt, const tokens& generated, std::size_t len, bool finished) {
    for (std::size_t i = 0; i + 1 < prompt.size(); ++i) {
      add(prompt[i], std::span(prompt).subspan(i + 1, std::min(len, prompt.size() - 1 - i)), true);
    }
    tokens h = prompt;
    h.insert(h.end(), generated.begin(), generated.end());
    for (std::size_t p = prompt.size() - 1; p + 1 < h.size(); ++p) {
      if (p + len < h.size() || finished) add(h[p], std::span(h).subspan(p + 1, std::min(len, h.size() - 1 - p)), false);
    }
  }
  static std::uint64_t score(std::pair<std::uint32_t, std::uint32_t> c) {
    return (static_cast<std::uint64_t>(c.first) << 32) | c.second;
  }
  // Scores of every stored continuation of `prefix`, at most max_depth tokens past it, best first.
  std::vector<std::uint64_t> scores_below(const tokens& prefix, std::size_t max_depth) const {
    std::vector<std::uint64_t> s;
    for (const auto& [path, c] : counts) {
      if (path.size() > prefix.size() && path.size() <= prefix.size() + max_depth &&
          std::equal(prefix.begin(), prefix.end(), path.begin())) {
        s.push_back(score(c));
      }
    }
    std::sort(s.rbegin(), s.rend());
    return s;
  }
};

void require_same_counts(const lookahead_trie_drafter& d, const reference_store& ref) {
  for (const auto& [path, c] : ref.counts) {
    // Input counts live in the open request's own trie, output counts in the shared one.
    const ngram_counts out = d.trie().counts(path[0], std::span(path).subspan(1));
    const ngram_counts in = d.prompt_trie() != nullptr ? d.prompt_trie()->counts(path[0], std::span(path).subspan(1))
                                                       : ngram_counts{};
    REQUIRE((in.found || out.found));
    REQUIRE(in.input == c.first);
    REQUIRE(out.output == c.second);
  }
}

}  // namespace

TEST_CASE("lookahead_trie_drafter satisfies the drafter concept", "[drafter]") {
  STATIC_REQUIRE(drafter<lookahead_trie_drafter>);
}

TEST_CASE("lookahead: bad options throw invalid_argument naming the option", "[drafter]") {
  auto throws_about = [](lookahead_options o, const char* what) {
    try {
      lookahead_trie_drafter d(o);
      FAIL("no exception for " << what);
    } catch (const error& e) {
      CHECK(e.category() == error_category::invalid_argument);
      CHECK_THAT(e.what(), Catch::Contains(what));
    }
  };
  throws_about(options_with(0), "branch_length");
  throws_about(options_with(65), "branch_length");
  throws_about(options_with(8, 0), "decoding_length");
  throws_about(options_with(8, 5000), "decoding_length");
  throws_about(options_with(8, 32, 79), "max_nodes");  // fewer than 8 * (8 + 2)
  CHECK_NOTHROW(lookahead_trie_drafter(options_with(8, 32, 80)));
  CHECK_NOTHROW(lookahead_trie_drafter());

  lookahead_trie_drafter d;
  const tokens bad = {1, -3, 2};
  CHECK_THROWS_AS(d.begin(bad), error);
  CHECK_THROWS_AS(d.warm_up(tokens{1, 1 << 24}), error);
}

TEST_CASE("lookahead: nothing stored or nothing matching gives a root-only tree", "[drafter]") {
  lookahead_trie_drafter d;
  CHECK(checked_retrieve(d, {5}, 32).tree.size() == 1);
  CHECK(checked_retrieve(d, {4, 5}, 32).query_length == 0);
  const tokens empty;
  CHECK(d.draft(draft_request{empty, 32}).size() == 1);  // an empty context is a caller bug, not a crash

  d.begin(tokens{1, 2, 3, 4});
  CHECK(checked_retrieve(d, {9, 7}, 32).tree.size() == 1);
  CHECK(checked_retrieve(d, {9, 4}, 32).tree.size() == 1);  // the last prompt token has no continuation yet
  CHECK(checked_retrieve(d, {1 << 30}, 32).tree.size() == 1);  // ids too large to be keys
  CHECK(checked_retrieve(d, {9, 1}, 1).tree.size() == 1);      // budget 1: the root alone
  CHECK(checked_retrieve(d, {9, 1}, 0).tree.size() == 1);
  CHECK(checked_retrieve(d, {9, 1}, 4).tree.size() == 4);      // 1 -> 2 -> 3 -> 4
  d.end();
  CHECK(d.n_nodes() == 0);  // prompt-only n-grams are deleted, not just zeroed
}

TEST_CASE("lookahead: prompt n-grams come back as a multi-branch tree, best branch first", "[drafter]") {
  lookahead_trie_drafter d(options_with(3));
  d.begin(tokens{1, 2, 3, 4, 1, 2, 5, 6, 1, 7, 8, 9});
  const auto r = checked_retrieve(d, {0, 1}, 32);
  CHECK(r.query_length == 1);  // nothing is keyed by 0: the root's own trie
  const draft_tree& t = r.tree;
  REQUIRE(t.size() >= 3);
  CHECK(t.tokens[1] == 2);  // seen twice after 1, so taken first
  CHECK(t.find_child(0, 7) >= 0);
  CHECK(node_at(t, {2, 3, 4}) >= 0);
  CHECK(node_at(t, {2, 5, 6}) >= 0);
  CHECK(node_at(t, {7, 8, 9}) >= 0);
  CHECK(node_at(t, {2, 3, 4, 1}) < 0);  // deeper than branch_length
  CHECK(t.max_depth() == 3);
  // "7 8" -> 9 is 1 node, fewer than min(branch_length, 31); trie[8] has no more, so it stays.
  const auto narrow = checked_retrieve(d, {7, 8}, 32);
  CHECK(narrow.query_length == 2);
  CHECK(narrow.tree.tokens == tokens{8, 9});
}

TEST_CASE("lookahead: depth, budget and decoding_length limits", "[drafter]") {
  tokens prompt;
  for (int rep = 0; rep < 3; ++rep) {
    for (token_id t = 1; t <= 20; ++t) prompt.push_back(t + (rep == 1 && t % 3 == 0 ? 100 : 0));
  }
  // trie[1] holds 2 -> {3 4 5 6, 103 4 5 106} within depth 5: 9 nodes.
  lookahead_trie_drafter full(options_with(5, 32));
  full.begin(prompt);
  const auto all = checked_retrieve(full, {0, 1}, 32);
  CHECK(all.tree.size() == 10);
  CHECK(all.tree.max_depth() == 5);  // the 6th token after 1 is stored but deeper than branch_length
  REQUIRE(full.prompt_trie() != nullptr);
  CHECK(full.prompt_trie()->counts(1, tokens{2, 3, 4, 5, 6, 7}).found);

  lookahead_trie_drafter d(options_with(5, 8));
  d.begin(prompt);
  CHECK(checked_retrieve(d, {0, 1}, 100).tree.size() == 8);  // clamped to decoding_length
  for (std::int32_t budget = 1; budget <= 8; ++budget) {
    CHECK(checked_retrieve(d, {0, 1}, budget).tree.size() == budget);
  }
  CHECK(d.draft(draft_request{prompt, 7}).size() <= 7);
}

TEST_CASE("lookahead: hierarchical retrieval, 2-token query first, 1-token fallback", "[drafter]") {
  lookahead_trie_drafter d(options_with(4));
  d.warm_up(tokens{10, 11, 12, 13, 14, 15});
  d.warm_up(tokens{40, 11, 50, 51, 52, 53});
  d.warm_up(tokens{41, 11, 60, 61});

  const auto a = checked_retrieve(d, {10, 11}, 32);  // trie[10] -> 11 holds 4 nodes: enough
  CHECK(a.query_length == 2);
  CHECK(a.tree.tokens == tokens{11, 12, 13, 14, 15});
  const auto b = checked_retrieve(d, {40, 11}, 32);
  CHECK(b.query_length == 2);
  CHECK(b.tree.tokens == tokens{11, 50, 51, 52, 53});

  const auto c = checked_retrieve(d, {41, 11}, 32);  // trie[41] -> 11 holds 2 nodes: fall back
  CHECK(c.query_length == 1);
  CHECK(c.tree.size() == 11);  // all of trie[11]: three branches
  CHECK(node_at(c.tree, {12, 13, 14, 15}) >= 0);
  CHECK(node_at(c.tree, {50, 51, 52, 53}) >= 0);
  CHECK(node_at(c.tree, {60, 61}) >= 0);
  CHECK(checked_retrieve(d, {99, 11}, 32).query_length == 1);  // no trie[99] at all

  const auto small = checked_retrieve(d, {41, 11}, 3);  // 2 nodes fill a budget of 3: no fallback
  CHECK(small.query_length == 2);
  CHECK(small.tree.tokens == tokens{11, 60, 61});
}

TEST_CASE("lookahead: prompt n-grams rank first, and only for their own request", "[drafter]") {
  lookahead_trie_drafter d(options_with(3));
  for (int i = 0; i < 10; ++i) d.warm_up(tokens{1, 2, 3});  // output count 10
  CHECK(d.trie().counts(1, tokens{2, 3}).output == 10);

  d.begin(tokens{1, 4, 5});
  CHECK(checked_retrieve(d, {9, 1}, 2).tree.tokens == tokens{1, 4});
  CHECK(checked_retrieve(d, {9, 1}, 3).tree.tokens == tokens{1, 4, 5});  // prompt path before output
  const auto all = checked_retrieve(d, {9, 1}, 32).tree;
  CHECK(all.tokens == tokens{1, 4, 5, 2, 3});
  d.end();
  CHECK(checked_retrieve(d, {9, 1}, 2).tree.tokens == tokens{1, 2});
  CHECK_FALSE(d.trie().counts(1, tokens{4}).found);
}

TEST_CASE("lookahead: observe stores each position once, whatever the step sizes", "[drafter]") {
  const tokens prompt = {9};
  const tokens gen = {1, 2, 3, 1, 2, 3, 1, 2, 3};
  for (std::size_t chunk : {1, 2, 4, 9}) {
    lookahead_trie_drafter d(options_with(2));
    d.begin(prompt);
    tokens ctx = prompt;
    feed(d, ctx, gen, chunk);
    // Full 3-token n-grams so far: keys at positions 0..6 of [9 1 2 3 1 2 3 1 2 3].
    CHECK(d.trie().counts(9, tokens{1, 2, 3}).output == 1);
    CHECK(d.trie().counts(1, tokens{2, 3, 1}).output == 2);
    CHECK(d.trie().counts(1, tokens{2}).output == 2);
    CHECK(d.trie().counts(3, tokens{1, 2, 3}).output == 2);
    d.end();  // tails: 1 -> 2 3, 2 -> 3
    CHECK(d.trie().counts(1, tokens{2}).output == 3);
    CHECK(d.trie().counts(2, tokens{3}).output == 3);
    CHECK(d.trie().counts(1, tokens{2, 3, 1}).output == 2);
    CHECK_FALSE(d.trie().counts(9, tokens{1, 2, 3, 1}).found);
  }
}

TEST_CASE("lookahead: prompt forgotten after end(), output kept for the next request", "[drafter]") {
  lookahead_trie_drafter d(options_with(3));
  const tokens p1 = {20, 21, 22, 23, 24};
  const tokens g1 = {30, 31, 32, 33, 34, 35};
  d.begin(p1);
  CHECK(node_at(checked_retrieve(d, {99, 20}, 32).tree, {21, 22, 23}) >= 0);
  tokens ctx = p1;
  feed(d, ctx, g1, 2);
  CHECK(node_at(checked_retrieve(d, {99, 30}, 32).tree, {31, 32, 33}) >= 0);  // usable within the request
  d.end();

  d.begin(tokens{50, 51, 52});
  const auto forgotten = checked_retrieve(d, {99, 20}, 32);
  CHECK(forgotten.tree.size() == 1);
  CHECK(forgotten.query_length == 0);
  CHECK_FALSE(d.trie().counts(20, tokens{21}).found);
  const auto kept = checked_retrieve(d, {99, 30}, 32);
  CHECK(kept.query_length == 1);
  CHECK(node_at(kept.tree, {31, 32, 33}) >= 0);
  CHECK(d.trie().counts(24, tokens{30, 31, 32}).output == 1);  // the last prompt token keys the output
  CHECK(checked_retrieve(d, {24, 30}, 32).query_length == 2);
  d.end();
}

TEST_CASE("lookahead: counts and drafts equal a plain map reference on random streams", "[drafter]") {
  constexpr std::int32_t branch_length = 3;
  lookahead_trie_drafter d(options_with(branch_length, 16));
  reference_store ref;
  std::mt19937 rng(1234);
  auto token = [&] { return static_cast<token_id>(rng() % 7); };

  for (int request = 0; request < 6; ++request) {
    tokens prompt(20), gen(30);
    for (auto& t : prompt) t = token();
    for (auto& t : gen) t = token();
    d.begin(prompt);
    tokens ctx = prompt;
    feed(d, ctx, gen, 1 + rng() % 5);

    reference_store now = ref;
    now.request(prompt, gen, branch_length + 1, false);
    require_same_counts(d, now);

    // Every draft: real n-grams, siblings best first, and the scores of the best nodes available.
    for (token_id a = 0; a < 7; ++a) {
      for (token_id b = 0; b < 7; ++b) {
        for (std::int32_t budget : {2, 5, 16}) {
          const auto r = checked_retrieve(d, {a, b}, budget);
          const auto two = now.scores_below({a, b}, branch_length);
          const auto one = now.scores_below({b}, branch_length);
          const std::size_t k2 = std::min<std::size_t>(two.size(), static_cast<std::size_t>(budget - 1));
          const std::size_t k1 = std::min<std::size_t>(one.size(), static_cast<std::size_t>(budget - 1));
          const bool use_two = k2 >= std::min<std::size_t>(branch_length, static_cast<std::size_t>(budget - 1)) || k2 >= k1;
          const auto& expect = use_two ? two : one;
          const tokens prefix = use_two ? tokens{a, b} : tokens{b};
          REQUIRE(static_cast<std::size_t>(r.tree.size() - 1) == (use_two ? k2 : k1));
          std::vector<std::uint64_t> got;
          for (std::int32_t i = 1; i < r.tree.size(); ++i) {
            tokens path = prefix;
            const tokens tail = path_to(r.tree, i);
            path.insert(path.end(), tail.begin(), tail.end());
            const auto it = now.counts.find(path);
            REQUIRE(it != now.counts.end());
            got.push_back(reference_store::score(it->second));
          }
          // Siblings in descending score.
          for (std::int32_t i = 1; i < r.tree.size(); ++i) {
            for (std::int32_t j = 1; j < i; ++j) {
              if (r.tree.parent[static_cast<std::size_t>(j)] == r.tree.parent[static_cast<std::size_t>(i)]) {
                REQUIRE(got[static_cast<std::size_t>(j - 1)] >= got[static_cast<std::size_t>(i - 1)]);
              }
            }
          }
          std::sort(got.rbegin(), got.rend());
          REQUIRE(std::equal(got.begin(), got.end(), expect.begin()));
        }
      }
    }
    d.end();
    ref.request(prompt, gen, branch_length + 1, true);
    ref.clear_input();
    require_same_counts(d, ref);
    std::size_t n_ref_nodes = ref.counts.size();  // plus one root per key
    std::map<token_id, int> keys;
    for (const auto& [path, c] : ref.counts) keys[path[0]] = 1;
    CHECK(d.n_nodes() == n_ref_nodes + keys.size());
  }
}

TEST_CASE("lookahead: eviction keeps frequent n-grams, drops rare ones, stays under the cap", "[drafter]") {
  constexpr std::size_t cap = 256;
  lookahead_trie_drafter d(options_with(2, 16, cap));
  tokens gen;
  for (token_id i = 0; i < 300; ++i) {
    for (token_id t : {1, 2, 3}) gen.push_back(t);
    for (token_id k = 0; k < 3; ++k) gen.push_back(1000 + 3 * i + k);  // seen once each
  }
  d.begin(tokens{7});
  tokens ctx = {7};
  std::size_t most = 0;
  feed(d, ctx, gen, 3, [&] { most = std::max(most, d.n_nodes()); });
  d.end();

  CHECK(most <= cap);
  CHECK(d.n_nodes() <= cap);
  CHECK(d.trie().n_evictions() >= 3);
  CHECK(d.trie().memory_bytes() <= cap * sizeof(ngram_node) + 16 * 1024);  // pool + key table (ids < 2000)
  const ngram_counts frequent = d.trie().counts(1, tokens{2, 3});
  CHECK(frequent.found);
  CHECK(frequent.output >= 2);
  CHECK_FALSE(d.trie().counts(1000, tokens{1001}).found);  // an early rare n-gram is gone
  const auto r = checked_retrieve(d, {3, 1}, 16);
  CHECK(node_at(r.tree, {2, 3}) >= 0);
}

TEST_CASE("lookahead: a prompt larger than the cap is cut short and released at end()", "[drafter]") {
  constexpr std::size_t cap = 100;
  lookahead_trie_drafter d(options_with(2, 16, cap));
  d.warm_up(tokens{1, 2, 3, 1, 2, 3});
  tokens prompt;
  for (token_id t = 100; t < 300; ++t) prompt.push_back(t);  // 200 distinct tokens: ~600 nodes
  d.begin(prompt);
  CHECK(d.n_nodes() <= cap);
  CHECK(checked_retrieve(d, {99, 100}, 16).tree.size() > 1);  // its beginning is stored
  tokens ctx = prompt;
  feed(d, ctx, tokens{5, 6, 7, 8, 9}, 1);
  CHECK(d.n_nodes() <= cap);
  d.end();
  CHECK(d.n_nodes() <= cap);
  d.begin(tokens{1, 2, 3});  // room again after the prompt's counts are dropped
  CHECK(checked_retrieve(d, {0, 1}, 16).tree.size() >= 3);
  d.end();
}

TEST_CASE("lookahead: drafts are deterministic given the same history", "[drafter]") {
  lookahead_trie_drafter a(options_with(4, 24, 512)), b(options_with(4, 24, 512));
  std::mt19937 rng(7);
  for (int request = 0; request < 5; ++request) {
    tokens prompt(40), gen(80);
    for (auto& t : prompt) t = static_cast<token_id>(rng() % 30);
    for (auto& t : gen) t = static_cast<token_id>(rng() % 30);
    run_request(a, prompt, gen, 3);
    run_request(b, prompt, gen, 3);
  }
  for (token_id x = 0; x < 30; ++x) {
    const tokens ctx = {static_cast<token_id>((x * 7) % 30), x};
    const draft_tree ta = a.draft(draft_request{ctx, 24}), tb = b.draft(draft_request{ctx, 24});
    CHECK(ta.tokens == tb.tokens);
    CHECK(ta.parent == tb.parent);
  }
}

TEST_CASE("lookahead: the decode loop stays lossless and drafts a repeated request from its output", "[drafter]") {
  test::mock_model m;
  lookahead_trie_drafter d(options_with(4, 16));
  greedy_rule rule;
  const tokens prompt = {3, 7, 1};
  generate_options opt;
  opt.max_new_tokens = 60;
  opt.budget = 16;
  const auto first = generate(m, d, rule, prompt, opt);
  CHECK(first.tokens == m.greedy(prompt, 60));
  const auto second = generate(m, d, rule, prompt, opt);
  CHECK(second.tokens == m.greedy(prompt, 60));
  CHECK(second.stats.mat() > first.stats.mat());
  CHECK(second.stats.mat() > 3.0);
  const tokens other = {5, 2};
  CHECK(generate(m, d, rule, other, opt).tokens == m.greedy(other, 60));
}
