// model_drafter: drafts with a draft model, any sequence_model with the target's vocabulary (a second
// GGUF, the target on a subset of its layers through core/layer_subset.hpp, or a foreign engine's
// model). Four tree shapes, all drawn from the draft's distribution q (temperature, top-k) without
// replacement, so the one sampling rule (verify/sampling.hpp) verifies them all exactly:
//
//   dyspec        DySpec Algorithm 1 (arXiv 2410.11744): a max-heap of (value, node); pop the
//                 largest, draw y from the node's residual R, add y with value v R[y], re-push the
//                 node with v (1 - R[y]); a new node's distribution needs one draft forward, run
//                 when the node is first popped (nodes that stay leaves are never run).
//   dyspec-level  DySpec Algorithm 2: one batched draft forward per tree level over the whole
//                 frontier; within a level the same heap, nodes are drawn from while their value is
//                 at least the threshold (default 1 / budget), up to the budget.
//   chain         classic speculative sampling (SpS): budget - 1 tokens drawn one after another.
//   kary          a fixed k-ary tree (SpecInfer-style): `branching[d]` children per node at depth d,
//                 one batched forward per level.
//
// The draft model keeps its own cache per request, in step with the target: a draft first runs the
// context tokens it has not seen (the last accepted tokens and the bonus token, ending with the
// root), then the tree's rows; observe() records the accepted path, and the next draft() commits the
// catch-up rows plus the accepted nodes that ran (rolling back every other row) before it runs.
// The commit is deferred because the draft model may be the target itself (self-speculation), whose
// logits of the step being verified must stay valid until the decode loop commits.
//
// A draft whose head covers part of the vocabulary (core/restricted_head.hpp) proposes only those
// tokens; its columns are mapped back to token ids here. The rules stay exact for any q.
//
// Random numbers: each request has its own stream (seed, request id), independent of the rule's, as
// the rule's exactness requires. Cost: one sparse q (top_k tokens) per expanded node; the draft's
// forwards are counted in counters().
#pragma once

#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/batch.hpp>
#include <specdec/core/draft_tree.hpp>
#include <specdec/core/restricted_head.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <queue>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace specdec {

enum class draft_shape { dyspec, dyspec_level, chain, kary };

inline const char* to_string(draft_shape s) noexcept {
  switch (s) {
    case draft_shape::dyspec: return "dyspec";
    case draft_shape::dyspec_level: return "dyspec-level";
    case draft_shape::chain: return "chain";
    case draft_shape::kary: return "kary";
  }
  return "unknown";
}

struct model_drafter_options {
  draft_shape shape = draft_shape::dyspec_level;
  float temperature = 0.6f;  // the draft's temperature (the paper's 0.6); 0 = its argmax, q one-hot
  std::int32_t top_k = 32;   // q keeps the draft's top_k tokens, renormalised; 0 = the whole vocabulary
  double threshold = 0;      // dyspec-level: smallest value a node is drawn from; 0 = 1 / budget
  std::vector<std::int32_t> branching = {4, 2, 2, 1};  // kary: children per node by depth; the last repeats
  std::uint64_t seed = 0x5eedULL;                      // per request: mixed with the request id
  std::int32_t prefill_chunk = 256;                    // prompt rows per draft forward in begin()

  void validate() const {
    const auto bad = [](const std::string& w) { return error(error_category::invalid_argument, "draft model: " + w); };
    if (!(temperature >= 0.0f) || !std::isfinite(temperature)) throw bad("draft temperature must be a finite number >= 0");
    if (top_k < 0) throw bad("draft top-k must be >= 0");
    if (!(threshold >= 0.0 && threshold < 1.0)) throw bad("threshold must be in [0, 1)");
    if (branching.empty()) throw bad("branching needs at least one entry");
    for (auto b : branching) {
      if (b < 1) throw bad("branching entries must be >= 1");
    }
    if (prefill_chunk < 1) throw bad("prefill chunk must be >= 1");
  }
};

// What the drafter spent, over its lifetime (all requests).
struct model_drafter_counters {
  std::int64_t drafts = 0;         // draft() calls that grew a tree
  std::int64_t forwards = 0;       // draft-model forwards while drafting (prefill in begin() apart)
  std::int64_t rows = 0;           // rows those forwards ran
  std::int64_t nodes = 0;          // drafted nodes (root excluded)
  double forward_s = 0;            // time in those forwards
  double grow_s = 0;               // time in tree growth besides the forwards (q, heap, draws)
};

template <sequence_model Draft>
class model_drafter {
 public:
  model_drafter(Draft& m, model_drafter_options o) : m_(&m), opt_(std::move(o)) { opt_.validate(); }
  model_drafter(const model_drafter&) = delete;
  model_drafter& operator=(const model_drafter&) = delete;
  model_drafter(model_drafter&&) noexcept = default;
  model_drafter& operator=(model_drafter&&) noexcept = default;
  ~model_drafter() {
    for (auto& [id, s] : states_) {
      try {
        m_->free_sequence(s.seq);
      } catch (...) {  // the model is being torn down
      }
    }
  }

  [[nodiscard]] const model_drafter_options& options() const noexcept { return opt_; }
  [[nodiscard]] const model_drafter_counters& counters() const noexcept { return counters_; }

  void begin(request_id id, std::span<const token_id> prompt) {
    if (states_.count(id) != 0) throw error(error_category::invalid_argument, "draft model: request " + std::to_string(id) + " began twice");
    state s;
    s.seq = m_->create_sequence();
    // Mixed with how many requests began before, so that requests reusing an id (one decoder per
    // call of generate()) still draw differently; deterministic for a given order of requests.
    s.rng.seed(opt_.seed ^ (0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(id + 1)) ^
               (0xbf58476d1ce4e5b9ULL * ++begun_));
    // The prompt but its last token (the first root), in chunks, without logits.
    const auto head = static_cast<std::int32_t>(prompt.size()) - 1;
    try {
      for (std::int32_t at = 0; at < head && head < m_->n_ctx(); at += opt_.prefill_chunk) {
        const std::int32_t n = std::min(opt_.prefill_chunk, head - at);
        forward_batch b;
        b.steps.push_back(sequence_step::chain(s.seq, prompt.subspan(static_cast<std::size_t>(at), static_cast<std::size_t>(n)),
                                               at, logits_request::none));
        (void)m_->forward(b);
        std::vector<std::int32_t> rows(static_cast<std::size_t>(n));
        for (std::int32_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = i;
        m_->commit(s.seq, rows);
        s.synced = at + n;
      }
    } catch (...) {
      m_->free_sequence(s.seq);
      throw;
    }
    states_.emplace(id, std::move(s));
  }

  draft_tree draft(request_id id, const draft_request& r) {
    state& s = at(id);
    settle(s);
    draft_tree t = draft_tree::root_only(r.context.back());
    s.chain = 0;
    s.row_of.assign(1, -1);
    const auto n_ctx_tokens = static_cast<std::int32_t>(r.context.size());
    SPECDEC_ASSERT(s.synced < n_ctx_tokens);
    const std::int32_t chain = n_ctx_tokens - s.synced;
    // Rows this draft may run: the catch-up chain and at most budget - 1 tree rows.
    if (r.budget < 2 || m_->n_past(s.seq) + chain + r.budget - 1 > m_->n_ctx()) return t;

    const auto t0 = clock::now();
    double fwd0 = counters_.forward_s;
    ++counters_.drafts;
    s.chain = chain;
    s.n_rows = 0;
    {
      sequence_step st = sequence_step::chain(s.seq, r.context.subspan(static_cast<std::size_t>(s.synced)), s.synced,
                                              logits_request::last);
      const auto l = run(st);
      s.n_rows = chain;
      s.row_of[0] = chain - 1;
      t.set_children_distribution(0, make_q(l.row(0)));
    }
    s.root_pos = s.synced + chain - 1;
    switch (opt_.shape) {
      case draft_shape::dyspec: grow_dyspec(s, t, r.budget); break;
      case draft_shape::dyspec_level: grow_levels(s, t, r.budget); break;
      case draft_shape::chain: grow_chain(s, t, r.budget); break;
      case draft_shape::kary: grow_kary(s, t, r.budget); break;
    }
    counters_.nodes += t.size() - 1;
    counters_.grow_s += std::chrono::duration<double>(clock::now() - t0).count() - (counters_.forward_s - fwd0);
    return t;
  }

  void observe(request_id id, const step_outcome& o) {
    state& s = at(id);
    s.commit.clear();
    if (s.chain == 0) {  // nothing ran this step
      s.has_commit = true;
      return;
    }
    for (std::int32_t i = 0; i < s.chain; ++i) s.commit.push_back(i);
    for (std::size_t k = 1; k < o.accepted.path.size(); ++k) {
      const std::int32_t row = s.row_of[static_cast<std::size_t>(o.accepted.path[k])];
      if (row < 0) break;  // an accepted leaf the draft never ran: caught up next time
      s.commit.push_back(row);
    }
    s.has_commit = true;
  }

  void end(request_id id) {
    auto it = states_.find(id);
    if (it == states_.end()) return;
    m_->free_sequence(it->second.seq);
    states_.erase(it);
  }

 private:
  using clock = std::chrono::steady_clock;

  struct state {
    seq_id seq = -1;
    std::int32_t synced = 0;           // context tokens committed in the draft's cache
    std::int32_t chain = 0;            // catch-up rows of the last draft (its last one is the root)
    std::int32_t n_rows = 0;           // pending rows of the last draft
    std::int32_t root_pos = 0;         // position of the root
    std::vector<std::int32_t> row_of;  // last tree: pending row of each node, -1 if it never ran
    std::vector<std::int32_t> commit;  // rows to keep, from observe()
    bool has_commit = false;
    std::mt19937_64 rng;
  };

  // What is left to draw from a node: q with the tokens already drawn removed.
  struct residual {
    std::vector<double> left;  // q's probabilities, 0 where drawn
    double mass = 0;
  };

  state& at(request_id id) {
    auto it = states_.find(id);
    if (it == states_.end()) throw error(error_category::invalid_argument, "draft model: request " + std::to_string(id) + " has not begun");
    return it->second;
  }

  void settle(state& s) {
    if (s.has_commit) {
      m_->commit(s.seq, s.commit);
      s.synced += static_cast<std::int32_t>(s.commit.size());
    } else if (m_->n_pending(s.seq) > 0) {
      m_->commit(s.seq, std::span<const std::int32_t>{});
    }
    s.has_commit = false;
    s.commit.clear();
  }

  logits_view run(const sequence_step& st) {
    forward_batch b;
    b.steps.push_back(st);
    const auto t0 = clock::now();
    last_ = m_->forward(b);
    counters_.forward_s += std::chrono::duration<double>(clock::now() - t0).count();
    ++counters_.forwards;
    counters_.rows += st.size();
    return last_.step(0);
  }

  token_distribution make_q(std::span<const float> row) const {
    token_distribution d;
    if (opt_.temperature <= 0.0f) {
      d.ids = {argmax(row)};
      d.probs = {1.0f};
    } else {
      d = distribution(row, sampling_params{opt_.temperature, opt_.top_k, 1.0f});
    }
    // A draft with a restricted head (core/restricted_head.hpp): column j is token output_tokens()[j].
    if constexpr (vocabulary_subset_model<Draft>) {
      const std::span<const token_id> map = m_->output_tokens();
      for (auto& id : d.ids) id = map[static_cast<std::size_t>(id)];
    }
    return d;
  }

  // Runs `nodes` (their parents have run) as one draft forward; sets their rows and distributions.
  void run_nodes(state& s, draft_tree& t, const std::vector<std::int32_t>& nodes) {
    if (nodes.empty()) return;
    sequence_step st;
    st.seq = s.seq;
    for (const auto n : nodes) {
      st.tokens.push_back(t.tokens[static_cast<std::size_t>(n)]);
      st.positions.push_back(s.root_pos + t.depth[static_cast<std::size_t>(n)]);
      st.parents.push_back(s.row_of[static_cast<std::size_t>(t.parent[static_cast<std::size_t>(n)])]);
      s.row_of[static_cast<std::size_t>(n)] = s.n_rows++;
    }
    const auto l = run(st);
    for (std::size_t i = 0; i < nodes.size(); ++i) t.set_children_distribution(nodes[i], make_q(l.row(static_cast<std::int32_t>(i))));
  }

  std::int32_t add(state& s, draft_tree& t, std::int32_t parent, token_id y) {
    const auto c = t.add(parent, y);
    s.row_of.push_back(-1);
    return c;
  }

  residual start(const draft_tree& t, std::int32_t node) const {
    const token_distribution* q = t.children_drawn_from(node);
    residual r;
    r.left.assign(q->probs.begin(), q->probs.end());
    for (double x : r.left) r.mass += x;
    return r;
  }

  // Draws one token from what is left of node's q; returns (token, R[y] = its share of what was left).
  std::pair<token_id, double> draw(state& s, const draft_tree& t, std::int32_t node, residual& r) {
    const token_distribution* q = t.children_drawn_from(node);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const double u = uniform(s.rng) * r.mass;
    double acc = 0;
    std::size_t pick = r.left.size();
    for (std::size_t i = 0; i < r.left.size(); ++i) {
      if (r.left[i] <= 0) continue;
      acc += r.left[i];
      pick = i;
      if (u < acc) break;
    }
    SPECDEC_ASSERT(pick < r.left.size());
    const double share = r.left[pick] / r.mass;
    r.mass -= r.left[pick];
    r.left[pick] = 0;
    if (r.mass < 1e-12) r.mass = 0;
    return {q->ids[pick], share};
  }

  struct entry {
    double value;
    std::int32_t node;
    bool operator<(const entry& o) const noexcept { return value < o.value || (value == o.value && node > o.node); }
  };

  void grow_dyspec(state& s, draft_tree& t, std::int32_t budget) {
    std::vector<residual> res(static_cast<std::size_t>(budget));
    std::priority_queue<entry> heap;
    res[0] = start(t, 0);
    heap.push({1.0, 0});
    while (t.size() < budget && !heap.empty()) {
      const entry e = heap.top();
      heap.pop();
      if (t.children_drawn_from(e.node) == nullptr) {
        run_nodes(s, t, {e.node});
        res[static_cast<std::size_t>(e.node)] = start(t, e.node);
      }
      residual& r = res[static_cast<std::size_t>(e.node)];
      if (r.mass <= 0) continue;
      const auto [y, share] = draw(s, t, e.node, r);
      const auto c = add(s, t, e.node, y);
      heap.push({e.value * share, c});
      if (r.mass > 0) heap.push({e.value * (1.0 - share), e.node});
    }
  }

  void grow_levels(state& s, draft_tree& t, std::int32_t budget) {
    const double threshold = opt_.threshold > 0 ? opt_.threshold : 1.0 / budget;
    std::vector<residual> res(static_cast<std::size_t>(budget));
    std::vector<entry> frontier = {{1.0, 0}};
    bool first = true;
    while (!frontier.empty() && t.size() < budget) {
      if (!first) {
        std::vector<std::int32_t> nodes;
        for (const auto& e : frontier) nodes.push_back(e.node);
        run_nodes(s, t, nodes);
      }
      first = false;
      std::priority_queue<entry> heap(frontier.begin(), frontier.end());
      for (const auto& e : frontier) res[static_cast<std::size_t>(e.node)] = start(t, e.node);
      std::vector<entry> next;
      while (!heap.empty() && t.size() < budget) {
        const entry e = heap.top();
        heap.pop();
        if (e.value < threshold) break;
        residual& r = res[static_cast<std::size_t>(e.node)];
        const auto [y, share] = draw(s, t, e.node, r);
        const auto c = add(s, t, e.node, y);
        if (e.value * share >= threshold) next.push_back({e.value * share, c});
        if (r.mass > 0) heap.push({e.value * (1.0 - share), e.node});
      }
      if (t.size() >= budget) break;
      frontier = std::move(next);
    }
  }

  void grow_chain(state& s, draft_tree& t, std::int32_t budget) {
    std::int32_t node = 0;
    while (true) {
      residual r = start(t, node);
      const auto [y, share] = draw(s, t, node, r);
      (void)share;
      node = add(s, t, node, y);
      if (t.size() >= budget) return;
      run_nodes(s, t, {node});
    }
  }

  void grow_kary(state& s, draft_tree& t, std::int32_t budget) {
    std::vector<entry> frontier = {{1.0, 0}};
    for (std::size_t depth = 0; !frontier.empty() && t.size() < budget; ++depth) {
      if (depth > 0) {
        std::vector<std::int32_t> nodes;
        for (const auto& e : frontier) nodes.push_back(e.node);
        run_nodes(s, t, nodes);
      }
      const std::int32_t b = opt_.branching[std::min(depth, opt_.branching.size() - 1)];
      // Best frontier nodes first, so a budget cut keeps the likeliest subtrees.
      std::stable_sort(frontier.begin(), frontier.end(), [](const entry& a, const entry& c) { return a.value > c.value; });
      std::vector<entry> next;
      for (const auto& e : frontier) {
        residual r = start(t, e.node);
        for (std::int32_t k = 0; k < b && r.mass > 0 && t.size() < budget; ++k) {
          const auto [y, share] = draw(s, t, e.node, r);
          next.push_back({e.value * share, add(s, t, e.node, y)});
        }
      }
      if (t.size() >= budget) break;
      frontier = std::move(next);
    }
  }

  Draft* m_;
  model_drafter_options opt_;
  std::map<request_id, state> states_;
  model_drafter_counters counters_;
  std::uint64_t begun_ = 0;
  batch_logits last_;
};

}  // namespace specdec
