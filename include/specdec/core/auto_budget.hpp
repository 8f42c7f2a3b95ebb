// auto_budget: the tree budget that maximises expected accepted tokens per second (--budget auto).
//
//   rate(S) = (E[accepted | S] + 1) / (E[forward seconds | S] + E[overhead seconds | S])
//
// chosen over the candidate budgets S = min_budget .. max_budget (rows per step, root included) and
// re-chosen every few steps from what the steps showed:
//
// - The backend's cost curve (core/cost_curve.hpp, measured at start-up or loaded from a cache) gives
//   the forward seconds of k rows. With online_cost, the forward times of steps that ran alone in
//   their forward refine it: each row count's mean, shrunk towards the start-up curve scaled by the
//   ratio of all observed times to the curve's (cost_prior_weight pseudo-steps).
// - acceptance_tracker estimates the acceptance of the drafter's nodes by (depth, rank): after each
//   step, every node whose parent is on the accepted path was tested; it is a success when it is on
//   the path too. rank = the node's index among its parent's children in tree order (drafters add
//   children in order of preference). Each cell has a Beta prior (its mean: the cell one level up,
//   or the next better rank times prior_rank_ratio) and counts decay by 1 - 1/window per step, so
//   the estimates follow the text. The model of E[accepted] of a k-node tree is the best such tree
//   under independence: best-first expansion over path products of the (depth, rank) estimates,
//   among the ranks the drafter has produced; its value is the sum of the chosen path products.
// - Drafters do not always fill the budget (Lookahead's trie may hold nothing; duplicates are
//   dropped). The rows a step actually ran, against the budget it was allowed, give a Kaplan-Meier
//   estimate of P(the drafter has >= k rows to offer) over the last `window` steps (a step that
//   filled its budget is censored there). Cost and the model are averaged over
//   k = min(available, S), so a budget is not charged for rows the drafter would not use.
// - Measured acceptance per budget: the model over-promises for drafters whose trees are not the
//   best tree (Lookahead's retrieval spends a small budget on siblings, or switches to a shorter
//   query, where the model would go deeper), so E[accepted | S] is what the steps that ran budget S
//   accepted (decayed), with the model as a prior of measured_strength steps. The prior of a budget
//   is the model's value times the measured / model ratio of the budget below it, so a budget not
//   tried yet starts from the model corrected as much as its neighbour showed it needs. Measuring
//   each budget's own steps also keeps the choice honest where the drafter's acceptance differs
//   from budget to budget for reasons no (depth, rank) table sees. A drafter whose accepted model
//   knows its exact tree shape (Token Recycling's template) sets measured_strength 0: the model
//   alone, since the budgets not in use get only a few, noisy exploration steps.
// - Overhead (draft + accept + commit + observe of the request) is fitted online as a + b * rows by
//   decayed least squares (a draft model's time grows with its tree; with one row count observed,
//   proportional to rows).
// - Moves: the choice rises at most max_step_up candidates per re-choice, so each budget on the way
//   up is measured before the next (the model's promise for far budgets is the least reliable); it
//   falls at once.
// - Exploration: every explore_every-th budget() call asks for a budget next to the best (+1, -1,
//   +1, then the largest budget above whose step costs at most explore_cost = 15 % more, in turn),
//   so neighbouring budgets get measured and deeper / wider nodes get trials: far on a flat cost
//   curve (fp32 weights), near on a steep one (block-quantized weights), where a far budget costs
//   much more than it teaches. It is deterministic (a call counter), never the acceptance rule's
//   random stream: a draft must not depend on the randomness of the step that verifies it, and
//   the budget is an input of the draft. Any budget is lossless.
// - Memory: every statistic decays by 1 - 1/512 per step (a few prompts). Shorter windows follow
//   one prompt's text more closely but chase noise: on the dev prompts, 256 steps made the choice
//   swing with each prompt (docs/design.md, "Rules, budgets, stats").
//
// Customisation (drafters whose trees are not plain node trees, e.g. parallel prompt decoding with
// extra rows): set_accepted_model replaces E[accepted | k rows] (k = rows of the step; the tracker is
// passed for its estimates), set_nodes_for_rows replaces the default "nodes = rows" of the best-tree
// model, and set_rows_for_budget declares that a budget of S rows always runs rows_for_budget(S)
// rows (a drafter with fixed tree shapes per budget): the availability estimate is then not used.
// Candidate budgets can be restricted to a list (auto_budget_options::candidates).
//
// One auto_budget serves every request of a decoder and outlives it, like the drafter: acceptance is
// a property of the drafter (and its learned state), not of one request, so a program keeps one per
// method for its whole run (hot start). Not thread-safe: one decoder thread drives it.
#pragma once

#include <specdec/core/budget_policy.hpp>
#include <specdec/core/cost_curve.hpp>
#include <specdec/core/draft_tree.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <queue>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace specdec {

struct acceptance_tracker_options {
  double prior_accept = 0.3;      // prior mean at depth 1, rank 0
  double prior_rank_ratio = 0.5;  // prior mean at rank r + 1: the estimate at rank r times this
  double prior_strength = 2.0;    // pseudo-trials of each cell's prior
  double window = 512;            // steps: counts decay by 1 - 1/window per step; 0 = no decay
  std::int32_t max_depth = 64;    // deeper nodes and higher ranks are not counted
  std::int32_t max_rank = 32;
};

class acceptance_tracker {
 public:
  explicit acceptance_tracker(const acceptance_tracker_options& o = {}) : opt_(o) {
    if (o.max_depth < 1 || o.max_rank < 1 || !(o.prior_strength > 0) || o.window < 0 || !(o.prior_accept > 0) ||
        !(o.prior_accept < 1) || !(o.prior_rank_ratio > 0) || !(o.prior_rank_ratio <= 1)) {
      throw error(error_category::invalid_argument, "acceptance_tracker: options out of range");
    }
    trials_.assign(cells(), 0.0);
    hits_.assign(cells(), 0.0);
  }

  // One verified step: the tree and its accepted path (node indices from the root).
  void observe(const draft_tree& t, std::span<const std::int32_t> path) {
    if (opt_.window > 0) {
      const double keep = 1.0 - 1.0 / std::max(1.0, opt_.window);
      for (std::int32_t d = 1; d <= depth_used_; ++d) {
        for (std::int32_t r = 0; r < rank_used_; ++r) {
          trials_[at(d, r)] *= keep;
          hits_[at(d, r)] *= keep;
        }
      }
    }
    const auto n = static_cast<std::size_t>(t.size());
    rank_.assign(n, 0);
    children_.assign(n, 0);
    on_path_.assign(n, 0);
    for (const std::int32_t p : path) {
      if (p >= 0 && static_cast<std::size_t>(p) < n) on_path_[static_cast<std::size_t>(p)] = 1;
    }
    for (std::size_t i = 1; i < n; ++i) {
      const auto p = static_cast<std::size_t>(t.parent[i]);
      rank_[i] = children_[p]++;
      ranks_produced_ = std::max(ranks_produced_, std::min(rank_[i] + 1, opt_.max_rank));
      const std::int32_t d = t.depth[i];
      if (!on_path_[p] || d > opt_.max_depth || rank_[i] >= opt_.max_rank) continue;
      trials_[at(d, rank_[i])] += 1.0;
      if (on_path_[i]) hits_[at(d, rank_[i])] += 1.0;
      depth_used_ = std::max(depth_used_, d);
      rank_used_ = std::max(rank_used_, rank_[i] + 1);
    }
    ++steps_;
    dirty_ = true;
  }

  // P(a node at this depth (>= 1) and rank is accepted | its parent was): the posterior mean.
  [[nodiscard]] double estimate(std::int32_t depth, std::int32_t rank) const {
    if (depth < 1 || rank < 0) return 0.0;
    refresh();
    if (depth > opt_.max_depth) depth = opt_.max_depth;
    if (rank >= opt_.max_rank) return 0.0;
    return est_[at(depth, rank)];
  }
  // Decayed counts of a cell.
  [[nodiscard]] double trials(std::int32_t depth, std::int32_t rank) const {
    return depth < 1 || depth > opt_.max_depth || rank < 0 || rank >= opt_.max_rank ? 0.0 : trials_[at(depth, rank)];
  }
  [[nodiscard]] double successes(std::int32_t depth, std::int32_t rank) const {
    return depth < 1 || depth > opt_.max_depth || rank < 0 || rank >= opt_.max_rank ? 0.0 : hits_[at(depth, rank)];
  }
  // Ranks the drafter has produced (highest child index + 1 over every tree seen; at least 1).
  [[nodiscard]] std::int32_t ranks() const noexcept { return std::max(1, ranks_produced_); }
  [[nodiscard]] std::int64_t steps() const noexcept { return steps_; }
  [[nodiscard]] const acceptance_tracker_options& options() const noexcept { return opt_; }

  // [k] for k = 0 .. max_nodes: expected accepted tokens of the best k-node tree (root excluded)
  // under independence: best-first over path products of estimate(depth, rank), rank < ranks().
  [[nodiscard]] std::vector<double> best_tree(std::int32_t max_nodes) const {
    refresh();
    std::vector<double> acc(static_cast<std::size_t>(std::max(0, max_nodes)) + 1, 0.0);
    struct item {
      double value;
      std::int32_t depth;
      bool operator<(const item& o) const { return value < o.value; }
    };
    std::priority_queue<item> heap;
    const std::int32_t R = ranks();
    for (std::int32_t r = 0; r < R; ++r) heap.push({est_[at(1, r)], 1});
    for (std::int32_t k = 1; k <= max_nodes; ++k) {
      if (heap.empty()) {
        acc[static_cast<std::size_t>(k)] = acc[static_cast<std::size_t>(k - 1)];
        continue;
      }
      const item best = heap.top();
      heap.pop();
      acc[static_cast<std::size_t>(k)] = acc[static_cast<std::size_t>(k - 1)] + best.value;
      if (best.depth < opt_.max_depth) {
        for (std::int32_t r = 0; r < R; ++r) heap.push({best.value * est_[at(best.depth + 1, r)], best.depth + 1});
      }
    }
    return acc;
  }

 private:
  [[nodiscard]] std::size_t cells() const {
    return static_cast<std::size_t>(opt_.max_depth + 1) * static_cast<std::size_t>(opt_.max_rank);
  }
  [[nodiscard]] std::size_t at(std::int32_t d, std::int32_t r) const {
    return static_cast<std::size_t>(d) * static_cast<std::size_t>(opt_.max_rank) + static_cast<std::size_t>(r);
  }
  void refresh() const {
    if (!dirty_) return;
    est_.assign(cells(), 0.0);
    const double a0 = opt_.prior_strength;
    for (std::int32_t d = 1; d <= opt_.max_depth; ++d) {
      for (std::int32_t r = 0; r < opt_.max_rank; ++r) {
        const double prior = r > 0 ? est_[at(d, r - 1)] * opt_.prior_rank_ratio
                           : d > 1 ? est_[at(d - 1, 0)]
                                   : opt_.prior_accept;
        est_[at(d, r)] = (hits_[at(d, r)] + a0 * prior) / (trials_[at(d, r)] + a0);
      }
    }
    dirty_ = false;
  }

  acceptance_tracker_options opt_;
  std::vector<double> trials_, hits_;
  std::int32_t depth_used_ = 0, rank_used_ = 0, ranks_produced_ = 0;
  std::int64_t steps_ = 0;
  std::vector<std::int32_t> rank_, children_;
  std::vector<char> on_path_;
  mutable std::vector<double> est_;
  mutable bool dirty_ = true;
};

struct auto_budget_options {
  std::int32_t min_budget = 1;   // 1 lets the policy fall back to plain decoding where drafts do not pay
  std::int32_t max_budget = 16;  // the drafter must be able to fill it (tree template, decoding length)
  std::int32_t rechoose_every = 4;   // steps between two choices
  std::int32_t explore_every = 16;   // every n-th budget() call explores; 0 = never
  // Offsets from the best, in turn (in candidates); explore_far = the largest budget above the best
  // whose step costs at most explore_cost more (at least the next one): far on a flat cost curve,
  // near on a steep one.
  std::vector<std::int32_t> explore_steps = {1, -1, 1, 0};
  double explore_cost = 0.15;
  double window = 512;               // steps: decay of every statistic (acceptance's own: acceptance.window)
  // Pseudo-steps of the model in each budget's measured E[accepted]; 0 = the model alone (for a
  // drafter whose accepted model knows its exact tree shape, e.g. Token Recycling's template).
  double measured_strength = 2;
  std::int32_t max_step_up = 1;      // candidates the choice may rise per re-choice; 0 = any
  bool online_cost = true;           // refine the cost curve with the forwards' measured times
  double cost_prior_weight = 4;      // pseudo-steps of the (scaled) start-up curve per row count
  std::vector<std::int32_t> candidates;  // budgets to choose from; empty = every one in [min, max]
  acceptance_tracker_options acceptance;
};

class auto_budget final : public budget_policy {
 public:
  static constexpr std::int32_t explore_far = 0;  // in auto_budget_options::explore_steps
  // E[accepted tokens] of a step that runs `rows` rows (root and extra rows included).
  using accepted_model = std::function<double(std::int32_t rows, const acceptance_tracker&)>;
  // Candidate nodes (root included) in a step of `rows` rows.
  using nodes_for_rows = std::function<std::int32_t(std::int32_t rows)>;
  // Rows a step allowed `budget` rows runs.
  using rows_for_budget = std::function<std::int32_t(std::int32_t budget)>;

  // Throws invalid_argument for an empty curve or options out of range.
  explicit auto_budget(cost_curve curve, const auto_budget_options& o = {})
      : opt_(o), curve_(std::move(curve)), tracker_(o.acceptance) {
    if (curve_.empty()) throw error(error_category::invalid_argument, "auto_budget: empty cost curve");
    if (o.min_budget < 1 || o.max_budget < o.min_budget || o.max_budget > (1 << 16) || o.rechoose_every < 1 ||
        o.explore_every < 0 || o.window < 0 || o.cost_prior_weight <= 0 || o.explore_steps.empty() ||
        !(o.measured_strength >= 0)) {
      throw error(error_category::invalid_argument, "auto_budget: options out of range (min_budget " +
                                                        std::to_string(o.min_budget) + ", max_budget " +
                                                        std::to_string(o.max_budget) + ")");
    }
    std::sort(opt_.candidates.begin(), opt_.candidates.end());
    std::erase_if(opt_.candidates, [&](std::int32_t c) { return c < o.min_budget || c > o.max_budget; });
    if (!o.candidates.empty() && opt_.candidates.empty()) {
      throw error(error_category::invalid_argument, "auto_budget: no candidate budget within [min_budget, max_budget]");
    }
    const auto n = static_cast<std::size_t>(o.max_budget) + 2;
    cost_w_.assign(n, 0.0);
    cost_s_.assign(n, 0.0);
    emp_a_.assign(n, 0.0);
    emp_n_.assign(n, 0.0);
  }

  void set_accepted_model(accepted_model f) {
    model_ = std::move(f);
    stale_ = true;
  }
  void set_nodes_for_rows(nodes_for_rows f) {
    nodes_ = std::move(f);
    stale_ = true;
  }
  void set_rows_for_budget(rows_for_budget f) {
    rows_ = std::move(f);
    stale_ = true;
  }
  // See auto_budget_options::measured_strength.
  void set_measured_strength(double n0) {
    if (!(n0 >= 0)) throw error(error_category::invalid_argument, "auto_budget: measured_strength must be >= 0");
    opt_.measured_strength = n0;
    stale_ = true;
  }

  std::int32_t budget(request_id, std::int32_t max_rows) override {
    if (stale_ || since_choice_ >= opt_.rechoose_every) choose();
    std::int32_t b = best_;
    ++calls_;
    if (opt_.explore_every > 0 && calls_ % opt_.explore_every == 0) {
      const auto& up = opt_.explore_steps;
      std::int32_t k = up[static_cast<std::size_t>(calls_ / opt_.explore_every) % up.size()];
      if (k == explore_far) {  // the largest budget above whose step costs at most explore_cost more
        k = 1;
        const double limit = (1.0 + opt_.explore_cost) * expect(best_, seconds_);
        std::int32_t above = 0;
        for (std::int32_t s = best_ + 1; s <= opt_.max_budget; ++s) {
          if (!opt_.candidates.empty() && !std::binary_search(opt_.candidates.begin(), opt_.candidates.end(), s)) continue;
          ++above;
          if (expect(s, seconds_) <= limit) k = above;
        }
      }
      if (opt_.candidates.empty()) {
        if (best_ + k < opt_.min_budget) k = -k;  // nothing below the smallest: look above instead
        b = std::clamp(best_ + k, opt_.min_budget, opt_.max_budget);
      } else {  // the k-th candidate above (below) the best
        const auto& c = opt_.candidates;
        const auto at = std::lower_bound(c.begin(), c.end(), best_) - c.begin();
        const auto n = static_cast<std::ptrdiff_t>(c.size());
        std::ptrdiff_t j = at + k;
        if (j < 0) j = at - k;
        b = c[static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(j, 0, n - 1))];
      }
    }
    return std::clamp(b, 1, std::max(1, max_rows));
  }

  void observe(const budget_step& s) override {
    tracker_.observe(s.tree, s.accepted.path);
    const std::int32_t rows = s.tree.n_rows();
    const double keep = opt_.window > 0 ? 1.0 - 1.0 / std::max(1.0, opt_.window) : 1.0;
    // Availability: (rows run, rows allowed) of the last `window` steps.
    const auto cap = static_cast<std::size_t>(opt_.window > 0 ? std::max(1.0, opt_.window) : 1e9);
    if (avail_.size() < cap) {
      avail_.push_back({rows, s.budget});
    } else {
      avail_[avail_next_ % cap] = {rows, s.budget};
    }
    ++avail_next_;
    // What steps at this budget accepted.
    for (std::size_t k = 0; k < emp_a_.size(); ++k) {
      emp_a_[k] *= keep;
      emp_n_[k] *= keep;
    }
    if (s.budget >= 1 && static_cast<std::size_t>(s.budget) < emp_a_.size()) {
      emp_a_[static_cast<std::size_t>(s.budget)] += static_cast<double>(s.accepted.path.size()) - 1.0;
      emp_n_[static_cast<std::size_t>(s.budget)] += 1.0;
    }
    // Overhead: decayed least squares of seconds against rows.
    ov_w_ = ov_w_ * keep + 1;
    ov_x_ = ov_x_ * keep + rows;
    ov_y_ = ov_y_ * keep + s.overhead_s;
    ov_xx_ = ov_xx_ * keep + static_cast<double>(rows) * rows;
    ov_xy_ = ov_xy_ * keep + rows * s.overhead_s;
    // Forward cost, when this request had the forward to itself.
    if (opt_.online_cost && s.forward_rows == rows && s.forward_s > 0 && rows <= opt_.max_budget + 1) {
      for (std::size_t k = 0; k < cost_w_.size(); ++k) {
        cost_w_[k] *= keep;
        cost_s_[k] *= keep;
      }
      cost_w_[static_cast<std::size_t>(rows)] += 1;
      cost_s_[static_cast<std::size_t>(rows)] += s.forward_s;
      obs_s_ = obs_s_ * keep + s.forward_s;
      obs_curve_ = obs_curve_ * keep + curve_.seconds(rows);
    }
    ++since_choice_;
    ++steps_;
  }

  // ---- what the choice is made of (tests, reports) ----

  // The budget exploitation would use now (exploration aside); recomputed by budget() every few steps.
  [[nodiscard]] std::int32_t best() const noexcept { return best_; }
  // Recomputes best() now (budget() does so every rechoose_every steps).
  std::int32_t rechoose() {
    choose();
    return best_;
  }
  [[nodiscard]] const acceptance_tracker& acceptance() const noexcept { return tracker_; }
  [[nodiscard]] const cost_curve& curve() const noexcept { return curve_; }
  [[nodiscard]] const auto_budget_options& options() const noexcept { return opt_; }
  [[nodiscard]] std::int64_t steps() const noexcept { return steps_; }

  // Seconds of a forward of k rows: the start-up curve, refined online (see the top).
  [[nodiscard]] double forward_seconds(std::int32_t k) const {
    const double c = curve_.seconds(k);
    if (!opt_.online_cost || k < 1 || static_cast<std::size_t>(k) >= cost_w_.size()) return c;
    const double scale = obs_curve_ > 0 ? obs_s_ / obs_curve_ : 1.0;
    const double n0 = opt_.cost_prior_weight;
    const auto uk = static_cast<std::size_t>(k);
    return (cost_s_[uk] + n0 * scale * c) / (cost_w_[uk] + n0);
  }
  // Overhead seconds of a step of k rows: a + b * k.
  [[nodiscard]] double overhead_seconds(std::int32_t k) const {
    const auto [a, b] = overhead_fit();
    return a + b * k;
  }
  [[nodiscard]] std::pair<double, double> overhead_fit() const {
    if (ov_w_ <= 0 || ov_x_ <= 0) return {0.0, 0.0};
    const double mx = ov_x_ / ov_w_, my = ov_y_ / ov_w_;
    const double var = ov_xx_ / ov_w_ - mx * mx, cov = ov_xy_ / ov_w_ - mx * my;
    double a = 0, b = 0;
    if (var > 0.01 * mx * mx) {
      b = cov / var;
      a = my - b * mx;
    } else {
      b = my / mx;  // one row count seen: proportional to rows (conservative for a draft model)
    }
    if (b < 0) {
      b = 0;
      a = my;
    }
    if (a < 0) {
      a = 0;
      b = ov_xy_ / ov_xx_;
    }
    return {a, b};
  }
  // P(the drafter offers at least k rows), k >= 1, from the last `window` steps (Kaplan-Meier; 1 with no data).
  [[nodiscard]] std::vector<double> availability(std::int32_t max_k) const {
    std::vector<double> at_risk(static_cast<std::size_t>(max_k) + 2, 0.0), events(at_risk.size(), 0.0);
    for (const auto& [rows, budget] : avail_) {
      const std::int32_t n = std::min(rows, max_k + 1);
      for (std::int32_t j = 1; j <= n; ++j) at_risk[static_cast<std::size_t>(j)] += 1;
      if (rows < budget && rows <= max_k) events[static_cast<std::size_t>(rows)] += 1;
    }
    std::vector<double> surv(static_cast<std::size_t>(max_k) + 2, 1.0);
    for (std::int32_t j = 1; j <= max_k; ++j) {
      const auto u = static_cast<std::size_t>(j);
      const double h = at_risk[u] > 0 ? events[u] / at_risk[u] : 0.0;
      surv[u + 1] = surv[u] * (1.0 - h);
    }
    surv[0] = 1.0;
    return surv;  // [k] = P(available >= k); [max_k + 1] too
  }
  // E[accepted tokens] of a step allowed `budget` rows (root excluded, next token excluded): what
  // the steps at this budget accepted, with the model as a prior (see measured()).
  [[nodiscard]] double expected_accepted(std::int32_t budget) const {
    refresh_tables(budget);
    if (budget < 1 || budget > opt_.max_budget) return expect(budget, accepted_);
    return measured()[static_cast<std::size_t>(budget)];
  }
  // The model's value alone.
  [[nodiscard]] double model_accepted(std::int32_t budget) const {
    refresh_tables(budget);
    return expect(budget, accepted_);
  }
  // [S] for S = 0 .. max_budget: E[accepted | S] = (accepted at S + n0 * prior) / (steps at S + n0),
  // decayed sums over the steps that ran budget S, n0 = measured_strength; prior = the model's
  // value times the ratio measured / model of S - 1 (1 at S = 1), so a budget not tried yet starts
  // from the model corrected as much as the nearest smaller budget showed it needs. The model
  // (the best tree under independence) over-promises for drafters whose trees are not that tree;
  // measuring each budget's own steps corrects it for the budgets in use.
  [[nodiscard]] std::vector<double> measured() const {
    refresh_tables(opt_.max_budget);
    std::vector<double> e(static_cast<std::size_t>(opt_.max_budget) + 1, 0.0);
    const double n0 = opt_.measured_strength;
    double ratio = 1.0;
    for (std::size_t b = 1; b < e.size(); ++b) {
      const double model = expect(static_cast<std::int32_t>(b), accepted_);
      if (n0 <= 0) {
        e[b] = model;
        continue;
      }
      e[b] = (emp_a_[b] + n0 * model * ratio) / (emp_n_[b] + n0);
      if (model > 1e-9) ratio = std::clamp(e[b] / model, 0.05, 2.0);
    }
    return e;
  }
  // E[seconds] of a step allowed `budget` rows: forward plus overhead.
  [[nodiscard]] double expected_seconds(std::int32_t budget) const {
    refresh_tables(budget);
    return expect(budget, seconds_);
  }
  // Expected tokens per second at this budget (calibrated acceptance).
  [[nodiscard]] double rate(std::int32_t budget) const {
    const double t = expected_seconds(budget);
    return t > 0 ? (expected_accepted(budget) + 1.0) / t : 0.0;
  }

 private:
  // Tables over k = 1 .. n of E[accepted | k rows] and seconds(k), and the availability.
  void refresh_tables(std::int32_t n) const {
    n = std::max(n, opt_.max_budget);
    accepted_.assign(static_cast<std::size_t>(n) + 1, 0.0);
    seconds_.assign(static_cast<std::size_t>(n) + 1, 0.0);
    surv_ = availability(n);
    std::vector<double> tree;
    if (!model_) tree = tracker_.best_tree(n);
    for (std::int32_t k = 1; k <= n; ++k) {
      const auto u = static_cast<std::size_t>(k);
      if (model_) {
        accepted_[u] = model_(k, tracker_);
      } else {
        const std::int32_t nodes = std::clamp(nodes_ ? nodes_(k) : k, 1, n);
        accepted_[u] = tree[static_cast<std::size_t>(nodes - 1)];
      }
      seconds_[u] = forward_seconds(k) + overhead_seconds(k);
    }
  }
  // Sum over k of P(min(available, budget) = k) * table[k] (or table[rows_for_budget(budget)]).
  [[nodiscard]] double expect(std::int32_t budget, const std::vector<double>& table) const {
    if (rows_) {
      const auto k = std::clamp<std::int32_t>(rows_(budget), 1, static_cast<std::int32_t>(table.size()) - 1);
      return table[static_cast<std::size_t>(k)];
    }
    double e = 0;
    for (std::int32_t k = 1; k <= budget; ++k) {
      const auto u = static_cast<std::size_t>(k);
      const double p = k < budget ? surv_[u] - surv_[u + 1] : surv_[u];
      e += p * table[u];
    }
    return e;
  }
  void choose() {
    refresh_tables(opt_.max_budget);
    const auto cal = measured();
    double best_rate = -1;
    const std::int32_t previous = best_;
    std::vector<std::int32_t> up;  // candidates above the previous choice, ascending
    for (std::int32_t s = opt_.min_budget; s <= opt_.max_budget; ++s) {
      if (!opt_.candidates.empty() && std::find(opt_.candidates.begin(), opt_.candidates.end(), s) == opt_.candidates.end()) {
        continue;
      }
      if (s > previous) up.push_back(s);
      const double t = expect(s, seconds_);
      const double r = t > 0 ? (cal[static_cast<std::size_t>(s)] + 1.0) / t : 0.0;
      if (r > best_rate * (1 + 1e-9)) {
        best_rate = r;
        best_ = s;
      }
    }
    // Upwards one candidate per choice: each budget on the way is measured before the next (the
    // model's promise for far budgets is the least reliable). Downwards at once.
    if (chosen_ && opt_.max_step_up > 0 && !up.empty()) {
      const auto k = std::min<std::size_t>(static_cast<std::size_t>(opt_.max_step_up), up.size()) - 1;
      best_ = std::min(best_, up[k]);
    }
    chosen_ = true;
    since_choice_ = 0;
    stale_ = false;
  }

  auto_budget_options opt_;
  cost_curve curve_;
  acceptance_tracker tracker_;
  accepted_model model_;
  nodes_for_rows nodes_;
  rows_for_budget rows_;
  std::int32_t best_ = 1;
  std::int64_t calls_ = 0, steps_ = 0;
  std::int32_t since_choice_ = 0;
  bool stale_ = true;
  std::vector<std::pair<std::int32_t, std::int32_t>> avail_;  // (rows run, rows allowed)
  std::size_t avail_next_ = 0;
  double ov_w_ = 0, ov_x_ = 0, ov_y_ = 0, ov_xx_ = 0, ov_xy_ = 0;
  std::vector<double> cost_w_, cost_s_;
  std::vector<double> emp_a_, emp_n_;  // decayed accepted tokens and steps per budget
  bool chosen_ = false;
  double obs_s_ = 0, obs_curve_ = 0;
  mutable std::vector<double> accepted_, seconds_, surv_;
};

}  // namespace specdec
