// tree_template: the static shape of a Token Recycling draft tree (arXiv 2408.08696), written as
// rank paths. Path [0, 2] means "the root token's rank-0 candidate, then that token's rank-2
// candidate". Nodes are in breadth-first order (by depth, then parent, then rank), so any node's
// parent comes first and a drafter can fill the tokens level by level. Presets: the paper's "2.2.2"
// tree (80 nodes, reconstructed from its depth profile) and "tr-N", the best N-node tree under a model
// of per-rank acceptance (Sequoia arXiv 2402.12374 / Medusa arXiv 2401.10774 style static tree).
//
//            root                  node     0    1    2    3      4      5
//          /      \                path     -    [0]  [1]  [0,0]  [0,1]  [0,0,0]
//       [0]        [1]             parent  -1    0    0    1      1      3
//      /    \                      rank    -1    0    1    0      1      0
//   [0,0]  [0,1]                   depth    0    1    1    2      2      3
//     |                            priority 0    1    3    2      5      4   (truncation order)
//  [0,0,0]
#pragma once

#include <specdec/error.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <queue>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace specdec {

// Default guess of P(the target's next token is the drafter's rank-r candidate), r = 0..7. Used to
// build the tr-N presets and to order the truncation of any template. Token Recycling's matrix holds
// the target's own top-8 from the last time a token was seen, so rank 0 dominates; the values are a
// prior, not a measurement: measure them with the target model and pass them to make_template.
inline constexpr std::array<double, 8> default_rank_acceptance{0.45, 0.15, 0.08, 0.05, 0.04, 0.03, 0.02, 0.02};

// Largest template make_template and the tr-N presets build, root excluded.
inline constexpr std::int32_t max_template_draft_nodes = 1024;

struct tree_template {
  std::vector<std::int32_t> parent;    // [n_nodes], parent[0] == -1 (node 0 is the root)
  std::vector<std::int32_t> rank;      // [n_nodes], rank[0] == -1
  std::vector<std::int32_t> depth;     // [n_nodes], depth[0] == 0
  // [n_nodes]: a permutation of 0..n_nodes-1 with priority[0] == 0 and priority[parent] < priority[child].
  // Truncating to a budget of b nodes keeps the nodes of priority < b, which is again a tree: the
  // greedy order for make_template (so every truncation is itself optimal), the order of decreasing
  // path probability for other templates.
  std::vector<std::int32_t> priority;

  [[nodiscard]] std::int32_t size() const noexcept { return static_cast<std::int32_t>(parent.size()); }
  [[nodiscard]] std::int32_t n_draft() const noexcept { return size() - 1; }

  [[nodiscard]] std::int32_t max_rank() const noexcept {
    std::int32_t r = -1;
    for (auto x : rank) r = std::max(r, x);
    return r;
  }

  // Number of nodes at each depth 1..max_depth ({8, 21, 25, 15, 8, 3} for "2.2.2").
  [[nodiscard]] std::vector<std::int32_t> depth_counts() const {
    std::vector<std::int32_t> counts;
    for (std::size_t i = 1; i < depth.size(); ++i) {
      const auto d = static_cast<std::size_t>(depth[i]);
      if (counts.size() < d) counts.resize(d, 0);
      ++counts[d - 1];
    }
    return counts;
  }

  // The rank path of node i (empty for the root).
  [[nodiscard]] std::vector<std::int32_t> path(std::int32_t i) const {
    std::vector<std::int32_t> p;
    for (; i > 0; i = parent[static_cast<std::size_t>(i)]) p.push_back(rank[static_cast<std::size_t>(i)]);
    std::reverse(p.begin(), p.end());
    return p;
  }

  // Checks the invariants above; throws invalid_argument naming the first broken one.
  void validate() const {
    auto fail = [](const std::string& what) { throw error(error_category::invalid_argument, "tree_template: " + what); };
    const std::size_t n = parent.size();
    if (n == 0) fail("no root");
    if (rank.size() != n || depth.size() != n || priority.size() != n) fail("parent, rank, depth and priority differ in size");
    if (parent[0] != -1 || rank[0] != -1 || depth[0] != 0 || priority[0] != 0) fail("node 0 must be the root");
    std::vector<bool> seen(n, false);
    seen[0] = true;
    for (std::size_t i = 1; i < n; ++i) {
      const std::string node = "node " + std::to_string(i);
      const std::int32_t p = parent[i];
      if (p < 0 || static_cast<std::size_t>(p) >= i) fail("parent of " + node + " is not an earlier node");
      if (rank[i] < 0) fail("rank of " + node + " is negative");
      if (depth[i] != depth[static_cast<std::size_t>(p)] + 1) fail("depth of " + node + " is wrong");
      // Breadth-first: by depth, then parent, then strictly increasing rank (distinct siblings).
      if (depth[i] < depth[i - 1]) fail(node + " breaks breadth-first order (depth)");
      if (depth[i] == depth[i - 1] && p < parent[i - 1]) fail(node + " breaks breadth-first order (parent)");
      if (p == parent[i - 1] && rank[i] <= rank[i - 1]) fail(node + " repeats or reorders a rank of its parent");
      const std::int32_t q = priority[i];
      if (q <= 0 || static_cast<std::size_t>(q) >= n || seen[static_cast<std::size_t>(q)]) fail("priority is not a permutation");
      seen[static_cast<std::size_t>(q)] = true;
      if (q <= priority[static_cast<std::size_t>(p)]) fail("priority of " + node + " is not after its parent's");
    }
  }

  // A template from rank paths in any order ({{0}, {1}, {0, 0}} = root, its rank-0 and rank-1
  // candidates, and the rank-0 candidate of the first). Every path's prefix must be listed too.
  // Truncation priority: decreasing path probability under rank_acceptance (ranks past its end take
  // its last value), ties in breadth-first order.
  static tree_template from_rank_paths(std::span<const std::vector<std::int32_t>> paths,
                                       std::span<const double> rank_acceptance = default_rank_acceptance);
};

namespace detail {

inline std::string format_rank_path(const std::vector<std::int32_t>& p) {
  std::string s = "[";
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(p[i]);
  }
  return s + "]";
}

inline void check_rank_acceptance(std::span<const double> rank_acceptance) {
  if (rank_acceptance.empty() || rank_acceptance.size() > 64) {
    throw error(error_category::invalid_argument, "tree_template: rank_acceptance needs 1 to 64 entries");
  }
  for (double p : rank_acceptance) {
    if (!(p >= 0.0 && p <= 1.0)) {
      throw error(error_category::invalid_argument, "tree_template: rank_acceptance values must lie in [0, 1]");
    }
  }
}

// Builds the template of `paths` (root excluded) in breadth-first order; order_key[i] ranks path i
// for truncation (smaller first, ties to breadth-first order) and must be below its parent path's.
inline tree_template build_template(std::vector<std::vector<std::int32_t>> paths, const std::vector<double>& order_key) {
  std::vector<std::size_t> bfs(paths.size());
  for (std::size_t i = 0; i < bfs.size(); ++i) bfs[i] = i;
  // Sorting by (length, lexicographic) is breadth-first: within a level, by parent then rank.
  std::stable_sort(bfs.begin(), bfs.end(), [&](std::size_t a, std::size_t b) {
    return paths[a].size() != paths[b].size() ? paths[a].size() < paths[b].size() : paths[a] < paths[b];
  });
  tree_template t;
  t.parent = {-1};
  t.rank = {-1};
  t.depth = {0};
  std::map<std::vector<std::int32_t>, std::int32_t> index{{{}, 0}};
  for (std::size_t i : bfs) {
    const auto& p = paths[i];
    const std::string name = format_rank_path(p);
    if (p.empty()) throw error(error_category::invalid_argument, "tree_template: empty rank path (the root is implicit)");
    if (p.back() < 0) throw error(error_category::invalid_argument, "tree_template: negative rank in " + name);
    const std::vector<std::int32_t> prefix(p.begin(), p.end() - 1);
    const auto parent = index.find(prefix);
    if (parent == index.end()) {
      throw error(error_category::invalid_argument, "tree_template: " + name + " has no parent path " + format_rank_path(prefix));
    }
    if (!index.emplace(p, t.size()).second) throw error(error_category::invalid_argument, "tree_template: " + name + " is listed twice");
    t.parent.push_back(parent->second);
    t.rank.push_back(p.back());
    t.depth.push_back(static_cast<std::int32_t>(p.size()));
  }
  // Priority: nodes sorted by (key, breadth-first index); the root (index 0) is first.
  std::vector<std::int32_t> by_priority(static_cast<std::size_t>(t.size()));
  std::vector<double> key(by_priority.size());
  key[0] = -std::numeric_limits<double>::infinity();
  for (std::size_t j = 0; j < bfs.size(); ++j) key[j + 1] = order_key[bfs[j]];
  for (std::size_t i = 0; i < by_priority.size(); ++i) by_priority[i] = static_cast<std::int32_t>(i);
  std::stable_sort(by_priority.begin(), by_priority.end(),
                   [&](std::int32_t a, std::int32_t b) { return key[static_cast<std::size_t>(a)] < key[static_cast<std::size_t>(b)]; });
  t.priority.resize(by_priority.size());
  for (std::size_t q = 0; q < by_priority.size(); ++q) t.priority[static_cast<std::size_t>(by_priority[q])] = static_cast<std::int32_t>(q);
  t.validate();
  return t;
}

}  // namespace detail

inline tree_template tree_template::from_rank_paths(std::span<const std::vector<std::int32_t>> paths,
                                                    std::span<const double> rank_acceptance) {
  detail::check_rank_acceptance(rank_acceptance);
  std::vector<double> key;
  key.reserve(paths.size());
  for (const auto& p : paths) {
    double prob = 1.0;
    for (std::int32_t r : p) {
      const auto idx = std::min(static_cast<std::size_t>(std::max(r, 0)), rank_acceptance.size() - 1);
      prob *= rank_acceptance[idx];
    }
    key.push_back(-prob);  // smaller key first: larger probability first
  }
  return detail::build_template({paths.begin(), paths.end()}, key);
}

// The n_draft-node tree (root excluded) of largest expected accepted length when the rank-r
// candidate is accepted with probability rank_acceptance[r] independently at each level: the sum of
// the nodes' path probabilities (product of rank_acceptance along the rank path). A path's
// probability never exceeds its parent's, so the n_draft most probable paths form a tree and the
// greedy choice "add the most probable candidate child" is optimal. Ranks run over
// 0..rank_acceptance.size()-1; ties go to the candidate found first. Nodes are stored breadth-first
// with priority = greedy order, so truncating to b nodes gives make_template(b - 1, ...).
inline tree_template make_template(std::int32_t n_draft, std::span<const double> rank_acceptance = default_rank_acceptance) {
  if (n_draft < 0 || n_draft > max_template_draft_nodes) {
    throw error(error_category::invalid_argument, "make_template: n_draft must lie in [0, " +
                                                      std::to_string(max_template_draft_nodes) + "], got " + std::to_string(n_draft));
  }
  detail::check_rank_acceptance(rank_acceptance);
  struct candidate {
    double prob;
    std::int64_t seq;      // discovery order, for ties
    std::int32_t parent;   // index into chosen (-1: the root)
    std::int32_t rank;
  };
  auto worse = [](const candidate& a, const candidate& b) { return a.prob < b.prob || (a.prob == b.prob && a.seq > b.seq); };
  std::priority_queue<candidate, std::vector<candidate>, decltype(worse)> frontier(worse);
  std::int64_t seq = 0;
  auto push_children = [&](std::int32_t parent, double prob) {
    for (std::size_t r = 0; r < rank_acceptance.size(); ++r) {
      frontier.push({prob * rank_acceptance[r], seq++, parent, static_cast<std::int32_t>(r)});
    }
  };
  std::vector<std::vector<std::int32_t>> paths;  // in greedy order
  std::vector<double> order;
  push_children(-1, 1.0);
  while (static_cast<std::int32_t>(paths.size()) < n_draft) {
    const candidate c = frontier.top();
    frontier.pop();
    std::vector<std::int32_t> p = c.parent < 0 ? std::vector<std::int32_t>{} : paths[static_cast<std::size_t>(c.parent)];
    p.push_back(c.rank);
    order.push_back(static_cast<double>(paths.size()));
    paths.push_back(std::move(p));
    push_children(static_cast<std::int32_t>(paths.size()) - 1, c.prob);
  }
  return detail::build_template(std::move(paths), order);
}

// The paper's default tree "2.2.2": 80 nodes, depth 6, 40 root-to-leaf paths, skewed to rank 0.
// Only its profile is public (nodes per depth 8, 21, 25, 15, 8, 3; the root has 8 children; [0] has 8,
// [1] 4, [2] 3, [3] 2, [4]..[7] 1 each; [0,0] has 8; [0,0,0] has 5); the other branches are filled
// here towards the most probable paths.
inline tree_template paper_tree_template() {
  static const std::vector<std::vector<std::int32_t>> paths = {
      // depth 1 (8)
      {0}, {1}, {2}, {3}, {4}, {5}, {6}, {7},
      // depth 2 (21)
      {0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}, {0, 6}, {0, 7},
      {1, 0}, {1, 1}, {1, 2}, {1, 3}, {2, 0}, {2, 1}, {2, 2}, {3, 0}, {3, 1},
      {4, 0}, {5, 0}, {6, 0}, {7, 0},
      // depth 3 (25)
      {0, 0, 0}, {0, 0, 1}, {0, 0, 2}, {0, 0, 3}, {0, 0, 4}, {0, 0, 5}, {0, 0, 6}, {0, 0, 7},
      {0, 1, 0}, {0, 1, 1}, {0, 1, 2}, {1, 0, 0}, {1, 0, 1}, {1, 0, 2},
      {0, 2, 0}, {0, 3, 0}, {0, 4, 0}, {1, 1, 0}, {1, 2, 0}, {2, 0, 0}, {2, 1, 0},
      {3, 0, 0}, {4, 0, 0}, {5, 0, 0}, {6, 0, 0},
      // depth 4 (15)
      {0, 0, 0, 0}, {0, 0, 0, 1}, {0, 0, 0, 2}, {0, 0, 0, 3}, {0, 0, 0, 4},
      {0, 0, 1, 0}, {0, 0, 1, 1}, {0, 1, 0, 0}, {0, 1, 0, 1},
      {1, 0, 0, 0}, {0, 0, 2, 0}, {0, 2, 0, 0}, {2, 0, 0, 0}, {0, 0, 3, 0}, {1, 1, 0, 0},
      // depth 5 (8)
      {0, 0, 0, 0, 0}, {0, 0, 0, 0, 1}, {0, 0, 0, 0, 2},
      {0, 0, 0, 1, 0}, {0, 0, 1, 0, 0}, {0, 1, 0, 0, 0}, {1, 0, 0, 0, 0}, {0, 0, 0, 2, 0},
      // depth 6 (3)
      {0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 1, 0}, {0, 0, 0, 1, 0, 0},
  };
  return tree_template::from_rank_paths(paths);
}

// Names tree_template_preset lists in its error message; any "tr-N" with 1 <= N <= 1024 works too.
inline constexpr std::array<std::string_view, 8> tree_template_preset_names{
    "2.2.2", "tr-8", "tr-16", "tr-24", "tr-32", "tr-48", "tr-64", "tr-80"};

// A template by name: "2.2.2" (the paper's 80-node tree) or "tr-N" (make_template(N) over the first
// k entries of default_rank_acceptance, so it only uses ranks below k). N counts the drafted nodes:
// the verified tree has N + 1 tokens. Throws invalid_argument listing the valid names.
inline tree_template tree_template_preset(std::string_view name, std::int32_t k = 8) {
  if (k < 1) throw error(error_category::invalid_argument, "tree_template_preset: k must be positive");
  if (name == "2.2.2") return paper_tree_template();
  if (name.starts_with("tr-")) {
    const std::string_view digits = name.substr(3);
    std::int32_t n = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (ec == std::errc{} && end == digits.data() + digits.size() && !digits.empty() && digits[0] != '0' && n >= 1 &&
        n <= max_template_draft_nodes) {
      const auto n_ranks = std::min(static_cast<std::size_t>(k), default_rank_acceptance.size());
      return make_template(n, std::span<const double>(default_rank_acceptance).first(n_ranks));
    }
  }
  std::string valid;
  for (auto v : tree_template_preset_names) {
    if (!valid.empty()) valid += ", ";
    valid += v;
  }
  throw error(error_category::invalid_argument, "unknown tree template '" + std::string(name) + "'; valid: " + valid +
                                                    " (or tr-N for any N from 1 to " + std::to_string(max_template_draft_nodes) + ")");
}

}  // namespace specdec
