// A fake model for unit tests of the decode loop: the next-token logits after a token depend only on
// that token and the one before it (a fixed pseudo-random table), so tests can predict greedy
// outputs exactly. It satisfies layered_forward_step (layers are ignored) and checks the loop's
// calls: positions must be n_past + depth and commits must continue the cache.
#pragma once

#include <specdec/concepts/drafter.hpp>
#include <specdec/concepts/forward_step.hpp>
#include <specdec/error.hpp>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>

namespace specdec::test {

class mock_model {
 public:
  explicit mock_model(std::int32_t n_vocab = 16, std::int32_t n_ctx = 256) : n_vocab_(n_vocab), n_ctx_(n_ctx) {}

  [[nodiscard]] std::int32_t n_vocab() const noexcept { return n_vocab_; }
  [[nodiscard]] std::int32_t n_ctx() const noexcept { return n_ctx_; }
  [[nodiscard]] std::int32_t n_past() const noexcept { return static_cast<std::int32_t>(committed_.size()); }
  [[nodiscard]] std::int32_t n_layers() const noexcept { return 4; }
  [[nodiscard]] const std::vector<token_id>& committed() const noexcept { return committed_; }
  // What the cache held before the last reset that emptied a non-empty cache.
  [[nodiscard]] const std::vector<token_id>& committed_before_reset() const noexcept { return last_reset_; }
  std::int64_t n_forwards = 0;
  std::int64_t n_tokens_forwarded = 0;

  // The logit of token v after the pair (prev, cur).
  [[nodiscard]] float logit(token_id prev, token_id cur, token_id v) const noexcept {
    std::uint32_t h = static_cast<std::uint32_t>(prev) * 2654435761u ^ static_cast<std::uint32_t>(cur) * 40503u ^
                      static_cast<std::uint32_t>(v) * 2246822519u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return static_cast<float>(h % 1000) / 100.0f;
  }

  // Plain greedy continuation, computed directly from the table.
  [[nodiscard]] std::vector<token_id> greedy(std::vector<token_id> ctx, int n) const {
    std::vector<token_id> out;
    for (int i = 0; i < n; ++i) {
      const token_id prev = ctx.size() >= 2 ? ctx[ctx.size() - 2] : -1, cur = ctx.back();
      token_id best = 0;
      for (token_id v = 1; v < n_vocab_; ++v) {
        if (logit(prev, cur, v) > logit(prev, cur, best)) best = v;
      }
      out.push_back(best);
      ctx.push_back(best);
    }
    return out;
  }

  logits_view forward(const step_batch& b) {
    const std::int32_t n = b.size();
    if (n_past() + n > n_ctx_) throw error(error_category::capacity, "mock_model: context full");
    ++n_forwards;
    n_tokens_forwarded += n;
    rows_.assign(static_cast<std::size_t>(n) * static_cast<std::size_t>(n_vocab_), 0.0f);
    step_tokens_ = b.tokens;
    step_positions_ = b.positions;
    for (std::int32_t i = 0; i < n; ++i) {
      std::int32_t depth = b.mask.count(i) - 1;
      if (b.positions[static_cast<std::size_t>(i)] != n_past() + depth) {
        throw std::logic_error("mock_model: position is not n_past + depth");
      }
      token_id prev = committed_.empty() ? -1 : committed_.back();
      for (std::int32_t j = i - 1; j >= 0; --j) {
        if (b.mask.attends(i, j)) {
          prev = b.tokens[static_cast<std::size_t>(j)];
          break;
        }
      }
      for (token_id v = 0; v < n_vocab_; ++v) {
        rows_[static_cast<std::size_t>(i) * static_cast<std::size_t>(n_vocab_) + static_cast<std::size_t>(v)] =
            logit(prev, b.tokens[static_cast<std::size_t>(i)], v);
      }
    }
    return logits_view{rows_.data(), n, n_vocab_};
  }
  logits_view forward(const step_batch& b, std::span<const std::int32_t>) { return forward(b); }

  void commit(std::span<const std::int32_t> rows) {
    for (std::size_t k = 0; k < rows.size(); ++k) {
      if (step_positions_.at(static_cast<std::size_t>(rows[k])) != n_past()) {
        throw std::logic_error("mock_model: committed row does not continue the cache");
      }
      committed_.push_back(step_tokens_.at(static_cast<std::size_t>(rows[k])));
    }
    step_tokens_.clear();
    step_positions_.clear();
  }

  void reset() {
    if (!committed_.empty()) last_reset_ = committed_;
    committed_.clear();
    step_tokens_.clear();
  }

 private:
  std::int32_t n_vocab_;
  std::int32_t n_ctx_;
  std::vector<token_id> committed_;
  std::vector<token_id> last_reset_;
  std::vector<token_id> step_tokens_;
  std::vector<std::int32_t> step_positions_;
  std::vector<float> rows_;
};

// A drafter for loop tests: proposes the model's true greedy chain of `depth` tokens plus one wrong
// sibling at every level, and records what it observed.
class oracle_drafter {
 public:
  oracle_drafter(const mock_model& m, std::int32_t depth) : model_(m), depth_(depth) {}

  void begin(request_id, std::span<const token_id> prompt) { ++n_begin; prompt_size = static_cast<std::int64_t>(prompt.size()); }
  draft_tree draft(request_id, const draft_request& r) {
    draft_tree t = draft_tree::root_only(r.context.back());
    const std::vector<token_id> ctx(r.context.begin(), r.context.end());
    const auto chain = model_.greedy(ctx, depth_);
    std::int32_t node = 0;
    for (token_id tok : chain) {
      if (t.size() + 2 > r.budget) break;
      const token_id wrong = (tok + 1) % model_.n_vocab();
      t.add(node, wrong);
      node = t.add(node, tok);
    }
    return t;
  }
  void observe(request_id, const step_outcome& o) {
    ++n_observe;
    observed_new += static_cast<std::int64_t>(o.new_tokens.size());
    last_context_size = static_cast<std::int64_t>(o.context.size());
  }
  void end(request_id) { ++n_end; }

  std::int64_t n_begin = 0, n_end = 0, n_observe = 0, observed_new = 0, prompt_size = 0, last_context_size = 0;

 private:
  const mock_model& model_;
  std::int32_t depth_;
};

}  // namespace specdec::test
