// What flows between the decode loop, the drafters and the acceptance rules in one step.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/types.hpp>

#include <cstdint>
#include <span>
#include <vector>

namespace specdec {

// A request of the decoder (verify/decoder.hpp); drafters key their per-request state by it.
using request_id = std::int64_t;

// Input of drafter::draft: the whole token history (prompt + generated; its last token is the root,
// not yet in the cache) and the most rows the loop will verify: nodes (root included) plus extra rows.
struct draft_request {
  std::span<const token_id> context;
  std::int32_t budget = 1;
};

// Result of an acceptance rule: the accepted node indices from the root (path[0] == 0), and the
// next token, drawn from the target at the last accepted node (the "bonus" token). The tokens this
// step emits are tokens[path[1..]] followed by next_token.
struct acceptance {
  std::vector<std::int32_t> path;
  token_id next_token = 0;
};

// Input of drafter::observe: the whole verified step.
struct step_outcome {
  const draft_tree& tree;
  logits_view logits;                        // [tree.n_rows(), n_vocab]: row i = target logits after node i,
                                             // then the extra rows' (draft_tree.hpp)
  const acceptance& accepted;
  std::span<const token_id> new_tokens;      // emitted this step (accepted drafts + next_token)
  std::span<const token_id> context;         // the history after this step (ends with next_token)
};

}  // namespace specdec
