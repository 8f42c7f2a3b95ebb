// The drafter side of the plug-in boundary: propose a token tree, learn from what was verified.
//
// Required expressions, for D& d, request_id id, std::span<const token_id> prompt,
// const draft_request& r, const step_outcome& o:
//   d.begin(id, prompt)   request id starts (prompt tokens, chat template applied)
//   d.draft(id, r)        -> draft_tree with root r.context.back() and at most r.budget rows (nodes plus
//                            extra rows, draft_tree.hpp); a drafter with nothing to propose returns
//                            draft_tree::root_only(root), never an error
//   d.observe(id, o)      the verified step of request id: tree, target logits of every node, accepted
//                         path, new tokens
//   d.end(id)             the request is over (its state can be dropped; learned state stays)
// One drafter object serves every request of a decoder: several requests are open at once (between
// their begin and end), and calls for different requests interleave. What is shared between
// requests (Token Recycling's matrix) and what belongs to one (Lookahead's prompt n-grams) is the
// drafter's choice. The sampling rule's exactness relies on a draft not depending on the random
// numbers of the step that verifies it: drafters without distributions are deterministic given what
// they have observed; drafters that draw from a draft model (model_drafter) use their own random
// streams (other requests' outcomes use other random streams).
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/verify_types.hpp>

#include <concepts>
#include <span>

namespace specdec {

template <class D>
concept drafter = requires(D& d, request_id id, std::span<const token_id> prompt, const draft_request& r,
                           const step_outcome& o) {
  d.begin(id, prompt);
  { d.draft(id, r) } -> std::same_as<draft_tree>;
  d.observe(id, o);
  d.end(id);
};

// The autoregressive baseline: always the root alone.
struct null_drafter {
  void begin(request_id, std::span<const token_id>) noexcept {}
  draft_tree draft(request_id, const draft_request& r) const { return draft_tree::root_only(r.context.back()); }
  void observe(request_id, const step_outcome&) noexcept {}
  void end(request_id) noexcept {}
};

}  // namespace specdec
