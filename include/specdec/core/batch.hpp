// The input and output of one forward of the version-2 model boundary (concepts/sequence_model.hpp):
// a batch of per-sequence steps, and the logits of their rows.
//
// Every sequence has a committed cache of n_past positions and a list of *pending* rows: rows run by
// forwards since its last commit, numbered 0, 1, 2, ... in the order they were run. A step's rows
// join that list (row i of a step on a sequence with n_pending pending rows gets pending index
// n_pending + i). Each row names its parent by pending index (-1: the row sees only the committed
// cache), so a tree can grow over several forwards; a row attends to the committed cache, its
// ancestors and itself.
//
//   forward 1: rows 0 1        forward 2: rows 2 3       forward 3: row 4
//        (cache) ─ 0 ─┬─ 1 ─── 3 ─── 4                   parents: [-1, 0, 0, 1, 3]
//                     └─ 2                               commit(seq, {0, 1, 3}) keeps that path
//
// A row's input is a token id, or (where the model has the capability) an embedding vector: such a
// row has token embedding_row and takes the next n_embd floats of step.embeddings.
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/types.hpp>
#include <specdec/error.hpp>

#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

namespace specdec {

using seq_id = std::int32_t;  // a sequence held by a model (create_sequence)

// Marks a row whose input is an embedding vector instead of a token id.
inline constexpr token_id embedding_row = -1;

// Which rows of a step need logits: every row, the last one (prefill chunks that end a prompt) or
// none (prefill chunks before the last; the head, the costliest product of a small model, is skipped).
enum class logits_request : std::uint8_t { all, last, none };

struct sequence_step {
  seq_id seq = 0;
  std::vector<token_id> tokens;        // [n]: token ids, or embedding_row
  std::vector<std::int32_t> positions; // [n]: absolute positions (RoPE)
  std::vector<std::int32_t> parents;   // [n]: pending index of the parent, or -1 (committed cache only)
  std::vector<float> embeddings;       // [rows with embedding_row, n_embd], in row order
  logits_request logits = logits_request::all;

  [[nodiscard]] std::int32_t size() const noexcept { return static_cast<std::int32_t>(tokens.size()); }

  // A plain sequence continuing the cache: rows at positions n_past, n_past + 1, ... each the child of
  // the one before (the first one a root). With pending rows this must be the first step since commit.
  static sequence_step chain(seq_id seq, std::span<const token_id> tokens, std::int32_t n_past,
                             logits_request logits = logits_request::all) {
    sequence_step s;
    s.seq = seq;
    s.tokens.assign(tokens.begin(), tokens.end());
    s.positions.resize(tokens.size());
    std::iota(s.positions.begin(), s.positions.end(), n_past);
    s.parents.resize(tokens.size());
    std::iota(s.parents.begin(), s.parents.end(), -1);
    s.logits = logits;
    return s;
  }

  // A draft tree as the first step since the last commit: node i is pending row i, positions
  // n_past + depth; the tree's extra rows (embedding inputs) follow the nodes.
  static sequence_step tree(seq_id seq, const draft_tree& t, std::int32_t n_past) {
    sequence_step s;
    s.seq = seq;
    s.tokens = t.tokens;
    s.parents = t.parent;
    s.positions.resize(t.tokens.size());
    for (std::size_t i = 0; i < t.tokens.size(); ++i) s.positions[i] = n_past + t.depth[i];
    s.tokens.insert(s.tokens.end(), t.extra_parent.size(), embedding_row);
    s.parents.insert(s.parents.end(), t.extra_parent.begin(), t.extra_parent.end());
    for (const auto d : t.extra_depth) s.positions.push_back(n_past + d);
    s.embeddings = t.extra_embeddings;
    return s;
  }
};

// One forward: at most one step per sequence. Steps with no rows are allowed (and skipped).
struct forward_batch {
  std::vector<sequence_step> steps;

  [[nodiscard]] std::int32_t n_rows() const noexcept {
    std::int32_t n = 0;
    for (const auto& s : steps) n += s.size();
    return n;
  }
};

// The logits of one forward: host rows [n_rows_out, n_vocab], steps in batch order, each step's
// requested rows in row order. Valid until the model's next forward, commit, truncate or free.
struct batch_logits {
  logits_view rows;                    // every returned row
  std::vector<std::int32_t> first;     // [n_steps]: index in `rows` of the step's first returned row
  std::vector<std::int32_t> count;     // [n_steps]: returned rows of the step (n, 1 or 0)

  // The step's returned rows as their own view (row 0 = the step's first returned row).
  [[nodiscard]] logits_view step(std::size_t k) const noexcept {
    return logits_view{rows.data + static_cast<std::size_t>(first[k]) * static_cast<std::size_t>(rows.n_vocab),
                       count[k], rows.n_vocab};
  }
};

// Checks the shape of a step against the sequence's state: sizes agree, parents name pending rows
// that exist (earlier forwards or earlier rows of this step), embedding floats match the rows that
// use them. Throws invalid_argument naming the step and the row. Backends call it at entry.
inline void validate_step(const sequence_step& s, std::int32_t n_pending, std::int32_t n_embd,
                          std::int32_t n_vocab, const char* who) {
  const auto fail = [&](const std::string& what) {
    throw error(error_category::invalid_argument,
                std::string(who) + ": sequence " + std::to_string(s.seq) + ": " + what);
  };
  const std::size_t n = s.tokens.size();
  if (s.positions.size() != n || s.parents.size() != n) fail("tokens, positions and parents differ in size");
  std::size_t n_embedding_rows = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const token_id t = s.tokens[i];
    if (t == embedding_row) {
      ++n_embedding_rows;
    } else if (t < 0 || t >= n_vocab) {
      fail("row " + std::to_string(i) + ": token id " + std::to_string(t) + " outside the vocabulary");
    }
    const std::int32_t p = s.parents[i];
    if (p < -1 || p >= n_pending + static_cast<std::int32_t>(i)) {
      fail("row " + std::to_string(i) + ": parent " + std::to_string(p) + " is not an earlier pending row (" +
           std::to_string(n_pending) + " pending before this step)");
    }
  }
  if (n_embedding_rows > 0 && n_embd <= 0) fail("embedding rows given to a model without embedding input");
  if (s.embeddings.size() != n_embedding_rows * static_cast<std::size_t>(n_embd < 0 ? 0 : n_embd)) {
    fail("embeddings hold " + std::to_string(s.embeddings.size()) + " floats, expected " +
         std::to_string(n_embedding_rows) + " rows x " + std::to_string(n_embd));
  }
}

}  // namespace specdec
