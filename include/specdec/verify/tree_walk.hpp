// The walk both simple acceptance rules share: from the root, pick a token at the current node; if a
// child carries it, accept the child and continue, else the picked token is the next (bonus) token.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/verify_types.hpp>

namespace specdec::detail {

// One step of the walk at `node` with the picked token x: descends to the child carrying x (appended
// to a.path, returned) or ends the walk with x as the next token (returns -1).
inline std::int32_t walk_step(const draft_tree& tree, std::int32_t node, token_id x, acceptance& a) {
  const std::int32_t child = tree.find_child(node, x);
  if (child < 0) {
    a.next_token = x;
    return -1;
  }
  a.path.push_back(child);
  return child;
}

// pick(row) -> token_id, called once per visited node in path order.
template <class Pick>
acceptance walk_tree(const draft_tree& tree, const logits_view& logits, Pick&& pick) {
  acceptance a;
  a.path.push_back(0);
  for (std::int32_t node = 0; node >= 0;) node = walk_step(tree, node, pick(logits.row(node)), a);
  return a;
}

}  // namespace specdec::detail
