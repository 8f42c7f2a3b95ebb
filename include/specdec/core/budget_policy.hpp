// budget_policy: chooses the tree budget (rows per verification step) of every step of a request,
// instead of the fixed request_options::budget (verify/decoder.hpp). The decoder asks it before each
// draft and tells it what the step did afterwards. core/auto_budget.hpp has the policy the programs
// use (--budget auto): the budget that maximises expected accepted tokens per second.
//
// Any budget is lossless (every tree is verified exactly), so a policy only changes speed. Its
// choices must not depend on the acceptance rule's random numbers (they do not see them); a policy
// is deterministic given what it observed, apart from the wall-clock times it is fed.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/verify_types.hpp>

#include <cstdint>

namespace specdec {

// One verified step of one request, as the decoder reports it to the policy.
struct budget_step {
  request_id id = 0;
  std::int32_t budget = 1;        // rows the drafter was allowed (the policy's choice, capped)
  const draft_tree& tree;         // what it drafted (tree.n_rows() rows were verified)
  const acceptance& accepted;     // the accepted path (path[0] == 0, the root)
  double forward_s = 0;           // the forward that verified it (shared with the other requests of the batch)
  std::int32_t forward_rows = 0;  // rows of that forward, every request of the batch together
  double overhead_s = 0;          // this request's own time around the forward: draft, accept, commit, observe
};

class budget_policy {
 public:
  virtual ~budget_policy() = default;
  // The budget of request `id`'s next step, in [1, max_rows] (max_rows: request_options::budget
  // and the room left in the context, whichever is smaller). Called once per decode step.
  virtual std::int32_t budget(request_id id, std::int32_t max_rows) = 0;
  // What that step did; called once per decode step, after its commit.
  virtual void observe(const budget_step& step) = 0;
};

}  // namespace specdec
