// Lookahead trie drafter: retrieval-based drafts from the n-grams of the current prompt and of all
// earlier outputs, with hierarchical multi-branch retrieval (Ant Group "Lookahead" / PIA,
// arXiv 2312.12728; not the Jacobi "lookahead decoding"). No draft model, no logits: a trie walk on
// the CPU per step. The n-gram store and its eviction policy live in ngram_trie.hpp.
//
//   prompt / output ... a  b  c  d  e ...   every position i stores tokens[i+1 .. i+branch_length+1]
//                       ^key└── n-gram ──┘  in the trie keyed by tokens[i] (input or output count)
//
//   draft for context [..., a, b] (b = root):
//     1. trie[a] -> child b -> its subtree        (2-token query: continuations of "a b")
//     2. if that has fewer than min(branch_length, n - 1) nodes and trie[b] has more:
//        trie[b]'s subtree                        (1-token query)
//     The best-scoring nodes (prompt n-grams first, then frequent output n-grams), at most
//     branch_length deep and n = min(budget, decoding_length) nodes with the root, form the tree:
//
//        [0] b ─┬─ [1] c ─┬─ [3] d ── [5] e
//               │         └─ [4] x
//               └─ [2] y ──── [6] z
#pragma once

#include <specdec/core/draft_tree.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/drafters/ngram_trie.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace specdec {

struct lookahead_options {
  // Deepest draft node; n-grams of branch_length + 1 tokens are stored after each key. 8: on open
  // text few steps accept more than 6-8 tokens, and each extra level stores one more node per position.
  std::int32_t branch_length = 8;
  // Largest draft tree, root included (request.budget can only lower it). 32: PIA's 64 assumes a GPU
  // where a 64-token step costs about one token; on a CPU the step cost grows with the tree.
  std::int32_t decoding_length = 32;
  // Cap on live trie nodes (20 bytes each): 2^20 nodes = 20 MiB of pool, room for the n-grams of
  // roughly 100k-1M generated tokens depending on repetition. Eviction keeps the pool under it.
  std::size_t max_nodes = std::size_t{1} << 20;

  // Throws invalid_argument naming the first option out of range.
  void validate() const {
    auto fail = [](const std::string& what) { throw error(error_category::invalid_argument, "lookahead_options: " + what); };
    if (branch_length < 1 || branch_length > 64) {
      fail("branch_length = " + std::to_string(branch_length) + " must be in [1, 64]");
    }
    if (decoding_length < 1 || decoding_length > 4096) {
      fail("decoding_length = " + std::to_string(decoding_length) + " must be in [1, 4096]");
    }
    const std::size_t least = 8 * static_cast<std::size_t>(branch_length + 2);
    if (max_nodes < least || max_nodes > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
      fail("max_nodes = " + std::to_string(max_nodes) + " must be in [8 * (branch_length + 2) = " +
           std::to_string(least) + ", 2^31)");
    }
  }
};

// What draft() returns, with how it was found: query_length 2 (trie of the second-to-last token),
// 1 (trie of the root) or 0 (nothing matched: root only).
struct lookahead_retrieval {
  draft_tree tree;
  std::int32_t query_length = 0;
};

class lookahead_trie_drafter {
 public:
  explicit lookahead_trie_drafter(const lookahead_options& opt = {}) : opt_(checked(opt)), trie_(opt.max_nodes) {}

  // A request starts: its prompt's n-grams get input counts (they help this request only).
  // Throws invalid_argument for a token outside [0, ngram_trie::max_key_token]. Ends an open request.
  void begin(std::span<const token_id> prompt) {
    check_tokens(prompt, "begin");
    if (in_request_) end();
    const std::size_t n = prompt.size();
    for (std::size_t i = 0; i + 1 < n; ++i) {
      trie_.insert(prompt[i], prompt.subspan(i + 1, std::min(ngram_tokens(), n - 1 - i)), ngram_source::input);
    }
    in_request_ = true;
    next_key_ = n > 0 ? n - 1 : 0;  // the last prompt token is the first key of the output's n-grams
    tail_.clear();
  }

  [[nodiscard]] draft_tree draft(const draft_request& r) const { return retrieve(r.context, r.budget).tree; }

  // Hierarchical retrieval for the context (its last token is the root) within min(budget,
  // decoding_length) nodes.
  [[nodiscard]] lookahead_retrieval retrieve(std::span<const token_id> context, std::int32_t budget) const {
    lookahead_retrieval out;
    out.tree = draft_tree::root_only(context.empty() ? token_id{0} : context.back());
    const std::int32_t n = std::min(budget, opt_.decoding_length);
    if (context.empty() || n <= 1) return out;
    const token_id root = context.back();
    const std::int32_t enough = std::min(opt_.branch_length, n - 1);
    reserve(out.tree, n);
    if (context.size() >= 2) {
      const std::int32_t node = trie_.find_child(trie_.find(context[context.size() - 2]), root);
      trie_.collect(node, opt_.branch_length, n, out.tree);
      if (out.tree.size() > 1) out.query_length = 2;
      if (out.tree.size() - 1 >= enough) return out;
    }
    const std::int32_t node = trie_.find(root);
    if (node < 0) return out;
    draft_tree single = draft_tree::root_only(root);
    reserve(single, n);
    trie_.collect(node, opt_.branch_length, n, single);
    if (single.size() > out.tree.size()) {
      out.tree = std::move(single);
      out.query_length = 1;
    }
    return out;
  }

  // A verified step: every position of the history that now has branch_length + 1 tokens after it,
  // and was not stored yet, gets an output count. Reads the history from outcome.context.
  void observe(const step_outcome& o) {
    const auto ctx = o.context;
    if (!in_request_ || next_key_ >= ctx.size()) {  // no begin(), or a history that does not continue
      in_request_ = true;
      next_key_ = ctx.size() > o.new_tokens.size() ? ctx.size() - o.new_tokens.size() - 1 : 0;
    }
    const std::size_t len = ngram_tokens();
    for (; next_key_ + len < ctx.size(); ++next_key_) {
      trie_.insert(ctx[next_key_], ctx.subspan(next_key_ + 1, len), ngram_source::output);
    }
    tail_.assign(ctx.begin() + static_cast<std::ptrdiff_t>(next_key_), ctx.end());  // [< len + 1]
  }

  // The request is over: the output's last, shorter n-grams are stored and the prompt's input counts
  // are dropped. Output n-grams stay for later requests.
  void end() {
    trie_.clear_input();  // first, so that the tails find room under a cap the prompt filled
    const std::span<const token_id> tail(tail_);
    for (std::size_t p = 0; p + 1 < tail.size(); ++p) trie_.insert(tail[p], tail.subspan(p + 1), ngram_source::output);
    tail_.clear();
    next_key_ = 0;
    in_request_ = false;
  }

  // Stores a text's n-grams with output counts, as if generated earlier (PIA's warm-up on responses
  // of a training split). Throws like begin().
  void warm_up(std::span<const token_id> text) {
    check_tokens(text, "warm_up");
    const std::size_t n = text.size();
    for (std::size_t i = 0; i + 1 < n; ++i) {
      trie_.insert(text[i], text.subspan(i + 1, std::min(ngram_tokens(), n - 1 - i)), ngram_source::output);
    }
  }

  [[nodiscard]] const lookahead_options& options() const noexcept { return opt_; }
  [[nodiscard]] const ngram_trie& trie() const noexcept { return trie_; }
  [[nodiscard]] std::size_t n_nodes() const noexcept { return trie_.n_nodes(); }
  [[nodiscard]] std::size_t memory_bytes() const noexcept {
    return trie_.memory_bytes() + tail_.capacity() * sizeof(token_id) + sizeof(*this) - sizeof(trie_);
  }

 private:
  static lookahead_options checked(const lookahead_options& opt) {
    opt.validate();
    return opt;
  }
  static void check_tokens(std::span<const token_id> tokens, const char* where) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] > ngram_trie::max_key_token) {
        throw error(error_category::invalid_argument, std::string("lookahead_trie_drafter::") + where + ": token " +
                                                          std::to_string(tokens[i]) + " at " + std::to_string(i) +
                                                          " is outside [0, 2^24)");
      }
    }
  }
  static void reserve(draft_tree& t, std::int32_t n) {
    const auto m = static_cast<std::size_t>(n);
    t.tokens.reserve(m);
    t.parent.reserve(m);
    t.depth.reserve(m);
  }
  [[nodiscard]] std::size_t ngram_tokens() const noexcept { return static_cast<std::size_t>(opt_.branch_length) + 1; }

  lookahead_options opt_;
  ngram_trie trie_;
  std::vector<token_id> tail_;  // [< branch_length + 2]: history from the first position not yet stored
  std::size_t next_key_ = 0;    // index in the history of that position
  bool in_request_ = false;
};

}  // namespace specdec
