// Lossless sampling for drafters without probabilities (Token Recycling, Lookahead): at each accepted
// node draw x from the target distribution (temperature, top-k, top-p applied); if a child carries x,
// accept it and continue from there, else emit x and stop. Each emitted token is a draw from the
// target's distribution given the tokens before it, exactly as in plain sampling, because the draft
// is fixed before the draws and one draw is consumed per emitted token.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/verify/tree_walk.hpp>

#include <span>

namespace specdec {

struct sampling_rule {
  sampling_params params;

  template <class Rng>
  acceptance accept(const draft_tree& tree, const logits_view& logits, Rng& rng) const {
    return detail::walk_tree(tree, logits, [&](std::span<const float> row) { return choose(row, params, rng); });
  }
};

}  // namespace specdec
