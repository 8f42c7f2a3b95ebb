// specdec::generate: the one decode loop every method uses.
//
//   prefill prompt[0 .. n-1)            (the last prompt token is the first root, not yet cached)
//   repeat:  tree   = drafter.draft({context, budget})
//            logits = model.forward(tree as a step: positions n_past + depth, ancestor mask)
//            acc    = rule.accept(tree, logits, rng)
//            model.commit(acc.path)       (root + accepted drafts join the cache)
//            drafter.observe(whole step)
//            emit tokens[acc.path[1..]] + acc.next_token   (next_token is the new root)
//   until an end token, a stop string, max_new_tokens or a full context.
// The autoregressive baseline is this loop with null_drafter (root-only trees), so speedups compare
// like with like.
#pragma once

#include <specdec/concepts/acceptance_rule.hpp>
#include <specdec/concepts/drafter.hpp>
#include <specdec/concepts/forward_step.hpp>
#include <specdec/core/decode_stats.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace specdec {

struct generate_options {
  std::int32_t max_new_tokens = 128;
  std::int32_t budget = 1;                // largest tree verified per step, root included
  std::vector<token_id> end_tokens;       // generation stops before emitting any of these
  std::vector<std::string> stop_strings;  // needs `detokenize`; output is cut after the stop string
  std::function<std::string(token_id)> detokenize;
  // Called with the tokens each step emits; return false to stop early.
  std::function<bool(std::span<const token_id>)> on_tokens;
  std::uint64_t seed = 0;
};

enum class stop_reason { length, end_token, stop_string, context, callback };

inline const char* to_string(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::length: return "length";
    case stop_reason::end_token: return "eos";
    case stop_reason::stop_string: return "stop_string";
    case stop_reason::context: return "context";
    case stop_reason::callback: return "callback";
  }
  return "unknown";
}

struct generate_result {
  std::vector<token_id> tokens;  // generated tokens (end token excluded)
  stop_reason reason = stop_reason::length;
  decode_stats stats;
};

namespace detail {

using seconds_clock = std::chrono::steady_clock;
inline double since(seconds_clock::time_point t) {
  return std::chrono::duration<double>(seconds_clock::now() - t).count();
}

template <class Model>
void prefill_all_but_last(Model& model, std::span<const token_id> prompt) {
  const auto head = prompt.first(prompt.size() - 1);
  if (head.empty()) return;
  if constexpr (requires { model.prefill(head); }) {
    (void)model.prefill(head);
  } else {
    (void)model.forward(step_batch::chain(head, model.n_past()));
    std::vector<std::int32_t> rows(head.size());
    std::iota(rows.begin(), rows.end(), 0);
    model.commit(rows);
  }
}

}  // namespace detail

template <layered_forward_step Model, drafter Drafter, acceptance_rule Rule>
generate_result generate(Model& model, Drafter& drafter, Rule& rule, std::span<const token_id> prompt,
                         const generate_options& opt) {
  if (prompt.empty()) throw error(error_category::invalid_argument, "generate: empty prompt");
  if (opt.max_new_tokens < 1) throw error(error_category::invalid_argument, "generate: max_new_tokens must be >= 1");
  if (opt.budget < 1 || opt.budget > model.n_ctx()) {
    throw error(error_category::invalid_argument, "generate: tree budget " + std::to_string(opt.budget) +
                                                      " must be in [1, n_ctx = " + std::to_string(model.n_ctx()) + "]");
  }
  if (!opt.stop_strings.empty() && !opt.detokenize) {
    throw error(error_category::invalid_argument, "generate: stop strings need a detokenize function");
  }
  if (static_cast<std::int64_t>(prompt.size()) >= model.n_ctx()) {
    throw error(error_category::capacity, "generate: the prompt has " + std::to_string(prompt.size()) +
                                              " tokens but the context holds " + std::to_string(model.n_ctx()));
  }

  generate_result result;
  decode_stats& st = result.stats;
  st.n_prompt = static_cast<std::int64_t>(prompt.size());
  std::mt19937_64 rng(opt.seed);
  std::vector<token_id> context(prompt.begin(), prompt.end());
  std::string text;  // only kept for stop strings
  std::size_t longest_stop = 0;
  for (const auto& s : opt.stop_strings) longest_stop = std::max(longest_stop, s.size());

  model.reset();
  const auto t_prefill = detail::seconds_clock::now();
  detail::prefill_all_but_last(model, prompt);
  st.prefill_s = detail::since(t_prefill);
  drafter.begin(prompt);

  const auto t_start = detail::seconds_clock::now();
  std::vector<token_id> fresh;
  bool done = false;
  while (!done) {
    const std::int32_t room = model.n_ctx() - model.n_past();
    if (room < 1) {
      result.reason = stop_reason::context;
      break;
    }
    auto t = detail::seconds_clock::now();
    const draft_tree tree = drafter.draft(draft_request{context, std::min(opt.budget, room)});
    st.draft_s += detail::since(t);
    SPECDEC_ASSERT(tree.size() >= 1 && tree.size() <= std::min(opt.budget, room) && tree.root() == context.back());

    t = detail::seconds_clock::now();
    const step_batch batch = step_batch::tree(tree.tokens, tree.parent, model.n_past());
    const logits_view logits = model.forward(batch);
    st.verify_s += detail::since(t);

    t = detail::seconds_clock::now();
    const acceptance acc = rule.accept(tree, logits, rng);
    st.accept_s += detail::since(t);

    fresh.clear();
    for (std::size_t i = 1; i < acc.path.size(); ++i) fresh.push_back(tree.tokens[static_cast<std::size_t>(acc.path[i])]);
    fresh.push_back(acc.next_token);
    context.insert(context.end(), fresh.begin(), fresh.end());

    t = detail::seconds_clock::now();
    drafter.observe(step_outcome{tree, logits, acc, fresh, context});
    st.observe_s += detail::since(t);
    t = detail::seconds_clock::now();
    model.commit(acc.path);
    st.accept_s += detail::since(t);

    ++st.steps;
    const auto n_draft = static_cast<std::int64_t>(tree.size() - 1);
    st.n_drafted += n_draft;
    st.n_accept += static_cast<std::int64_t>(acc.path.size() - 1);
    const auto max_d = static_cast<std::size_t>(tree.max_depth());
    if (st.drafted_by_depth.size() <= max_d) st.drafted_by_depth.resize(max_d + 1, 0);
    if (st.accepted_by_depth.size() <= max_d) st.accepted_by_depth.resize(max_d + 1, 0);
    for (std::int32_t i = 1; i < tree.size(); ++i) ++st.drafted_by_depth[static_cast<std::size_t>(tree.depth[static_cast<std::size_t>(i)])];
    for (std::size_t i = 1; i < acc.path.size(); ++i) ++st.accepted_by_depth[i];

    // Emit, stopping at an end token, a stop string or the token limit.
    const std::size_t before = result.tokens.size();
    for (std::size_t k = 0; k < fresh.size() && !done; ++k) {
      const token_id tok = fresh[k];
      if (std::find(opt.end_tokens.begin(), opt.end_tokens.end(), tok) != opt.end_tokens.end()) {
        result.reason = stop_reason::end_token;
        done = true;
        break;
      }
      result.tokens.push_back(tok);
      if (!opt.stop_strings.empty()) {
        text += opt.detokenize(tok);
        const std::size_t from = text.size() > longest_stop + 64 ? text.size() - longest_stop - 64 : 0;
        for (const auto& s : opt.stop_strings) {
          if (!s.empty() && text.find(s, from) != std::string::npos) {
            result.reason = stop_reason::stop_string;
            done = true;
          }
        }
      }
      if (static_cast<std::int32_t>(result.tokens.size()) >= opt.max_new_tokens) {
        if (!done) result.reason = stop_reason::length;
        done = true;
      }
    }
    if (opt.on_tokens && result.tokens.size() > before) {
      const auto shown = std::span<const token_id>(result.tokens).subspan(before);
      if (!opt.on_tokens(shown) && !done) {
        result.reason = stop_reason::callback;
        done = true;
      }
    }
  }
  drafter.end();
  st.total_s = detail::since(t_start);
  st.n_generated = static_cast<std::int64_t>(result.tokens.size());
  return result;
}

}  // namespace specdec
