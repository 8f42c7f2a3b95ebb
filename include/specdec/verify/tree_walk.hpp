// The walk both simple acceptance rules share: from the root, pick a token at the current node; if a
// child carries it, accept the child and continue, else the picked token is the next (bonus) token.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/verify_types.hpp>

namespace specdec::detail {

// pick(row) -> token_id, called once per visited node in path order.
template <class Pick>
acceptance walk_tree(const draft_tree& tree, const logits_view& logits, Pick&& pick) {
  acceptance a;
  std::int32_t node = 0;
  a.path.push_back(0);
  while (true) {
    const token_id x = pick(logits.row(node));
    const std::int32_t child = tree.find_child(node, x);
    if (child < 0) {
      a.next_token = x;
      return a;
    }
    a.path.push_back(child);
    node = child;
  }
}

}  // namespace specdec::detail
