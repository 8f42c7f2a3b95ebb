// Greedy acceptance (temperature 0): from the root, follow the child whose token equals the
// target's argmax; the argmax at the last accepted node is the next token. The emitted tokens equal
// plain greedy decoding whenever the backend's logits for a node do not depend on the rest of the
// tree (batch-invariant kernels, DESIGN.md §3).
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/verify_types.hpp>

#include <random>

namespace specdec {

struct greedy_rule {
  template <class Rng>
  acceptance accept(const draft_tree& tree, const logits_view& logits, Rng&) const {
    acceptance a;
    std::int32_t node = 0;
    a.path.push_back(0);
    while (true) {
      const token_id best = argmax(logits.row(node));
      const std::int32_t child = tree.find_child(node, best);
      if (child < 0) {
        a.next_token = best;
        return a;
      }
      a.path.push_back(child);
      node = child;
    }
  }
};

}  // namespace specdec
