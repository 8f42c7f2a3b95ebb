// Acceptance rules: walk a verified tree and return the accepted path and the next token.
//
// Required expression, for R& r, const draft_tree& t, const logits_view& l, std::mt19937_64& rng:
//   r.accept(t, l, rng)  -> acceptance (path from the root, next token)
// Every rule must be exact: the emitted tokens are distributed as plain sampling (or equal plain
// greedy decoding) from the model, whatever the drafter proposed.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/verify_types.hpp>

#include <concepts>
#include <random>

namespace specdec {

template <class R>
concept acceptance_rule = requires(R& r, const draft_tree& t, const logits_view& l, std::mt19937_64& rng) {
  { r.accept(t, l, rng) } -> std::same_as<acceptance>;
};

}  // namespace specdec
