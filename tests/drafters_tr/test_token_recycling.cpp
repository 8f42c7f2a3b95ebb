// Token Recycling drafter (arXiv 2408.08696): the one-pass top-k against its reference, the tree
// templates (paper preset, greedy generator, truncation), drafting from hand-made matrices
// (duplicates, cold start, budgets), the matrix update from hand-made logits, and save/load.
#include <catch2/catch.hpp>

#include <specdec/concepts/drafter.hpp>
#include <specdec/core/topk.hpp>
#include <specdec/drafters/token_recycling.hpp>
#include <specdec/drafters/tree_template.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace {

using specdec::token_id;
using specdec::token_recycling_drafter;
using specdec::tree_template;

std::uint64_t next_random(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

std::vector<float> random_floats(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  std::uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) x = static_cast<float>(static_cast<std::int32_t>(next_random(s) >> 32)) * 0x1p-31f;
  return v;
}

// Sets row `token` through observe: a one-node tree whose logits rank `ids` first, in order.
void set_row(token_recycling_drafter& d, token_id token, const std::vector<token_id>& ids) {
  std::vector<float> logits(static_cast<std::size_t>(d.n_vocab()), 0.0f);
  for (std::size_t r = 0; r < ids.size(); ++r) logits[static_cast<std::size_t>(ids[r])] = 100.0f - static_cast<float>(r);
  const auto tree = specdec::draft_tree::root_only(token);
  const specdec::acceptance accepted{{0}, 0};
  const std::vector<token_id> none;
  d.observe({tree, {logits.data(), 1, d.n_vocab()}, accepted, none, none});
}

std::filesystem::path temp_file(const std::string& name) {
  const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
  return std::filesystem::temp_directory_path() / ("specdec_tr_" + name + "_" + std::to_string(stamp) + ".bin");
}

double path_probability(const std::vector<std::int32_t>& path, const std::vector<double>& p) {
  double prob = 1.0;
  for (auto r : path) prob *= p[static_cast<std::size_t>(r)];
  return prob;
}

double template_value(const tree_template& t, const std::vector<double>& p) {
  double sum = 0.0;
  for (std::int32_t i = 1; i < t.size(); ++i) sum += path_probability(t.path(i), p);
  return sum;
}

// Exhaustive search: the best sum of path probabilities over all trees of n nodes with k ranks.
double best_value(std::int32_t n, const std::vector<double>& p) {
  using path_set = std::set<std::vector<std::int32_t>>;
  std::set<path_set> seen;
  double best = 0.0;
  auto grow = [&](auto&& self, const path_set& tree) -> void {
    if (!seen.insert(tree).second) return;
    if (static_cast<std::int32_t>(tree.size()) == n) {
      double sum = 0.0;
      for (const auto& path : tree) sum += path_probability(path, p);
      best = std::max(best, sum);
      return;
    }
    std::vector<std::vector<std::int32_t>> parents{{}};
    parents.insert(parents.end(), tree.begin(), tree.end());
    for (const auto& parent : parents) {
      for (std::int32_t r = 0; r < static_cast<std::int32_t>(p.size()); ++r) {
        auto child = parent;
        child.push_back(r);
        if (tree.count(child)) continue;
        auto bigger = tree;
        bigger.insert(child);
        self(self, bigger);
      }
    }
  };
  grow(grow, {});
  return best;
}

}  // namespace

TEST_CASE("token_recycling_drafter satisfies the drafter concept", "[drafter]") {
  STATIC_REQUIRE(specdec::drafter<token_recycling_drafter>);
}

TEST_CASE("top_k returns the reference ids: descending, ties to the lower id, NaN as -inf", "[drafter]") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::uint64_t s = 7;
  for (std::size_t n : {1u, 5u, 8u, 63u, 64u, 65u, 200u, 1000u, 49152u}) {
    for (std::int32_t k : {1, 3, 8, 16, 64}) {
      if (static_cast<std::size_t>(k) > n) continue;
      for (int kind = 0; kind < 4; ++kind) {
        std::vector<float> row = random_floats(n, n * 31 + static_cast<std::size_t>(k) + static_cast<std::size_t>(kind));
        if (kind == 1) {  // many ties
          for (auto& x : row) x = static_cast<float>(next_random(s) % 5);
        } else if (kind == 2) {  // NaN and infinities sprinkled in, including the first k
          for (std::size_t i = 0; i < n; i += 3) row[i] = (i % 2) ? nan : -inf;
          row[n / 2] = inf;
        } else if (kind == 3) {  // ascending: every element enters the buffer
          for (std::size_t i = 0; i < n; ++i) row[i] = static_cast<float>(i);
        }
        std::vector<std::int32_t> want(static_cast<std::size_t>(k)), fast(want.size()), portable(want.size());
        specdec::top_k_reference(row, want);
        specdec::top_k(row, fast);
        specdec::top_k_portable(row, portable);
        INFO("n " << n << " k " << k << " kind " << kind);
        REQUIRE(fast == want);
        REQUIRE(portable == want);
      }
    }
  }
  const std::vector<float> ties = {1.0f, 3.0f, 3.0f, 2.0f, 3.0f};
  std::vector<std::int32_t> ids(3);
  specdec::top_k(ties, ids);
  CHECK(ids == std::vector<std::int32_t>{1, 2, 4});
}

TEST_CASE("the 2.2.2 preset has the paper's shape", "[drafter]") {
  const tree_template t = specdec::tree_template_preset("2.2.2");
  t.validate();
  CHECK(t.size() == 81);
  CHECK(t.depth_counts() == std::vector<std::int32_t>{8, 21, 25, 15, 8, 3});
  std::map<std::vector<std::int32_t>, int> n_children;
  std::int32_t n_leaves = 0;
  for (std::int32_t i = 1; i < t.size(); ++i) ++n_children[t.path(t.parent[static_cast<std::size_t>(i)])];
  for (std::int32_t i = 1; i < t.size(); ++i) n_leaves += n_children.count(t.path(i)) ? 0 : 1;
  CHECK(n_children[{}] == 8);
  CHECK(n_children[{0}] == 8);
  CHECK(n_children[{1}] == 4);
  CHECK(n_children[{2}] == 3);
  CHECK(n_children[{3}] == 2);
  for (std::int32_t r = 4; r < 8; ++r) CHECK(n_children[{r}] == 1);
  CHECK(n_children[{0, 0}] == 8);
  CHECK(n_children[{0, 0, 0}] == 5);
  CHECK(n_leaves == 40);
  // Breadth-first: depth, then parent, never decrease.
  for (std::int32_t i = 2; i < t.size(); ++i) {
    const auto u = static_cast<std::size_t>(i);
    CHECK(t.depth[u] >= t.depth[u - 1]);
    if (t.depth[u] == t.depth[u - 1]) CHECK(t.parent[u] >= t.parent[u - 1]);
  }
  CHECK(t.path(1) == std::vector<std::int32_t>{0});
  CHECK(t.path(9) == std::vector<std::int32_t>{0, 0});
  CHECK(t.path(80) == std::vector<std::int32_t>{0, 0, 0, 1, 0, 0});
}

TEST_CASE("make_template is optimal and its truncations are too", "[drafter]") {
  for (const std::vector<double>& p : {std::vector<double>{0.5, 0.3, 0.1}, std::vector<double>{0.2, 0.6, 0.15}}) {
    for (std::int32_t n = 1; n <= 6; ++n) {
      const tree_template t = specdec::make_template(n, p);
      INFO("n " << n << " p[0] " << p[0]);
      REQUIRE(t.n_draft() == n);
      CHECK(template_value(t, p) == Approx(best_value(n, p)).epsilon(1e-12));
    }
  }
  const std::vector<double> p(specdec::default_rank_acceptance.begin(), specdec::default_rank_acceptance.end());
  const tree_template big = specdec::make_template(48, p);
  for (std::int32_t b = 1; b <= big.size(); ++b) {
    double kept = 0.0;
    for (std::int32_t i = 1; i < big.size(); ++i) {
      if (big.priority[static_cast<std::size_t>(i)] < b) kept += path_probability(big.path(i), p);
    }
    CHECK(kept == Approx(template_value(specdec::make_template(b - 1, p), p)).epsilon(1e-12));
  }
  CHECK(specdec::make_template(0).size() == 1);
  CHECK_THROWS_AS(specdec::make_template(-1), specdec::error);
  CHECK_THROWS_AS((specdec::make_template(4, std::vector<double>{0.5, 1.5})), specdec::error);
}

TEST_CASE("tree templates reject malformed rank paths", "[drafter]") {
  using paths = std::vector<std::vector<std::int32_t>>;
  CHECK_THROWS_WITH((tree_template::from_rank_paths(paths{{0}, {1, 0, 0}})), Catch::Contains("no parent path [1,0]"));
  CHECK_THROWS_WITH((tree_template::from_rank_paths(paths{{0}, {0}})), Catch::Contains("listed twice"));
  CHECK_THROWS_AS((tree_template::from_rank_paths(paths{{0}, {-1}})), specdec::error);
  const tree_template t = tree_template::from_rank_paths(paths{{1, 0}, {0}, {1}});
  CHECK(t.path(1) == std::vector<std::int32_t>{0});
  CHECK(t.path(2) == std::vector<std::int32_t>{1});
  CHECK(t.path(3) == std::vector<std::int32_t>{1, 0});
}

TEST_CASE("presets by name; an unknown name lists the valid ones", "[drafter]") {
  for (auto name : specdec::tree_template_preset_names) {
    CHECK_NOTHROW(token_recycling_drafter(64, {std::string(name), 8}));
  }
  CHECK(specdec::tree_template_preset("tr-24").n_draft() == 24);
  CHECK(specdec::tree_template_preset("tr-5", 2).max_rank() <= 1);
  for (const char* bad : {"tr-0", "tr-", "tr-x", "tr-024", "tr-99999", "2.2", "eagle"}) {
    INFO(bad);
    CHECK_THROWS_WITH(specdec::tree_template_preset(bad), Catch::Contains("valid: 2.2.2, tr-8, tr-16") && Catch::Contains(bad));
  }
  CHECK_THROWS_WITH((token_recycling_drafter(64, {"2.2.2", 4})), Catch::Contains("rank 7 but k is 4"));
  CHECK_THROWS_AS((token_recycling_drafter(4, {"tr-8", 8})), specdec::error);
  CHECK_THROWS_AS((token_recycling_drafter(64, {"tr-8", 0})), specdec::error);
}

TEST_CASE("observe overwrites the rows of every node, rejected ones too, last node wins", "[drafter]") {
  constexpr std::int32_t n_vocab = 12;
  token_recycling_drafter d(n_vocab, {"tr-8", 3});
  //   node  0     1     2     3
  //   token 5  ── 7  ── 9  ── 7       accepted: 5, 7; nodes 2 and 3 rejected; token 7 twice
  specdec::draft_tree tree = specdec::draft_tree::root_only(5);
  tree.add(0, 7);
  tree.add(1, 9);
  tree.add(2, 7);
  tree.validate();
  std::vector<float> logits(4 * n_vocab, 0.0f);  // [4, n_vocab]
  auto set = [&](int row, std::vector<std::pair<int, float>> values) {
    for (auto [id, v] : values) logits[static_cast<std::size_t>(row * n_vocab + id)] = v;
  };
  set(0, {{3, 5.0f}, {1, 4.0f}, {11, 3.0f}});
  set(1, {{2, 9.0f}, {4, 9.0f}, {0, -1.0f}});  // would give {2, 4, 1}, but node 3 holds token 7 too
  set(2, {{10, 1.0f}, {8, 2.0f}, {6, 3.0f}});
  set(3, {{1, 7.0f}, {2, 6.0f}, {3, 5.0f}});
  const specdec::acceptance accepted{{0, 1}, 2};
  const std::vector<token_id> new_tokens{7, 2};
  const std::vector<token_id> context{1, 5, 7, 2};
  d.observe({tree, {logits.data(), 4, n_vocab}, accepted, new_tokens, context});
  CHECK(std::vector<token_id>(d.row(5).begin(), d.row(5).end()) == std::vector<token_id>{3, 1, 11});
  CHECK(std::vector<token_id>(d.row(9).begin(), d.row(9).end()) == std::vector<token_id>{6, 8, 10});
  CHECK(std::vector<token_id>(d.row(7).begin(), d.row(7).end()) == std::vector<token_id>{1, 2, 3});  // node 3, not node 1
  CHECK(std::vector<token_id>(d.row(2).begin(), d.row(2).end()) == std::vector<token_id>{0, 0, 0});  // bonus: untouched
  // Overwritten, not merged.
  std::vector<float> again(n_vocab, 0.0f);
  again[4] = 1.0f;
  const auto root_only = specdec::draft_tree::root_only(5);
  d.observe({root_only, {again.data(), 1, n_vocab}, specdec::acceptance{{0}, 4}, new_tokens, context});
  CHECK(std::vector<token_id>(d.row(5).begin(), d.row(5).end()) == std::vector<token_id>{4, 0, 1});
  // Hot start: begin/end keep the matrix.
  d.end();
  d.begin(context);
  CHECK(d.row(9)[0] == 6);
  d.reset();
  CHECK(d.row(9)[0] == 0);
}

TEST_CASE("draft expands the template breadth-first and drops duplicate siblings with their subtrees", "[drafter]") {
  using paths = std::vector<std::vector<std::int32_t>>;
  const tree_template t = tree_template::from_rank_paths(paths{{0}, {1}, {2}, {0, 0}, {1, 0}, {1, 1}, {2, 0}});
  token_recycling_drafter d(32, t, 3);
  set_row(d, 1, {10, 11});  // {10, 11, 0}: the remaining zeros tie and go to the lowest id
  set_row(d, 10, {12, 13, 14});
  set_row(d, 11, {15, 16, 17});
  const std::vector<token_id> context{3, 1};
  auto tree = d.draft({context, 100});
  tree.validate();
  //   root 1 ─┬─ [0] 10 ── [0,0] 12
  //           ├─ [1] 11 ─┬─ [1,0] 15
  //           │          └─ [1,1] 16
  //           └─ [2] 0  ── [2,0] 0      (row 0 is cold)
  CHECK(tree.tokens == std::vector<token_id>{1, 10, 11, 0, 12, 15, 16, 0});
  CHECK(tree.parent == std::vector<std::int32_t>{-1, 0, 0, 0, 1, 2, 2, 3});
  CHECK(tree.depth == std::vector<std::int32_t>{0, 1, 1, 1, 2, 2, 2, 2});

  // Row 1 = {10, 10, 11} (observe never writes a repeat, so patch a saved file): [1] repeats [0]
  // and goes with [1,0] and [1,1], which would have been 12 and 13.
  const auto file = temp_file("dup");
  d.save(file);
  {
    std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
    const char row1[12] = {10, 0, 0, 0, 10, 0, 0, 0, 11, 0, 0, 0};  // little-endian int32s
    f.seekp(16 + 1 * 3 * 4);
    f.write(row1, sizeof row1);
  }
  d.load(file);
  std::filesystem::remove(file);
  REQUIRE(std::vector<token_id>(d.row(1).begin(), d.row(1).end()) == std::vector<token_id>{10, 10, 11});
  tree = d.draft({context, 100});
  tree.validate();
  //   root 1 ─┬─ [0] 10 ── [0,0] 12
  //           └─ [2] 11 ── [2,0] 15
  CHECK(tree.tokens == std::vector<token_id>{1, 10, 11, 12, 15});
  CHECK(tree.parent == std::vector<std::int32_t>{-1, 0, 0, 1, 2});
}

TEST_CASE("a cold matrix gives a small valid tree: the all-zero chain", "[drafter]") {
  token_recycling_drafter d(100, {"2.2.2", 8});
  const std::vector<token_id> context{42};
  const auto tree = d.draft({context, 81});
  tree.validate();
  // Ranks 1..7 of a cold row repeat rank 0, so only the rank-0 chain survives: depth 6 in 2.2.2.
  CHECK(tree.tokens == std::vector<token_id>{42, 0, 0, 0, 0, 0, 0});
  CHECK(tree.max_depth() == 6);
  CHECK(d.draft({context, 1}).size() == 1);
  const std::vector<token_id> bad_root{100};
  CHECK(d.draft({bad_root, 81}).size() == 1);
}

TEST_CASE("budgets truncate by priority and always leave a valid tree", "[drafter]") {
  constexpr std::int32_t n_vocab = 4096;
  for (const char* preset : {"2.2.2", "tr-48"}) {
    token_recycling_drafter d(n_vocab, {preset, 8});
    // Warm every row with distinct pseudo-random candidates, so no sibling repeats.
    std::uint64_t s = 3;
    for (token_id v = 0; v < n_vocab; ++v) {
      std::vector<token_id> ids;
      while (ids.size() < 8) {
        const auto id = static_cast<token_id>(next_random(s) % n_vocab);
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
      }
      set_row(d, v, ids);
    }
    const std::vector<token_id> context{7, 8, 9};
    const auto full = d.draft({context, 1000});
    full.validate();
    CHECK(full.size() == d.tree().size());
    CHECK(full.root() == 9);
    for (std::int32_t budget = 1; budget <= d.tree().size() + 1; ++budget) {
      const auto tree = d.draft({context, budget});
      INFO(preset << " budget " << budget);
      REQUIRE_NOTHROW(tree.validate());
      CHECK(tree.size() == std::min(budget, d.tree().size()));
      for (std::int32_t i = 2; i < tree.size(); ++i) CHECK(tree.depth[static_cast<std::size_t>(i)] >= tree.depth[static_cast<std::size_t>(i - 1)]);
    }
    CHECK(d.draft({context, 2}).tokens == std::vector<token_id>{9, d.row(9)[0]});
    CHECK(d.draft({context, 3}).tokens == std::vector<token_id>{9, d.row(9)[0], d.row(d.row(9)[0])[0]});
  }
}

TEST_CASE("save/load round trip and every bad file", "[drafter]") {
  constexpr std::int32_t n_vocab = 50;
  token_recycling_drafter d(n_vocab, {"tr-8", 4});
  for (token_id v = 0; v < n_vocab; ++v) set_row(d, v, {(v * 7 + 1) % n_vocab, (v * 3 + 2) % n_vocab});
  const auto file = temp_file("roundtrip");
  d.save(file);
  CHECK(std::filesystem::file_size(file) == 16u + 4u * n_vocab * 4u);
  token_recycling_drafter e(n_vocab, {"tr-8", 4});
  e.load(file);
  CHECK(std::vector<token_id>(e.adjacency().begin(), e.adjacency().end()) ==
        std::vector<token_id>(d.adjacency().begin(), d.adjacency().end()));
  const std::vector<token_id> context{3};
  CHECK(e.draft({context, 9}).tokens == d.draft({context, 9}).tokens);

  std::ifstream in(file, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  auto expect_error = [&](const std::string& bytes, specdec::error_category category, const std::string& what) {
    const auto bad = temp_file("bad");
    std::ofstream(bad, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    token_recycling_drafter f(n_vocab, {"tr-8", 4});
    set_row(f, 0, {5});
    INFO(what);
    try {
      f.load(bad);
      FAIL("no error");
    } catch (const specdec::error& err) {
      CHECK(err.category() == category);
      CHECK_THAT(err.what(), Catch::Contains(what) && Catch::Contains(bad.filename().string()));
    }
    CHECK(f.row(0)[0] == 5);  // unchanged
    std::filesystem::remove(bad);
  };
  auto patch_u32 = [&](std::size_t offset, std::uint32_t v) {
    std::string s = good;
    for (int i = 0; i < 4; ++i) s[offset + static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
    return s;
  };
  expect_error("SDT", specdec::error_category::format, "truncated header");
  expect_error("GGUF" + good.substr(4), specdec::error_category::format, "bad magic");
  expect_error(patch_u32(4, 2), specdec::error_category::unsupported, "version 2");
  expect_error(patch_u32(8, 51), specdec::error_category::invalid_argument, "n_vocab 51");
  expect_error(patch_u32(12, 8), specdec::error_category::invalid_argument, "k 8");
  expect_error(good.substr(0, good.size() - 1), specdec::error_category::format, "truncated matrix");
  expect_error(good.substr(0, 16), specdec::error_category::format, "truncated matrix (0 of 800 bytes)");
  expect_error(good + "x", specdec::error_category::format, "trailing bytes");
  expect_error(patch_u32(16 + 4 * 17, 50), specdec::error_category::format, "token id 50 at row 4");
  expect_error(patch_u32(16, 0xFFFFFFFFu), specdec::error_category::format, "token id -1 at row 0");
  token_recycling_drafter g(n_vocab, {"tr-8", 4});
  CHECK_THROWS_WITH(g.load(file.string() + ".missing"), Catch::Contains("cannot open") && Catch::Contains(".missing"));
  CHECK_THROWS_AS(g.save(std::filesystem::path("/nonexistent-dir/x.bin")), specdec::error);
  std::filesystem::remove(file);
}

TEST_CASE("the matrix fits in 2 MB at n_vocab 49152, k 8", "[drafter]") {
  token_recycling_drafter d(49152, {"2.2.2", 8});
  CHECK(d.memory_bytes() >= 49152u * 8u * 4u);
  CHECK(d.memory_bytes() < 2'000'000u);
  CHECK(d.adjacency().size() == 49152u * 8u);
}
