// Byte-pair merging of one pre-tokenized word (Sennrich et al., arXiv:1508.07909; byte-level as in
// GPT-2). The word starts as one symbol per byte; the adjacent pair with the lowest merge rank is
// merged, the leftmost first among equal ranks, until no adjacent pair has a merge. Symbols form a
// linked list over an array and candidate pairs sit in a min-heap (stale ones are skipped when
// popped), so a word of n bytes costs O(n log n). Same order as Hugging Face tokenizers' BPE.
//
//   symbols  [h][e][l][l][o]  --(l,l)-->  [h][e][ll][o]  --(h,e)-->  [he][ll][o]  -->  ...
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "specdec/core/types.hpp"

namespace specdec {

// The merges of a vocabulary: (left, right) -> (rank, merged token).
class merge_table {
 public:
  struct merge {
    std::int32_t rank;  // position in the merges list: lower merges first
    token_id result;
  };

  // Keeps the first merge given for a pair (a later duplicate would have a worse rank).
  bool insert(token_id left, token_id right, merge m) { return map_.try_emplace(key(left, right), m).second; }

  [[nodiscard]] const merge* find(token_id left, token_id right) const {
    const auto it = map_.find(key(left, right));
    return it == map_.end() ? nullptr : &it->second;
  }

  [[nodiscard]] std::size_t size() const noexcept { return map_.size(); }
  void reserve(std::size_t n) { map_.reserve(n); }

 private:
  static std::uint64_t key(token_id left, token_id right) noexcept {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
  }
  std::unordered_map<std::uint64_t, merge> map_;
};

// Work buffers of bpe_merge, kept by the caller between words to avoid allocations.
struct bpe_scratch {
  struct symbol {
    token_id id;  // -1 once merged into its left neighbour
    std::int32_t prev;
    std::int32_t next;  // -1 at either end
  };
  struct candidate {
    std::int32_t rank;
    std::int32_t left;  // index of the left symbol
    token_id left_id;
    token_id right_id;
    token_id result;
    // std::push_heap builds a max-heap: "less" here means a worse candidate.
    bool operator<(const candidate& o) const noexcept {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::vector<symbol> symbols;  // [n_symbols]
  std::vector<candidate> heap;  // [n_candidates]
};

// Merges `symbols` (token ids, one per byte of the word) and appends the resulting ids to `out`.
inline void bpe_merge(std::span<const token_id> symbols, const merge_table& merges, bpe_scratch& scratch,
                      std::vector<token_id>& out) {
  const auto n = static_cast<std::int32_t>(symbols.size());
  if (n < 2) {
    out.insert(out.end(), symbols.begin(), symbols.end());
    return;
  }
  auto& sym = scratch.symbols;
  auto& heap = scratch.heap;
  sym.resize(symbols.size());
  heap.clear();
  for (std::int32_t i = 0; i < n; ++i) sym[i] = {symbols[i], i - 1, i + 1 < n ? i + 1 : -1};

  const auto push = [&](std::int32_t left) {
    if (left < 0) return;
    const std::int32_t right = sym[left].next;
    if (right < 0) return;
    if (const merge_table::merge* m = merges.find(sym[left].id, sym[right].id)) {
      heap.push_back({m->rank, left, sym[left].id, sym[right].id, m->result});
      std::push_heap(heap.begin(), heap.end());
    }
  };
  for (std::int32_t i = 0; i + 1 < n; ++i) push(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const bpe_scratch::candidate c = heap.back();
    heap.pop_back();
    auto& left = sym[c.left];
    // Stale when the left symbol merged away or changed, or its right neighbour changed: a merged
    // symbol's text only grows, so its id never comes back to an earlier value.
    if (left.id != c.left_id || left.next < 0 || sym[left.next].id != c.right_id) continue;
    auto& right = sym[left.next];
    left.id = c.result;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = c.left;
    push(left.prev);
    push(c.left);
  }
  for (std::int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace specdec
