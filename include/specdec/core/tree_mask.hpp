// tree_mask: which tokens of one forward step each token may attend to (besides the committed cache).
// Row i has bit j set when token j is i itself or one of its ancestors in the step's token tree.
// Tokens are in topological order (parent[i] < i), so the mask is lower-triangular.
//
//   tree (root 0)        mask (row attends to column)
//        0                   0 1 2 3 4
//       / \              0 [ x . . . . ]
//      1   2             1 [ x x . . . ]
//      |   |             2 [ x . x . . ]
//      3   4             3 [ x x . x . ]
//                        4 [ x . x . x ]
// A plain sequence (prefill) is the chain 0-1-2-..., whose mask is the causal lower triangle.
#pragma once

#include <specdec/error.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace specdec {

class tree_mask {
 public:
  tree_mask() = default;

  // Ancestor mask of the tree given by parent[i] (-1 for a root; otherwise parent[i] < i).
  // Throws invalid_argument when a parent index is out of order.
  static tree_mask from_parents(std::span<const std::int32_t> parent) {
    tree_mask m(static_cast<std::int32_t>(parent.size()));
    for (std::int32_t i = 0; i < m.n_; ++i) {
      const std::int32_t p = parent[static_cast<std::size_t>(i)];
      if (p < -1 || p >= i) {
        throw error(error_category::invalid_argument, "tree_mask: parent[" + std::to_string(i) + "] = " +
                                                          std::to_string(p) + " is not an earlier node");
      }
      if (p >= 0) {
        for (std::int32_t w = 0; w < m.words_; ++w) m.row(i)[w] = m.row(p)[w];
      }
      m.set(i, i);
    }
    return m;
  }

  // The causal mask of a plain sequence of n tokens.
  static tree_mask causal(std::int32_t n) {
    tree_mask m(n);
    for (std::int32_t i = 0; i < n; ++i) {
      for (std::int32_t j = 0; j <= i; ++j) m.set(i, j);
    }
    return m;
  }

  [[nodiscard]] std::int32_t size() const noexcept { return n_; }

  [[nodiscard]] bool attends(std::int32_t i, std::int32_t j) const noexcept {
    return (row(i)[j >> 6] >> (j & 63)) & 1u;
  }

  void set(std::int32_t i, std::int32_t j) noexcept { row(i)[j >> 6] |= std::uint64_t{1} << (j & 63); }

  // Number of step tokens row i attends to (its depth + 1 in a tree).
  [[nodiscard]] std::int32_t count(std::int32_t i) const noexcept {
    std::int32_t c = 0;
    for (std::int32_t w = 0; w < words_; ++w) c += __builtin_popcountll(row(i)[w]);
    return c;
  }

  // True when every row attends to itself and only to earlier tokens.
  [[nodiscard]] bool is_lower_triangular() const noexcept {
    for (std::int32_t i = 0; i < n_; ++i) {
      if (!attends(i, i)) return false;
      for (std::int32_t j = i + 1; j < n_; ++j) {
        if (attends(i, j)) return false;
      }
    }
    return true;
  }

 private:
  explicit tree_mask(std::int32_t n)
      : n_(n), words_((n + 63) / 64), bits_(static_cast<std::size_t>(n) * static_cast<std::size_t>(words_), 0) {}

  std::uint64_t* row(std::int32_t i) noexcept { return bits_.data() + static_cast<std::size_t>(i) * words_; }
  [[nodiscard]] const std::uint64_t* row(std::int32_t i) const noexcept {
    return bits_.data() + static_cast<std::size_t>(i) * words_;
  }

  std::int32_t n_ = 0;
  std::int32_t words_ = 0;
  std::vector<std::uint64_t> bits_;  // [n, words]
};

}  // namespace specdec
