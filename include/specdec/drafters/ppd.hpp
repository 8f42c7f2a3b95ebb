// Parallel prompt decoding (PPD, arXiv 2405.18628): k trained embedding vectors, the *prompt
// tokens*, appended after a token let the target itself guess the tokens two, three, ... k + 1
// places ahead in the forward that verifies the tree. No draft model: the guesses ride along as
// extra rows of the tree (draft_tree.hpp), never committed.
//
// Every tree node carries n_prompt (0..k) prompt-token rows (times `ensemble` virtual tokens each,
// whose logits are averaged): prompt token i of a node at position p sits at position p + i,
// attends to the node's path and to the node's earlier prompt tokens, and predicts the token at
// p + i + 1. When the step accepts a path ending at node a, the next tree's root is the bonus token
// (position p_a + 1) and its depth-d candidates are the top-K tokens of a's prompt token d, d <= the
// n_prompt of a (the next step's *state*). The tree shape for each (budget, state) comes from the
// artifact: built offline from measured per-offset, per-rank accuracies (tools/ppd/trees.py, the
// paper's greedy pruning), so the prompt rows are spent where an accepted node is likely.
//
//   state 2 (a carried 2 prompt tokens: guesses g1[0..K), g2[0..K))
//     root (bonus) ── g1[0] ── g2[0]     every node with its own prompt rows:  root +p1 +p2 +p3
//          │            └──── g2[1]                                         g1[0] +p1 +p2
//          └──────── g1[1]                                                  g2[0] +p1 ...
//
// Lossless: the candidates are deterministic given what was verified, and the rules see only the
// nodes, so greedy output equals plain greedy decoding and the sampling rule's draws are exact
// (the prompt rows change no node's logits: the backend's kernels are batch-invariant).
// The artifact's file format and loader are in drafters/ppd_file.hpp.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/topk.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace specdec {

// One tree shape of the artifact: nodes in topological order, node 0 the root.
struct ppd_tree {
  std::int32_t budget = 0;  // rows it was built for (its rows() <= budget)
  std::int32_t state = 0;   // guesses available: offsets 1..state
  float expected_accept = 0;  // model-based expected accepted draft tokens per step in this state
  float steady_accept = 0;    // the same, steady state over states, at this budget
  std::vector<std::int32_t> parent;    // -1 for the root
  std::vector<std::int32_t> rank;      // -1 for the root; rank in the top-K of prompt token depth
  std::vector<std::int32_t> n_prompt;  // prompt tokens the node carries
  std::vector<std::int32_t> depth;     // derived

  [[nodiscard]] std::int32_t size() const noexcept { return static_cast<std::int32_t>(parent.size()); }
  [[nodiscard]] std::int32_t rows(std::int32_t ensemble) const noexcept {
    std::int32_t r = size();
    for (const auto c : n_prompt) r += c * ensemble;
    return r;
  }
};

// What the drafter needs of an artifact (drafters/ppd_file.hpp reads and checks one).
struct ppd_artifact {
  std::int32_t n_prompt_tokens = 3;  // k
  std::int32_t ensemble = 1;         // m virtual tokens per prompt token
  std::int32_t top_k = 10;           // K guesses kept per offset
  std::int32_t n_embd = 0;
  std::int32_t n_vocab = 0;
  std::string model_name;
  std::vector<float> embeddings;  // [k * m, n_embd]: row i * m + j = prompt token i, virtual token j
  std::vector<float> accuracy;    // [k * K]: P(the target's token at offset i is rank r of prompt token i)
  std::vector<ppd_tree> trees;

  [[nodiscard]] std::span<const float> embedding(std::int32_t prompt, std::int32_t virt) const noexcept {
    const auto row = static_cast<std::size_t>(prompt * ensemble + virt);
    return {embeddings.data() + row * static_cast<std::size_t>(n_embd), static_cast<std::size_t>(n_embd)};
  }

  // The largest tree for `state` within `budget` rows, or nullptr when none fits.
  [[nodiscard]] const ppd_tree* tree_for(std::int32_t state, std::int32_t budget) const noexcept {
    const ppd_tree* best = nullptr;
    for (const auto& t : trees) {
      if (t.state != state || t.budget > budget) continue;
      if (best == nullptr || t.budget > best->budget) best = &t;
    }
    return best;
  }

  // The largest budget with a tree.
  [[nodiscard]] std::int32_t max_budget() const noexcept {
    std::int32_t hi = 1;
    for (const auto& t : trees) hi = std::max(hi, t.budget);
    return hi;
  }

  // Bytes the drafter holds for the artifact (the prompt vectors and the trees).
  [[nodiscard]] std::size_t bytes() const noexcept {
    std::size_t b = embeddings.size() * sizeof(float) + accuracy.size() * sizeof(float);
    for (const auto& t : trees) b += sizeof(ppd_tree) + 4 * t.parent.size() * sizeof(std::int32_t);
    return b;
  }
};

struct ppd_counters {
  std::int64_t steps = 0;
  std::int64_t prompt_rows = 0;  // extra rows verified
  std::int64_t nodes = 0;        // candidates drafted (root excluded)
};

class ppd_drafter {
 public:
  explicit ppd_drafter(std::shared_ptr<const ppd_artifact> a) : a_(std::move(a)) {
    if (a_ == nullptr) throw error(error_category::invalid_argument, "ppd: no artifact");
    if (a_->top_k < 1 || a_->top_k > top_k_max) {
      throw error(error_category::invalid_argument, "ppd: top_k must lie in [1, " + std::to_string(top_k_max) + "]");
    }
  }

  void begin(request_id id, std::span<const token_id>) { states_[id] = request_state{}; }
  void end(request_id id) { states_.erase(id); }

  draft_tree draft(request_id id, const draft_request& r) {
    request_state& st = state(id);
    draft_tree t = draft_tree::root_only(r.context.back());
    const std::int32_t m = a_->ensemble;
    const ppd_tree* shape = a_->tree_for(st.guesses, r.budget);
    st.first_extra.clear();
    st.n_prompt.clear();
    if (shape == nullptr) {
      // Smaller than every stored tree: the root alone with as many prompt tokens as fit.
      const std::int32_t c = std::min(a_->n_prompt_tokens, (r.budget - 1) / m);
      attach(t, st, 0, c);
      ++counters_.steps;
      counters_.prompt_rows += t.n_extra();
      return t;
    }
    for (std::int32_t i = 1; i < shape->size(); ++i) {
      const auto u = static_cast<std::size_t>(i);
      const std::int32_t d = shape->depth[u];
      const token_id tok = st.topk[static_cast<std::size_t>(d - 1)][static_cast<std::size_t>(shape->rank[u])];
      t.add(shape->parent[u], tok);
    }
    for (std::int32_t i = 0; i < shape->size(); ++i) attach(t, st, i, shape->n_prompt[static_cast<std::size_t>(i)]);
    ++counters_.steps;
    counters_.nodes += t.size() - 1;
    counters_.prompt_rows += t.n_extra();
    return t;
  }

  void observe(request_id id, const step_outcome& o) {
    request_state& st = state(id);
    const std::int32_t a = o.accepted.path.back();
    const std::int32_t c = st.n_prompt[static_cast<std::size_t>(a)];
    const std::int32_t m = a_->ensemble;
    const auto n_vocab = static_cast<std::size_t>(o.logits.n_vocab);
    st.guesses = c;
    std::vector<float> mean;
    for (std::int32_t i = 0; i < c; ++i) {
      auto& ids = st.topk[static_cast<std::size_t>(i)];
      ids.resize(static_cast<std::size_t>(a_->top_k));
      const auto row_of = [&](std::int32_t j) {
        return o.tree.size() + st.first_extra[static_cast<std::size_t>(a)] + j * c + i;
      };
      if (m == 1) {
        top_k(o.logits.row(row_of(0)), ids);
        continue;
      }
      mean.assign(n_vocab, 0.0f);
      for (std::int32_t j = 0; j < m; ++j) {
        const auto row = o.logits.row(row_of(j));
        for (std::size_t v = 0; v < n_vocab; ++v) mean[v] += row[v];
      }
      top_k(mean, ids);  // the sum ranks like the mean
    }
  }

  [[nodiscard]] const ppd_artifact& artifact() const noexcept { return *a_; }
  [[nodiscard]] ppd_counters counters() const noexcept { return counters_; }

 private:
  struct request_state {
    std::int32_t guesses = 0;  // offsets with guesses (the state)
    std::vector<std::vector<token_id>> topk = std::vector<std::vector<token_id>>(8);
    std::vector<std::int32_t> first_extra;  // per node of the last draft: its first extra row
    std::vector<std::int32_t> n_prompt;     // per node of the last draft
  };

  request_state& state(request_id id) {
    auto it = states_.find(id);
    if (it == states_.end()) throw error(error_category::invalid_argument, "ppd: request " + std::to_string(id) + " was not begun");
    if (it->second.topk.size() < static_cast<std::size_t>(a_->n_prompt_tokens)) {
      it->second.topk.resize(static_cast<std::size_t>(a_->n_prompt_tokens));
    }
    return it->second;
  }

  // Gives node `node` c prompt tokens: `ensemble` chains of c rows each, chain j's row i the child of
  // row i - 1 of the same chain (row 0 the child of the node). Extra rows follow every node.
  void attach(draft_tree& t, request_state& st, std::int32_t node, std::int32_t c) {
    st.first_extra.push_back(t.n_extra());
    st.n_prompt.push_back(c);
    for (std::int32_t j = 0; j < a_->ensemble; ++j) {
      std::int32_t parent = node;
      for (std::int32_t i = 0; i < c; ++i) parent = t.add_extra(parent, a_->embedding(i, j));
    }
  }

  std::shared_ptr<const ppd_artifact> a_;
  std::unordered_map<request_id, request_state> states_;
  ppd_counters counters_;
};

}  // namespace specdec
