// Token Recycling drafter (arXiv 2408.08696): no draft model, only an adjacency matrix
// [n_vocab, k] holding, for each token, the target's top-k next tokens from the last time that token
// was verified. Each step expands a static tree template from the root through the matrix, and the
// verified step's logits overwrite the rows of every tree token, rejected ones included. The matrix
// lives in the drafter object and survives requests ("hot start"); save/load keep it across runs.
//
//   adjacency [n_vocab, k]            draft, template {[0], [1], [0,0]}, root "The"
//   row  rank 0  rank 1 ...           root The
//   The  cat     dog                   ├─[0]  adj[The][0] = cat
//   cat  sat     ran                   │   └─[0,0] adj[cat][0] = sat
//   ...                                └─[1]  adj[The][1] = dog
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/topk.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/drafters/tree_template.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace specdec {

struct token_recycling_options {
  std::string tree = "tr-24";  // a tree_template_preset name: "2.2.2" or "tr-N" (N drafted nodes)
  std::int32_t k = 8;          // candidates kept per token (the paper's 8), 1..top_k_max
};

// Matrix file: a 16-byte header, then the matrix; every field little-endian.
//
//   offset  size             field
//   0       4                magic "SDTR"
//   4       4                version, uint32 (1)
//   8       4                n_vocab, uint32
//   12      4                k, uint32
//   16      4 * n_vocab * k  adjacency, int32, row-major [n_vocab, k], each id in [0, n_vocab)
class token_recycling_drafter {
 public:
  static constexpr std::array<char, 4> file_magic{'S', 'D', 'T', 'R'};
  static constexpr std::uint32_t file_version = 1;

  explicit token_recycling_drafter(std::int32_t n_vocab, const token_recycling_options& options = {})
      : token_recycling_drafter(n_vocab, tree_template_preset(options.tree, options.k), options.k) {}

  // Throws invalid_argument when n_vocab < k, k is outside 1..top_k_max, or the template is invalid
  // or uses a rank >= k.
  token_recycling_drafter(std::int32_t n_vocab, tree_template tree, std::int32_t k) : n_vocab_(n_vocab), k_(k), tree_(std::move(tree)) {
    if (k < 1 || k > top_k_max) {
      throw error(error_category::invalid_argument, "token_recycling: k must lie in [1, " + std::to_string(top_k_max) + "], got " + std::to_string(k));
    }
    if (n_vocab < k) {
      throw error(error_category::invalid_argument, "token_recycling: n_vocab (" + std::to_string(n_vocab) + ") must be at least k (" + std::to_string(k) + ")");
    }
    tree_.validate();
    if (tree_.max_rank() >= k) {
      throw error(error_category::invalid_argument, "token_recycling: the tree template uses rank " + std::to_string(tree_.max_rank()) +
                                                        " but k is " + std::to_string(k));
    }
    adjacency_.assign(static_cast<std::size_t>(n_vocab) * static_cast<std::size_t>(k), 0);
  }

  // Nothing request-scoped: the matrix is shared by every request (concurrent ones too) and carries
  // over from request to request (its hot start).
  void begin(request_id, std::span<const token_id>) noexcept {}
  void end(request_id) noexcept {}
  void begin(std::span<const token_id>) noexcept {}  // one-request shorthands
  void end() noexcept {}

  // Expands the template from the root (request.context.back()) in breadth-first order:
  // token(node) = adjacency[token(parent)][rank(node)]. A node whose token repeats an earlier sibling's
  // is dropped with its template subtree; only template nodes of priority < budget are used.
  [[nodiscard]] draft_tree draft(request_id, const draft_request& request) const { return draft(request); }
  [[nodiscard]] draft_tree draft(const draft_request& request) const {
    SPECDEC_ASSERT(!request.context.empty());
    const token_id root = request.context.back();
    draft_tree tree = draft_tree::root_only(root);
    if (request.budget <= 1 || root < 0 || root >= n_vocab_) return tree;
    const std::int32_t n_keep = std::min(request.budget, tree_.size());
    tree.tokens.reserve(static_cast<std::size_t>(n_keep));
    tree.parent.reserve(static_cast<std::size_t>(n_keep));
    tree.depth.reserve(static_cast<std::size_t>(n_keep));
    // node_of[t]: the tree node of template node t, or -1 when t was dropped.
    std::vector<std::int32_t> node_of(static_cast<std::size_t>(tree_.size()), -1);
    node_of[0] = 0;
    // Breadth-first order keeps the children of one template node together, so the siblings of a
    // new node are the tree nodes from first_sibling on.
    std::int32_t current_parent = -1;
    std::int32_t first_sibling = 0;
    for (std::int32_t t = 1; t < tree_.size(); ++t) {
      const auto ut = static_cast<std::size_t>(t);
      if (tree_.priority[ut] >= n_keep) continue;
      const std::int32_t parent_template = tree_.parent[ut];
      const std::int32_t parent_node = node_of[static_cast<std::size_t>(parent_template)];
      if (parent_node < 0) continue;
      if (parent_template != current_parent) {
        current_parent = parent_template;
        first_sibling = tree.size();
      }
      const token_id token = row(tree.tokens[static_cast<std::size_t>(parent_node)])[static_cast<std::size_t>(tree_.rank[ut])];
      const auto siblings_end = tree.tokens.end();
      if (std::find(tree.tokens.begin() + first_sibling, siblings_end, token) != siblings_end) continue;
      node_of[ut] = tree.add(parent_node, token);
    }
    return tree;
  }

  // Overwrites the row of every verified node's token with the top-k of that node's logits row.
  // When a token sits at several nodes, the last node in tree order wins. Rows of out-of-range
  // tokens are skipped; logits of another width than n_vocab are a caller bug (asserted, ignored).
  // top_k's SIMD version follows the compile flags, but every version returns the same ids, so the
  // matrix does not depend on them.
  void observe(request_id, const step_outcome& outcome) { observe(outcome); }
  void observe(const step_outcome& outcome) {
    const logits_view& logits = outcome.logits;
    SPECDEC_ASSERT(logits.n_vocab == n_vocab_ && logits.n_rows >= outcome.tree.size());
    if (logits.data == nullptr || logits.n_vocab != n_vocab_) return;
    const std::int32_t n = std::min(outcome.tree.size(), logits.n_rows);
    written_.clear();
    for (std::int32_t i = n - 1; i >= 0; --i) {
      const token_id token = outcome.tree.tokens[static_cast<std::size_t>(i)];
      if (token < 0 || token >= n_vocab_) continue;
      if (std::find(written_.begin(), written_.end(), token) != written_.end()) continue;
      written_.push_back(token);
      top_k(logits.row(i), mutable_row(token));
    }
  }

  // Back to the cold (all-zero) matrix.
  void reset() noexcept { std::fill(adjacency_.begin(), adjacency_.end(), 0); }

  // The k candidates after `token`, rank 0 first; token in [0, n_vocab).
  [[nodiscard]] std::span<const token_id> row(token_id token) const noexcept {
    SPECDEC_ASSERT(token >= 0 && token < n_vocab_);
    return {adjacency_.data() + static_cast<std::size_t>(token) * static_cast<std::size_t>(k_), static_cast<std::size_t>(k_)};
  }

  [[nodiscard]] std::span<const token_id> adjacency() const noexcept { return adjacency_; }  // [n_vocab, k]
  [[nodiscard]] std::int32_t n_vocab() const noexcept { return n_vocab_; }
  [[nodiscard]] std::int32_t k() const noexcept { return k_; }
  [[nodiscard]] const tree_template& tree() const noexcept { return tree_; }

  // Heap bytes owned: the matrix, the template and the scratch list.
  [[nodiscard]] std::size_t memory_bytes() const noexcept {
    return adjacency_.capacity() * sizeof(token_id) + written_.capacity() * sizeof(token_id) +
           (tree_.parent.capacity() + tree_.rank.capacity() + tree_.depth.capacity() + tree_.priority.capacity()) * sizeof(std::int32_t);
  }

  // Writes the matrix in the format above; throws io naming the file on failure.
  void save(const std::filesystem::path& path) const {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw error(error_category::io, "token_recycling: cannot open '" + path.string() + "' for writing");
    std::array<char, 16> header{};
    std::memcpy(header.data(), file_magic.data(), 4);
    put_u32(header.data() + 4, file_version);
    put_u32(header.data() + 8, static_cast<std::uint32_t>(n_vocab_));
    put_u32(header.data() + 12, static_cast<std::uint32_t>(k_));
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    std::vector<char> body(adjacency_.size() * 4);
    for (std::size_t i = 0; i < adjacency_.size(); ++i) put_u32(body.data() + 4 * i, static_cast<std::uint32_t>(adjacency_[i]));
    out.write(body.data(), static_cast<std::streamsize>(body.size()));
    out.close();
    if (!out) throw error(error_category::io, "token_recycling: cannot write '" + path.string() + "'");
  }

  // Replaces the matrix with the one in `path`. Throws, leaving the matrix unchanged: io when the
  // file cannot be read; format for a wrong magic, a truncated file, trailing bytes or an id out of
  // range; unsupported for another version; invalid_argument when n_vocab or k differ from this drafter's.
  void load(const std::filesystem::path& path) {
    const std::string name = "token_recycling: '" + path.string() + "': ";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(error_category::io, name + "cannot open for reading");
    std::array<char, 16> header{};
    in.read(header.data(), static_cast<std::streamsize>(header.size()));
    if (in.gcount() != static_cast<std::streamsize>(header.size())) {
      throw error(error_category::format, name + "truncated header (" + std::to_string(in.gcount()) + " of 16 bytes)");
    }
    if (std::memcmp(header.data(), file_magic.data(), 4) != 0) {
      throw error(error_category::format, name + "bad magic (not a token recycling matrix file)");
    }
    const std::uint32_t version = get_u32(header.data() + 4);
    if (version != file_version) {
      throw error(error_category::unsupported, name + "version " + std::to_string(version) + " (this build reads version " +
                                                   std::to_string(file_version) + ")");
    }
    const std::uint32_t file_n_vocab = get_u32(header.data() + 8);
    const std::uint32_t file_k = get_u32(header.data() + 12);
    if (file_n_vocab != static_cast<std::uint32_t>(n_vocab_) || file_k != static_cast<std::uint32_t>(k_)) {
      throw error(error_category::invalid_argument, name + "matrix is [n_vocab " + std::to_string(file_n_vocab) + ", k " +
                                                        std::to_string(file_k) + "], this drafter needs [n_vocab " +
                                                        std::to_string(n_vocab_) + ", k " + std::to_string(k_) + "]");
    }
    std::vector<char> body(adjacency_.size() * 4);
    in.read(body.data(), static_cast<std::streamsize>(body.size()));
    if (in.gcount() != static_cast<std::streamsize>(body.size())) {
      throw error(error_category::format, name + "truncated matrix (" + std::to_string(in.gcount()) + " of " +
                                              std::to_string(body.size()) + " bytes)");
    }
    if (in.peek() != std::ifstream::traits_type::eof()) throw error(error_category::format, name + "trailing bytes after the matrix");
    std::vector<token_id> loaded(adjacency_.size());
    for (std::size_t i = 0; i < loaded.size(); ++i) {
      const auto id = static_cast<token_id>(get_u32(body.data() + 4 * i));
      if (id < 0 || id >= n_vocab_) {
        throw error(error_category::format, name + "token id " + std::to_string(id) + " at row " + std::to_string(i / static_cast<std::size_t>(k_)) +
                                                " is outside [0, " + std::to_string(n_vocab_) + ")");
      }
      loaded[i] = id;
    }
    adjacency_.swap(loaded);
  }

 private:
  [[nodiscard]] std::span<token_id> mutable_row(token_id token) noexcept {
    return {adjacency_.data() + static_cast<std::size_t>(token) * static_cast<std::size_t>(k_), static_cast<std::size_t>(k_)};
  }

  static void put_u32(char* p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xFFu);
  }
  static std::uint32_t get_u32(const char* p) noexcept {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
    return v;
  }

  std::int32_t n_vocab_;
  std::int32_t k_;
  tree_template tree_;
  std::vector<token_id> adjacency_;  // [n_vocab, k], rank 0 first; all zero when cold
  std::vector<token_id> written_;    // [<= tree size] observe's scratch: tokens whose row this step wrote
};

}  // namespace specdec
