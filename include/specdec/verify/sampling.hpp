// The lossless sampling rule. It walks the verified tree from the root, and at each accepted node
// does one of two things, depending on how the node's children were made:
//
//  * children proposed without a distribution (Token Recycling, Lookahead, any tree without q): draw
//    x from the target distribution (temperature, top-k, top-p applied); if a child carries x, accept
//    it and continue from there, else emit x and stop. Each emitted token is a draw from the target's
//    distribution given the tokens before it, exactly as in plain sampling, because the draft is fixed
//    before the draws and one draw is consumed per emitted token.
//
//  * children drawn from a draft distribution q without replacement (draft_tree::q_of, drafters with
//    a model): multi-candidate speculative sampling (SpecInfer, Sequoia; DySpec's Algorithm 3). Try
//    the children in the order they were drawn; child y is accepted with probability
//    min(1, p(y) / q(y)) (one uniform u, accept if u q(y) < p(y)). On rejection the target's
//    distribution becomes the residual p <- norm(max(p - q, 0)) and y leaves q (q(y) <- 0,
//    renormalised), because the next child was drawn from that reduced q. If no child is accepted,
//    the token is drawn from the residual p. For one child this is the classic speculative sampling
//    rule; the emitted token is distributed as p whatever q was.
//
// A tree may mix both kinds of node. Exactness needs the draft to be drawn with random numbers
// independent of the rule's (drafters own their random streams). At temperature 0 the decode loop
// uses greedy_rule; this rule with greedy parameters walks argmax choices.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/verify/tree_walk.hpp>

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace specdec {

namespace detail {

// The target distribution at one node as unnormalised weights over the whole vocabulary (w / total
// is the distribution), so that residual updates touch only q's support.
struct residual_distribution {
  std::vector<double> w;
  double total = 0;

  void assign(const token_distribution& p, std::int32_t n_vocab) {
    w.assign(static_cast<std::size_t>(n_vocab), 0.0);
    total = 0;
    for (std::size_t i = 0; i < p.ids.size(); ++i) {
      w[static_cast<std::size_t>(p.ids[i])] = p.probs[i];
      total += p.probs[i];
    }
  }
  // p <- norm(max(p - q, 0)), q normalised over `support` (mass qs in all).
  void subtract(const std::vector<token_id>& ids, const std::vector<double>& qp, double qs) {
    const double scale = total / qs;  // q in the units of w; fixed before any weight changes
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (qp[i] <= 0) continue;
      double& x = w[static_cast<std::size_t>(ids[i])];
      const double nx = std::max(x - qp[i] * scale, 0.0);
      total -= x - nx;
      x = nx;
    }
  }
  template <class Rng>
  token_id sample(Rng& rng) const {
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    const double u = uniform(rng) * total;
    double acc = 0;
    token_id last = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      if (w[i] <= 0) continue;
      acc += w[i];
      last = static_cast<token_id>(i);
      if (u < acc) return last;
    }
    return last;
  }
};

}  // namespace detail

struct sampling_rule {
  sampling_params params;

  template <class Rng>
  acceptance accept(const draft_tree& tree, const logits_view& logits, Rng& rng) const {
    if (params.greedy() || tree.q_of.empty()) {
      return detail::walk_tree(tree, logits, [&](std::span<const float> row) { return choose(row, params, rng); });
    }
    acceptance a;
    a.path.push_back(0);
    std::int32_t node = 0;
    detail::residual_distribution p;
    std::vector<double> qp;
    while (true) {
      const token_distribution* q = tree.children_drawn_from(node);
      if (q == nullptr) {  // children without a distribution: the plain walk step
        node = detail::walk_step(tree, node, choose(logits.row(node), params, rng), a);
        if (node < 0) return a;
        continue;
      }
      p.assign(distribution(logits.row(node), params), logits.n_vocab);
      qp.assign(q->probs.begin(), q->probs.end());
      double qs = 0;
      for (double x : qp) qs += x;
      std::int32_t accepted = -1;
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      for (std::int32_t c = node + 1; c < tree.size() && qs > 0; ++c) {
        if (tree.parent[static_cast<std::size_t>(c)] != node) continue;
        const token_id y = tree.tokens[static_cast<std::size_t>(c)];
        std::size_t k = 0;
        while (k < q->ids.size() && q->ids[k] != y) ++k;
        if (k == q->ids.size() || qp[k] <= 0) continue;  // not drawable from q (validate() refuses it)
        const double u = uniform(rng);
        // u < p(y) / q(y) with p = w / total and q = qp / qs.
        if (u * (qp[k] / qs) * p.total < p.w[static_cast<std::size_t>(y)]) {
          accepted = c;
          break;
        }
        p.subtract(q->ids, qp, qs);
        qs -= qp[k];
        qp[k] = 0;
      }
      if (accepted < 0) {
        a.next_token = p.sample(rng);
        return a;
      }
      a.path.push_back(accepted);
      node = accepted;
    }
  }
};

}  // namespace specdec
