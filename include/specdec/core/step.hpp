// One forward step's input: n tokens, their absolute positions and their tree mask, on top of the
// model's committed cache. Positions of a tree step are n_past + depth, never the row index.
#pragma once

#include <specdec/core/tree_mask.hpp>
#include <specdec/core/types.hpp>
#include <specdec/error.hpp>

#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace specdec {

struct step_batch {
  std::vector<token_id> tokens;         // [n]
  std::vector<std::int32_t> positions;  // [n]
  tree_mask mask;                       // [n, n]

  [[nodiscard]] std::int32_t size() const noexcept { return static_cast<std::int32_t>(tokens.size()); }

  // A plain sequence starting at position n_past (prefill, autoregressive steps).
  static step_batch chain(std::span<const token_id> tokens, std::int32_t n_past) {
    step_batch b;
    b.tokens.assign(tokens.begin(), tokens.end());
    b.positions.resize(tokens.size());
    std::iota(b.positions.begin(), b.positions.end(), n_past);
    b.mask = tree_mask::causal(static_cast<std::int32_t>(tokens.size()));
    return b;
  }

  // A token tree: parent[i] < i (parent[0] == -1); positions are n_past + depth.
  static step_batch tree(std::span<const token_id> tokens, std::span<const std::int32_t> parent,
                         std::int32_t n_past) {
    if (tokens.size() != parent.size()) {
      throw error(error_category::invalid_argument, "step_batch::tree: tokens and parent differ in length");
    }
    step_batch b;
    b.tokens.assign(tokens.begin(), tokens.end());
    b.mask = tree_mask::from_parents(parent);
    b.positions.resize(tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      b.positions[i] = parent[i] < 0 ? n_past : b.positions[static_cast<std::size_t>(parent[i])] + 1;
    }
    return b;
  }
};

// Row-major logits of the last step: row i holds the next-token logits after token i.
// Valid until the model's next forward, commit or reset.
struct logits_view {
  const float* data = nullptr;
  std::int32_t n_rows = 0;
  std::int32_t n_vocab = 0;

  [[nodiscard]] std::span<const float> row(std::int32_t i) const noexcept {
    return {data + static_cast<std::size_t>(i) * static_cast<std::size_t>(n_vocab),
            static_cast<std::size_t>(n_vocab)};
  }
};

}  // namespace specdec
