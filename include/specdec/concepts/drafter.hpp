// The drafter side of the plug-in boundary: propose a token tree, learn from what was verified.
//
// Required expressions, for D& d, std::span<const token_id> prompt, const draft_request& r,
// const step_outcome& o:
//   d.begin(prompt)   a new request starts (prompt tokens, chat template applied)
//   d.draft(r)        -> draft_tree with root r.context.back() and at most r.budget nodes; a drafter with
//                        nothing to propose returns draft_tree::root_only(root), never an error
//   d.observe(o)      the verified step: tree, target logits of every node, accepted path, new tokens
//   d.end()           the request is over (request-scoped state can be dropped; learned state stays)
// Drafters must be deterministic given what they have observed: the sampling rule's exactness relies
// on a draft not depending on the random numbers of the step that verifies it.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/verify_types.hpp>

#include <concepts>
#include <span>

namespace specdec {

template <class D>
concept drafter = requires(D& d, std::span<const token_id> prompt, const draft_request& r, const step_outcome& o) {
  d.begin(prompt);
  { d.draft(r) } -> std::same_as<draft_tree>;
  d.observe(o);
  d.end();
};

// The autoregressive baseline: always the root alone.
struct null_drafter {
  void begin(std::span<const token_id>) noexcept {}
  draft_tree draft(const draft_request& r) const { return draft_tree::root_only(r.context.back()); }
  void observe(const step_outcome&) noexcept {}
  void end() noexcept {}
};

}  // namespace specdec
