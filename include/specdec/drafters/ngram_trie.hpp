// ngram_trie: for every key token, a trie of the token sequences that followed it, each node counting
// how often its path was seen in the current prompt ("input") and in generated text ("output").
// The store behind the Lookahead trie drafter (Ant Group, arXiv 2312.12728); see lookahead_trie.hpp.
//
//   roots_[the] ─ [the] ─┬─ cat (in 2, out 5) ─┬─ sat (in 1, out 4) ─ on ...
//                        │                     └─ ran (in 1, out 0)
//                        └─ dog (in 0, out 3) ── ran (in 0, out 3)
//
// Storage: one pool of 20-byte nodes linked by index (first child, next sibling), a free list, and a
// flat key -> root table. Siblings stay sorted by score, best first, so a lookup stops early on the
// frequent tokens and retrieval takes a sibling only after the one before it: a draft of n nodes costs
// O(n log n) whatever the fan-out. score = input * 2^32 + output (prompt n-grams first, then output).
// Every count on a path is <= its parent's, so the best n nodes always form a connected subtree.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace specdec {

enum class ngram_source { input, output };

struct ngram_node {
  token_id token = 0;
  std::int32_t first_child = -1;   // best-scoring child, -1 for a leaf
  std::int32_t next_sibling = -1;  // next child of the same parent (lower or equal score); free-list link
  std::uint32_t input = 0;         // occurrences in the current prompt
  std::uint32_t output = 0;        // occurrences in generated text (and warm-up), across requests
};

// Frequencies of one path, for tests and statistics.
struct ngram_counts {
  bool found = false;
  std::uint32_t input = 0;
  std::uint32_t output = 0;
};

class ngram_trie {
 public:
  // Keys (not continuation tokens) must lie in [0, max_key_token]; larger ids are never keys.
  static constexpr token_id max_key_token = (1 << 24) - 1;

  // max_nodes caps the live nodes (key roots included); the pool never holds more.
  explicit ngram_trie(std::size_t max_nodes) : max_nodes_(max_nodes) {
    if (max_nodes < 16 || max_nodes > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
      throw error(error_category::invalid_argument,
                  "ngram_trie: max_nodes = " + std::to_string(max_nodes) + " must be in [16, 2^31)");
    }
  }

  // Counts one occurrence of `tokens` after `key`: +1 of `source` on every node of its path, creating
  // nodes as needed. Evicts first if the path might not fit. Returns how many tokens were stored:
  // fewer than tokens.size() only when the cap is reached and only the current prompt's n-grams are left.
  std::size_t insert(token_id key, std::span<const token_id> tokens, ngram_source source) {
    if (tokens.empty() || key < 0 || key > max_key_token) return 0;
    if (n_nodes() + tokens.size() + 1 > max_nodes_ && !evict_blocked_) evict();
    std::int32_t node = root_for(key);
    if (node < 0) return 0;
    if (source == ngram_source::input && nodes_[at(node)].input == 0) input_keys_.push_back(key);
    count(nodes_[at(node)], source);
    std::size_t k = 0;
    for (; k < tokens.size(); ++k) {
      node = count_child(node, tokens[k], source);
      if (node < 0) break;
    }
    return k;
  }

  // Root node of `key`'s trie, or -1.
  [[nodiscard]] std::int32_t find(token_id key) const noexcept {
    if (key < 0 || static_cast<std::size_t>(key) >= roots_.size()) return -1;
    return roots_[static_cast<std::size_t>(key)];
  }

  // Child of `node` carrying `token`, or -1.
  [[nodiscard]] std::int32_t find_child(std::int32_t node, token_id token) const noexcept {
    if (node < 0) return -1;
    for (std::int32_t c = nodes_[at(node)].first_child; c >= 0; c = nodes_[at(c)].next_sibling) {
      if (nodes_[at(c)].token == token) return c;
    }
    return -1;
  }

  // Frequencies of the path `path` after `key`.
  [[nodiscard]] ngram_counts counts(token_id key, std::span<const token_id> path) const noexcept {
    std::int32_t node = find(key);
    for (token_id t : path) node = find_child(node, t);
    if (node < 0) return {};
    return {true, nodes_[at(node)].input, nodes_[at(node)].output};
  }

  // Appends to `tree`, under its node 0, the best part of the subtree below trie node `from`: nodes in
  // descending score, at most `max_depth` below `from`, until `tree` holds `budget` nodes. Best-first:
  // the frontier holds, for every taken node, its best child and its next sibling.
  void collect(std::int32_t from, std::int32_t max_depth, std::int32_t budget, draft_tree& tree) const {
    if (from < 0 || max_depth < 1 || tree.size() >= budget) return;
    struct candidate {
      std::uint64_t score;
      std::uint32_t order;  // push order: ties go to the earlier (shallower / higher-ranked) one
      std::int32_t node;
      std::int32_t tree_parent;
      std::int32_t depth;
    };
    auto worse = [](const candidate& a, const candidate& b) {
      return a.score != b.score ? a.score < b.score : a.order > b.order;
    };
    std::vector<candidate> frontier;  // binary max-heap, at most 2 * budget entries
    frontier.reserve(2 * static_cast<std::size_t>(budget));
    std::uint32_t order = 0;
    auto push = [&](std::int32_t node, std::int32_t tree_parent, std::int32_t depth) {
      if (node < 0) return;
      const std::uint64_t s = score(nodes_[at(node)]);
      if (s == 0) return;  // siblings are sorted: nothing after it scores either
      frontier.push_back({s, order++, node, tree_parent, depth});
      std::push_heap(frontier.begin(), frontier.end(), worse);
    };
    push(nodes_[at(from)].first_child, 0, 1);
    while (!frontier.empty() && tree.size() < budget) {
      std::pop_heap(frontier.begin(), frontier.end(), worse);
      const candidate c = frontier.back();
      frontier.pop_back();
      const ngram_node& n = nodes_[at(c.node)];
      const std::int32_t id = tree.add(c.tree_parent, n.token);
      push(n.next_sibling, c.tree_parent, c.depth);
      if (c.depth < max_depth) push(n.first_child, id, c.depth + 1);
    }
  }

  // Ends a request: every input frequency drops to 0 and nodes left with no count are deleted. Visits
  // only the prompt's part of each trie (input counts form a prefix of every sorted sibling list).
  void clear_input() {
    for (token_id key : input_keys_) {
      const std::int32_t root = find(key);
      if (root < 0) continue;
      nodes_[at(root)].input = 0;
      clear_input_below(root);
      drop_root_if_empty(key);
    }
    input_keys_.clear();
    evict_blocked_ = false;
  }

  // Eviction. Each round deletes the nodes with output count <= 1 and no input count, with their
  // subtrees, and halves every other output count above 1: an n-gram seen c times since it was last
  // halved survives r rounds iff c >= 2^r. (PIA halves first and then deletes counts <= 1, which also
  // drops n-grams seen 2-3 times in the first round; testing first keeps them one round longer and
  // gave a slightly higher MAT in bench_lookahead under a small cap.) Halving also ages old n-grams.
  // Rounds repeat until at most 3/4 of max_nodes remain, then the pool is compacted (breadth-first
  // per key, siblings adjacent, into a new pool of the surviving size). Cost O(live nodes) per round,
  // one round in practice: most nodes are seen once, so a full pool drops well below the target
  // (2^20 -> ~0.24M nodes in bench_lookahead). With the 1/4 headroom it runs at most once per
  // max_nodes/4 new nodes: a few node visits per inserted node amortised, paid as one pause inside
  // an insert (bench_lookahead: ~0.7 ms at 2^16 nodes, ~40 ms at 2^20). Memory peaks at the old pool
  // plus the survivors' pool. The current prompt's n-grams are never deleted; if they alone exceed the
  // target, inserts that would pass the cap are cut short until clear_input().
  void evict() {
    const std::size_t target = max_nodes_ - max_nodes_ / 4;
    while (n_nodes() > target) {
      const std::size_t before = n_nodes();
      bool halved = false;
      for (std::size_t key = 0; key < roots_.size(); ++key) {
        if (roots_[key] < 0) continue;
        squeeze_below(roots_[key], halved);
        drop_root_if_empty(static_cast<token_id>(key));
      }
      if (!halved && n_nodes() == before) break;  // only the prompt's n-grams are left
    }
    compact();
    evict_blocked_ = n_nodes() > target;
    ++n_evictions_;
  }

  [[nodiscard]] std::size_t n_nodes() const noexcept { return nodes_.size() - n_free_; }
  [[nodiscard]] std::size_t max_nodes() const noexcept { return max_nodes_; }
  // A live node (from find, find_child or a node's links), for walks over two tries at once.
  [[nodiscard]] const ngram_node& node(std::int32_t i) const noexcept { return nodes_[at(i)]; }
  [[nodiscard]] std::int64_t n_evictions() const noexcept { return n_evictions_; }
  [[nodiscard]] std::size_t memory_bytes() const noexcept {
    return nodes_.capacity() * sizeof(ngram_node) + roots_.capacity() * sizeof(std::int32_t) +
           (input_keys_.capacity() + scratch_.capacity()) * sizeof(std::int32_t) + sizeof(*this);
  }

 private:
  static constexpr std::uint64_t input_unit = std::uint64_t{1} << 32;

  static std::uint64_t score(const ngram_node& n) noexcept {
    return (static_cast<std::uint64_t>(n.input) << 32) | n.output;
  }
  static void count(ngram_node& n, ngram_source source) noexcept {
    std::uint32_t& c = source == ngram_source::input ? n.input : n.output;
    if (c < std::numeric_limits<std::uint32_t>::max()) ++c;
  }
  static std::size_t at(std::int32_t i) noexcept {
    SPECDEC_ASSERT(i >= 0);
    return static_cast<std::size_t>(i);
  }

  std::int32_t allocate(token_id token) {
    if (n_nodes() >= max_nodes_) return -1;
    std::int32_t i;
    if (free_head_ >= 0) {
      i = free_head_;
      free_head_ = nodes_[at(i)].next_sibling;
      --n_free_;
    } else {
      // Grow by doubling, never past max_nodes: the pool's capacity is the memory bound.
      if (nodes_.size() == nodes_.capacity()) {
        nodes_.reserve(std::min(std::max<std::size_t>(2 * nodes_.capacity(), 1024), max_nodes_));
      }
      i = static_cast<std::int32_t>(nodes_.size());
      nodes_.emplace_back();
    }
    nodes_[at(i)] = ngram_node{token, -1, -1, 0, 0};
    return i;
  }

  void release_subtree(std::int32_t node) {
    for (std::int32_t c = nodes_[at(node)].first_child; c >= 0;) {
      const std::int32_t next = nodes_[at(c)].next_sibling;
      release_subtree(c);
      c = next;
    }
    nodes_[at(node)].next_sibling = free_head_;
    free_head_ = node;
    ++n_free_;
  }

  std::int32_t root_for(token_id key) {
    const auto k = static_cast<std::size_t>(key);
    if (k >= roots_.size()) roots_.resize(k + 1, -1);
    if (roots_[k] < 0) roots_[k] = allocate(key);
    return roots_[k];
  }

  void drop_root_if_empty(token_id key) {
    const auto k = static_cast<std::size_t>(key);
    if (roots_[k] >= 0 && nodes_[at(roots_[k])].first_child < 0 && nodes_[at(roots_[k])].input == 0) {
      release_subtree(roots_[k]);
      roots_[k] = -1;
    }
  }

  // Puts `node` after `prev` in `parent`'s child list (at the front when prev is -1).
  void link_after(std::int32_t parent, std::int32_t prev, std::int32_t node) noexcept {
    std::int32_t& slot = prev < 0 ? nodes_[at(parent)].first_child : nodes_[at(prev)].next_sibling;
    nodes_[at(node)].next_sibling = slot;
    slot = node;
  }

  // Counts `token` below `parent` (creating the child if needed) and moves it forward past the
  // siblings it now outscores. Returns the child, or -1 when the pool is full.
  std::int32_t count_child(std::int32_t parent, token_id token, ngram_source source) {
    const std::uint64_t unit = source == ngram_source::input ? input_unit : 1;
    std::int32_t prev = -1, last_not_below = -1;
    std::int32_t c = nodes_[at(parent)].first_child;
    while (c >= 0 && nodes_[at(c)].token != token) {
      if (score(nodes_[at(c)]) >= unit) last_not_below = c;
      prev = c;
      c = nodes_[at(c)].next_sibling;
    }
    if (c < 0) {  // a new child goes after every sibling scoring at least as much
      c = allocate(token);
      if (c < 0) return -1;
      count(nodes_[at(c)], source);
      link_after(parent, last_not_below, c);
      return c;
    }
    count(nodes_[at(c)], source);
    const std::uint64_t s = score(nodes_[at(c)]);
    if (prev >= 0 && score(nodes_[at(prev)]) < s) {
      nodes_[at(prev)].next_sibling = nodes_[at(c)].next_sibling;
      std::int32_t p = -1;
      for (std::int32_t q = nodes_[at(parent)].first_child; q >= 0 && score(nodes_[at(q)]) >= s;
           q = nodes_[at(q)].next_sibling) {
        p = q;
      }
      link_after(parent, p, c);
    }
    return c;
  }

  // Resets the input counts below `parent`. They sit on a prefix of its sorted child list; the rest,
  // ordered by output count, stays put: the prefix's survivors (sorted by output) are merged back in,
  // which stops at the last survivor's place instead of re-sorting the whole (possibly long) list.
  void clear_input_below(std::int32_t parent) {
    const std::size_t base = scratch_.size();  // scratch_[base..]: this level's survivors
    std::int32_t c = nodes_[at(parent)].first_child;
    while (c >= 0 && nodes_[at(c)].input > 0) {
      const std::int32_t next = nodes_[at(c)].next_sibling;
      nodes_[at(c)].input = 0;
      if (nodes_[at(c)].output == 0) {  // counts only shrink downwards: the whole subtree is empty
        release_subtree(c);
      } else {
        scratch_.push_back(c);
      }
      c = next;
    }
    if (c == nodes_[at(parent)].first_child) return;  // no input counts here
    nodes_[at(parent)].first_child = c;               // the untouched rest, sorted by output
    for (std::size_t k = base; k < scratch_.size(); ++k) clear_input_below(scratch_[k]);
    const auto by_output = [&](std::int32_t a, std::int32_t b) { return nodes_[at(a)].output > nodes_[at(b)].output; };
    std::stable_sort(scratch_.begin() + static_cast<std::ptrdiff_t>(base), scratch_.end(), by_output);
    std::int32_t prev = -1, rest = c;
    for (std::size_t k = base; k < scratch_.size(); ++k) {
      const std::int32_t node = scratch_[k];
      while (rest >= 0 && nodes_[at(rest)].output > nodes_[at(node)].output) {
        prev = rest;
        rest = nodes_[at(rest)].next_sibling;
      }
      link_after(parent, prev, node);
      prev = node;
    }
    scratch_.resize(base);
  }

  void squeeze_below(std::int32_t parent, bool& halved) {
    std::int32_t prev = -1;
    for (std::int32_t c = nodes_[at(parent)].first_child; c >= 0;) {
      ngram_node& n = nodes_[at(c)];
      const std::int32_t next = n.next_sibling;
      if (n.input == 0 && n.output <= 1) {  // tested before halving: see evict()
        (prev < 0 ? nodes_[at(parent)].first_child : nodes_[at(prev)].next_sibling) = next;
        release_subtree(c);
      } else {
        if (n.output > 1) {
          n.output /= 2;
          halved = true;
        }
        squeeze_below(c, halved);
        prev = c;
      }
      c = next;
    }
  }

  // Rebuilds the pool without free slots: each key's trie breadth-first, so siblings are adjacent.
  void compact() {
    std::vector<ngram_node> fresh;
    fresh.reserve(n_nodes());
    std::vector<std::int32_t> queue;  // [2 * trie size]: (old index, new index) pairs
    for (auto& root : roots_) {
      if (root < 0) continue;
      queue.clear();
      const auto copy = [&](std::int32_t old) {
        fresh.push_back(nodes_[at(old)]);
        fresh.back().first_child = -1;
        fresh.back().next_sibling = -1;
        queue.push_back(old);
        queue.push_back(static_cast<std::int32_t>(fresh.size() - 1));
        return static_cast<std::int32_t>(fresh.size() - 1);
      };
      root = copy(root);
      for (std::size_t head = 0; head < queue.size(); head += 2) {
        const std::int32_t old = queue[head], now = queue[head + 1];
        std::int32_t prev = -1;
        for (std::int32_t c = nodes_[at(old)].first_child; c >= 0; c = nodes_[at(c)].next_sibling) {
          const std::int32_t nc = copy(c);
          (prev < 0 ? fresh[at(now)].first_child : fresh[at(prev)].next_sibling) = nc;
          prev = nc;
        }
      }
    }
    nodes_.swap(fresh);
    free_head_ = -1;
    n_free_ = 0;
  }

  std::size_t max_nodes_;
  std::vector<ngram_node> nodes_;     // [pool size]: live nodes and free slots
  std::vector<std::int32_t> roots_;   // [largest key + 1]: root node of each key's trie, -1 if none
  std::vector<token_id> input_keys_;  // keys whose trie holds input counts (each once)
  std::vector<std::int32_t> scratch_;
  std::int32_t free_head_ = -1;
  std::size_t n_free_ = 0;
  std::int64_t n_evictions_ = 0;
  bool evict_blocked_ = false;
};

}  // namespace specdec
