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
#include <unordered_map>
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

  // Request id starts: its prompt's n-grams get input counts in a trie of its own (they help this
  // request only; requests decoded together do not see each other's prompts). Throws
  // invalid_argument for a token outside [0, ngram_trie::max_key_token]. Restarts an open request id.
  void begin(request_id id, std::span<const token_id> prompt) {
    check_tokens(prompt, "begin");
    if (requests_.count(id) != 0) end(id);
    request_state& r = requests_.emplace(id, request_state(opt_.max_nodes)).first->second;
    const std::size_t n = prompt.size();
    for (std::size_t i = 0; i + 1 < n; ++i) {
      r.prompt.insert(prompt[i], prompt.subspan(i + 1, std::min(ngram_tokens(), n - 1 - i)), ngram_source::input);
    }
    r.next_key = n > 0 ? n - 1 : 0;  // the last prompt token is the first key of the output's n-grams
  }

  [[nodiscard]] draft_tree draft(request_id id, const draft_request& r) const {
    return retrieve(id, r.context, r.budget).tree;
  }

  // Hierarchical retrieval for the context (its last token is the root) within min(budget,
  // decoding_length) nodes: the request's prompt n-grams first, then the shared output n-grams.
  [[nodiscard]] lookahead_retrieval retrieve(request_id id, std::span<const token_id> context, std::int32_t budget) const {
    lookahead_retrieval out;
    out.tree = draft_tree::root_only(context.empty() ? token_id{0} : context.back());
    const std::int32_t n = std::min(budget, opt_.decoding_length);
    if (context.empty() || n <= 1) return out;
    const auto it = requests_.find(id);
    const ngram_trie* prompt = it != requests_.end() ? &it->second.prompt : nullptr;
    const token_id root = context.back();
    const std::int32_t enough = std::min(opt_.branch_length, n - 1);
    reserve(out.tree, n);
    const auto find = [](const ngram_trie* t, token_id key) { return t != nullptr ? t->find(key) : -1; };
    if (context.size() >= 2) {
      const token_id before = context[context.size() - 2];
      const std::int32_t p = prompt != nullptr ? prompt->find_child(find(prompt, before), root) : -1;
      collect(prompt, p, trie_.find_child(trie_.find(before), root), n, out.tree);
      if (out.tree.size() > 1) out.query_length = 2;
      if (out.tree.size() - 1 >= enough) return out;
    }
    draft_tree single = draft_tree::root_only(root);
    reserve(single, n);
    collect(prompt, find(prompt, root), trie_.find(root), n, single);
    if (single.size() > out.tree.size()) {
      out.tree = std::move(single);
      out.query_length = 1;
    }
    return out;
  }

  // A verified step of request id: every position of its history that now has branch_length + 1
  // tokens after it, and was not stored yet, gets an output count in the shared trie. Reads the
  // history from outcome.context.
  void observe(request_id id, const step_outcome& o) {
    const auto ctx = o.context;
    auto it = requests_.find(id);
    if (it == requests_.end()) {  // no begin(): start from this step's history
      it = requests_.emplace(id, request_state(16)).first;
      it->second.next_key = ctx.size() > o.new_tokens.size() ? ctx.size() - o.new_tokens.size() - 1 : 0;
    }
    request_state& r = it->second;
    if (r.next_key >= ctx.size()) r.next_key = ctx.size() > o.new_tokens.size() ? ctx.size() - o.new_tokens.size() - 1 : 0;
    const std::size_t len = ngram_tokens();
    for (; r.next_key + len < ctx.size(); ++r.next_key) {
      trie_.insert(ctx[r.next_key], ctx.subspan(r.next_key + 1, len), ngram_source::output);
    }
    r.tail.assign(ctx.begin() + static_cast<std::ptrdiff_t>(r.next_key), ctx.end());  // [< len + 1]
  }

  // Request id is over: its output's last, shorter n-grams are stored and its prompt n-grams are
  // dropped. Output n-grams stay for later requests.
  void end(request_id id) {
    const auto it = requests_.find(id);
    if (it == requests_.end()) return;
    const std::span<const token_id> tail(it->second.tail);
    for (std::size_t p = 0; p + 1 < tail.size(); ++p) trie_.insert(tail[p], tail.subspan(p + 1), ngram_source::output);
    requests_.erase(it);
  }

  // One-request shorthands (request id 0), for callers that decode one request at a time.
  void begin(std::span<const token_id> prompt) { begin(0, prompt); }
  [[nodiscard]] draft_tree draft(const draft_request& r) const { return draft(0, r); }
  [[nodiscard]] lookahead_retrieval retrieve(std::span<const token_id> context, std::int32_t budget) const {
    return retrieve(0, context, budget);
  }
  void observe(const step_outcome& o) { observe(0, o); }
  void end() { end(0); }

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
  // The shared trie of output n-grams.
  [[nodiscard]] const ngram_trie& trie() const noexcept { return trie_; }
  // The prompt n-grams of an open request, or nullptr.
  [[nodiscard]] const ngram_trie* prompt_trie(request_id id = 0) const noexcept {
    const auto it = requests_.find(id);
    return it != requests_.end() ? &it->second.prompt : nullptr;
  }
  [[nodiscard]] std::size_t n_open_requests() const noexcept { return requests_.size(); }
  [[nodiscard]] std::size_t n_nodes() const noexcept { return trie_.n_nodes(); }
  [[nodiscard]] std::size_t memory_bytes() const noexcept {
    std::size_t b = trie_.memory_bytes() + sizeof(*this) - sizeof(trie_);
    for (const auto& [id, r] : requests_) b += r.prompt.memory_bytes() + r.tail.capacity() * sizeof(token_id);
    return b;
  }

 private:
  // Best-first walk over the union of the request's prompt trie and the shared trie below the nodes
  // p_from and s_from (either may be -1): score = input * 2^32 + output as if both counts lived in one
  // trie. A union node's children are its prompt children (few: the prompt is short), each scored
  // with its shared output count, then the shared children not among them, taken lazily in their
  // sorted order (they have no input count, so they rank below every prompt child).
  void collect(const ngram_trie* prompt, std::int32_t p_from, std::int32_t s_from, std::int32_t budget,
               draft_tree& tree) const {
    struct candidate {
      std::uint64_t score;
      std::uint32_t order;  // push order: ties go to the earlier (shallower / higher-ranked) one
      std::int32_t p_node, s_node, tree_parent, depth;
      std::int32_t p_parent;  // for a lazily taken shared child: its union parent's prompt node
    };
    auto worse = [](const candidate& a, const candidate& b) {
      return a.score != b.score ? a.score < b.score : a.order > b.order;
    };
    std::vector<candidate> frontier;
    std::uint32_t order = 0;
    auto push = [&](candidate c) {
      c.order = order++;
      frontier.push_back(c);
      std::push_heap(frontier.begin(), frontier.end(), worse);
    };
    // The next shared child from s (inclusive) whose token is not a prompt child of p_parent.
    auto push_shared = [&](std::int32_t s, std::int32_t p_parent, std::int32_t tree_parent, std::int32_t depth) {
      for (; s >= 0; s = trie_.node(s).next_sibling) {
        const ngram_node& sn = trie_.node(s);
        if (sn.output == 0) return;  // sorted: nothing after it scores either
        if (p_parent >= 0 && prompt->find_child(p_parent, sn.token) >= 0) continue;
        push({sn.output, 0, -1, s, tree_parent, depth, p_parent});
        return;
      }
    };
    auto expand = [&](std::int32_t p, std::int32_t s, std::int32_t tree_parent, std::int32_t depth) {
      if (p >= 0) {
        for (std::int32_t c = prompt->node(p).first_child; c >= 0; c = prompt->node(c).next_sibling) {
          const ngram_node& pn = prompt->node(c);
          const std::int32_t sc = trie_.find_child(s, pn.token);
          const std::uint64_t out = sc >= 0 ? trie_.node(sc).output : 0;
          if (pn.input > 0 || out > 0) push({(std::uint64_t{pn.input} << 32) | out, 0, c, sc, tree_parent, depth, -1});
        }
      }
      if (s >= 0) push_shared(trie_.node(s).first_child, p, tree_parent, depth);
    };
    if ((p_from < 0 && s_from < 0) || tree.size() >= budget) return;
    expand(p_from, s_from, 0, 1);
    while (!frontier.empty() && tree.size() < budget) {
      std::pop_heap(frontier.begin(), frontier.end(), worse);
      const candidate c = frontier.back();
      frontier.pop_back();
      const token_id tok = c.p_node >= 0 ? prompt->node(c.p_node).token : trie_.node(c.s_node).token;
      const std::int32_t id = tree.add(c.tree_parent, tok);
      if (c.p_node < 0) push_shared(trie_.node(c.s_node).next_sibling, c.p_parent, c.tree_parent, c.depth);
      if (c.depth < opt_.branch_length) expand(c.p_node, c.s_node, id, c.depth + 1);
    }
  }

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

  // What belongs to one open request.
  struct request_state {
    explicit request_state(std::size_t max_nodes) : prompt(max_nodes) {}
    ngram_trie prompt;            // the request's prompt n-grams (input counts)
    std::vector<token_id> tail;   // [< branch_length + 2]: history from the first position not yet stored
    std::size_t next_key = 0;     // index in the history of that position
  };

  lookahead_options opt_;
  ngram_trie trie_;  // output n-grams of every request, shared
  std::unordered_map<request_id, request_state> requests_;
};

}  // namespace specdec
