// Greedy acceptance (temperature 0): from the root, follow the child whose token equals the
// target's argmax; the argmax at the last accepted node is the next token. The emitted tokens equal
// plain greedy decoding whenever the backend's logits for a node do not depend on the rest of the
// tree (batch-invariant kernels, docs/design.md "Exactness").
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/verify/tree_walk.hpp>

#include <span>

namespace specdec {

struct greedy_rule {
  template <class Rng>
  acceptance accept(const draft_tree& tree, const logits_view& logits, Rng&) const {
    return detail::walk_tree(tree, logits, [](std::span<const float> row) { return argmax(row); });
  }
};

}  // namespace specdec
