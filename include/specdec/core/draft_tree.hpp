// draft_tree: a drafter's proposal for one verification step.
// Nodes are in topological order (parent[i] < i). Node 0 is the root: the last accepted token, which
// is not yet in the model's KV cache. The position of node i is n_past + depth[i]. Siblings carry
// distinct tokens (the acceptance rules descend to "the child with token x").
//
//        [0] root "The"          tokens  = [The, cat, dog, sat, ran, on]
//        /            \          parent  = [ -1,   0,   0,   1,   1,  3]
//   [1] cat         [2] dog      depth   = [  0,   1,   1,   2,   2,  3]
//    /     \                     (each node's row in the tree mask marks itself and its ancestors)
//  [3] sat [4] ran
//    |
//  [5] on
//
// Trees drawn from a draft model (drafters/model_drafter.hpp) also carry the distributions their
// children were drawn from, which the sampling rule needs (verify/sampling.hpp): q_of[i] >= 0 names
// the distribution q[q_of[i]] from which node i's children were drawn, in the order of their indices
// and without replacement (child k from q with the tokens of children 0..k-1 removed, renormalised).
// Such a distribution is sparse (the drafter's top tokens), one per expanded node: at vocabulary
// 49,152 and 32 kept tokens, 256 bytes per expanded node instead of a 192 KB dense row.
//
// A tree may also carry *extra rows*: rows verified in the same forward that are not candidates and
// are never accepted or committed, whose input is an embedding vector (parallel prompt decoding's
// prompt tokens, drafters/ppd.hpp). Extra row j is pending row size() + j of the step; its parent is
// a node (< size()) or an earlier extra row, its position n_past + extra_depth[j] with extra_depth
// one more than its parent's depth; its n_embd input floats are extra_embeddings[j * n_embd ...].
// The drafter reads their logits in observe (rows size() ... of the step's logits). The rules never
// look at them, and commit drops them with the rest of the tree.
#pragma once

#include <specdec/core/sampling.hpp>
#include <specdec/core/types.hpp>
#include <specdec/error.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace specdec {

struct draft_tree {
  std::vector<token_id> tokens;      // [n_nodes]
  std::vector<std::int32_t> parent;  // [n_nodes], parent[0] == -1
  std::vector<std::int32_t> depth;   // [n_nodes], depth[0] == 0
  std::vector<float> draft_prob;     // [n_nodes] or empty: q(token | path) when the drafter has one
  std::vector<std::int32_t> q_of;    // [n_nodes] or empty: index into q, or -1 (see above)
  std::vector<token_distribution> q; // distributions children were drawn from
  std::vector<std::int32_t> extra_parent;  // [n_extra]: pending index of the parent (see above)
  std::vector<std::int32_t> extra_depth;   // [n_extra]: depth (position - n_past)
  std::vector<float> extra_embeddings;     // [n_extra, n_embd]

  // The node's children were drawn from a distribution (the sampling rule tries them in order).
  [[nodiscard]] const token_distribution* children_drawn_from(std::int32_t node) const noexcept {
    if (q_of.empty()) return nullptr;
    const std::int32_t k = q_of[static_cast<std::size_t>(node)];
    return k < 0 ? nullptr : &q[static_cast<std::size_t>(k)];
  }

  // Records that node's children are (or will be) drawn from d; returns its index in q.
  std::int32_t set_children_distribution(std::int32_t node, token_distribution d) {
    SPECDEC_ASSERT(node >= 0 && node < size());
    q_of.resize(tokens.size(), -1);
    q.push_back(std::move(d));
    q_of[static_cast<std::size_t>(node)] = static_cast<std::int32_t>(q.size()) - 1;
    return q_of[static_cast<std::size_t>(node)];
  }

  [[nodiscard]] std::int32_t size() const noexcept { return static_cast<std::int32_t>(tokens.size()); }
  [[nodiscard]] std::int32_t n_extra() const noexcept { return static_cast<std::int32_t>(extra_parent.size()); }
  // Rows of the forward that verifies the tree: nodes plus extra rows (what a budget counts).
  [[nodiscard]] std::int32_t n_rows() const noexcept { return size() + n_extra(); }

  // Appends an extra row, the child of pending row `parent_row` (a node or an earlier extra row),
  // with input embedding `e`; returns its pending row index.
  std::int32_t add_extra(std::int32_t parent_row, std::span<const float> e) {
    SPECDEC_ASSERT(parent_row >= 0 && parent_row < n_rows());
    const std::int32_t d = parent_row < size() ? depth[static_cast<std::size_t>(parent_row)]
                                               : extra_depth[static_cast<std::size_t>(parent_row - size())];
    extra_parent.push_back(parent_row);
    extra_depth.push_back(d + 1);
    extra_embeddings.insert(extra_embeddings.end(), e.begin(), e.end());
    return n_rows() - 1;
  }
  [[nodiscard]] token_id root() const noexcept { return tokens.front(); }

  // A tree holding only the root: "nothing to draft" (and the autoregressive baseline).
  static draft_tree root_only(token_id root) {
    draft_tree t;
    t.tokens = {root};
    t.parent = {-1};
    t.depth = {0};
    return t;
  }

  // Appends a child of `parent_node` and returns its index. Pass a probability only if every node
  // gets one. The caller keeps sibling tokens distinct (find_child helps).
  std::int32_t add(std::int32_t parent_node, token_id token, float prob = std::numeric_limits<float>::quiet_NaN()) {
    SPECDEC_ASSERT(parent_node >= 0 && parent_node < size());
    SPECDEC_ASSERT(extra_parent.empty());  // extra rows follow every node
    tokens.push_back(token);
    parent.push_back(parent_node);
    depth.push_back(depth[static_cast<std::size_t>(parent_node)] + 1);
    if (!std::isnan(prob)) draft_prob.push_back(prob);
    if (!q_of.empty()) q_of.push_back(-1);
    return size() - 1;
  }

  // Index of the child of `node` carrying `token`, or -1. Linear in the number of nodes after `node`.
  [[nodiscard]] std::int32_t find_child(std::int32_t node, token_id token) const noexcept {
    for (std::int32_t i = node + 1; i < size(); ++i) {
      if (parent[static_cast<std::size_t>(i)] == node && tokens[static_cast<std::size_t>(i)] == token) return i;
    }
    return -1;
  }

  [[nodiscard]] std::int32_t max_depth() const noexcept {
    std::int32_t d = 0;
    for (auto x : depth) d = x > d ? x : d;
    return d;
  }

  // Checks the invariants above; throws invalid_argument naming the first broken one.
  void validate() const {
    auto fail = [](const std::string& what) { throw error(error_category::invalid_argument, "draft_tree: " + what); };
    if (tokens.empty()) fail("no root");
    if (parent.size() != tokens.size() || depth.size() != tokens.size()) fail("tokens, parent and depth differ in size");
    if (!draft_prob.empty() && draft_prob.size() != tokens.size()) fail("draft_prob must be empty or one per node");
    if (parent[0] != -1 || depth[0] != 0) fail("node 0 must be the root (parent -1, depth 0)");
    if (!q_of.empty() && q_of.size() != tokens.size()) fail("q_of must be empty or one per node");
    for (std::size_t i = 0; i < q_of.size(); ++i) {
      if (q_of[i] < -1 || q_of[i] >= static_cast<std::int32_t>(q.size())) fail("q_of of node " + std::to_string(i) + " names no distribution");
    }
    for (std::size_t i = 1; i < tokens.size(); ++i) {
      const std::int32_t p = parent[i];
      if (p < 0 || static_cast<std::size_t>(p) >= i) fail("parent of node " + std::to_string(i) + " is not an earlier node");
      if (depth[i] != depth[static_cast<std::size_t>(p)] + 1) fail("depth of node " + std::to_string(i) + " is wrong");
      for (std::size_t j = static_cast<std::size_t>(p) + 1; j < i; ++j) {
        if (parent[j] == p && tokens[j] == tokens[i]) fail("nodes " + std::to_string(j) + " and " + std::to_string(i) + " are siblings with the same token");
      }
      if (const auto* d = children_drawn_from(p); d != nullptr && !(d->prob(tokens[i]) > 0.0f)) {
        fail("node " + std::to_string(i) + " has a token its parent's draft distribution gives no mass");
      }
    }
    if (extra_depth.size() != extra_parent.size()) fail("extra_parent and extra_depth differ in size");
    if (!extra_parent.empty() && extra_embeddings.size() % extra_parent.size() != 0) {
      fail("extra_embeddings is not a whole number of rows");
    }
    for (std::size_t j = 0; j < extra_parent.size(); ++j) {
      const std::int32_t p = extra_parent[j];
      const auto row = static_cast<std::int32_t>(tokens.size() + j);
      if (p < 0 || p >= row) fail("parent of extra row " + std::to_string(j) + " is not an earlier row");
      const std::int32_t pd = p < size() ? depth[static_cast<std::size_t>(p)] : extra_depth[static_cast<std::size_t>(p - size())];
      if (extra_depth[j] != pd + 1) fail("depth of extra row " + std::to_string(j) + " is wrong");
    }
  }
};

}  // namespace specdec
