// decoder: the steppable, batched decode loop every method uses (continuous batching).
// It holds many requests, each with its own sequence in the model, drafter state, acceptance rule
// (sampling parameters), stop conditions, random stream and stats. One step():
//
//   admit queued requests while the model has sequences free      (requests join between steps)
//   for every active request:  prefilling -> the next chunk of prompt[0 .. n-1), no logits
//                              decoding   -> tree = drafter.draft(id, {context, budget})
//   one model.forward(batch of all those steps)
//   for every decoding request: acc = rule.accept(tree, its logits, its rng)
//                               drafter.observe(id, whole step)
//   then for every request:     model.commit(seq, accepted path or prefill chunk)
//                               emit tokens[path[1..]] + next_token, check stop conditions;
//                               a finished request frees its sequence (requests leave between steps)
//
// The budget is request_options::budget, or what its tree_budget_policy chooses per step (at most
// that; --budget auto: core/auto_budget.hpp), told after each commit what the step drafted, accepted
// and cost. decode_stats::steps_by_budget records the budgets used.
//
// The last prompt token is the first root (not prefilled), so a step's tree always starts at the
// newest token. The autoregressive baseline is this loop with null_drafter (root-only trees), so
// speedups compare like with like. Drafters see every request's outcome; sharing learned state
// across requests is the drafter's choice (Token Recycling shares its matrix, Lookahead keeps prompt
// n-grams per request).
#pragma once

#include <specdec/concepts/acceptance_rule.hpp>
#include <specdec/concepts/drafter.hpp>
#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/batch.hpp>
#include <specdec/core/budget_policy.hpp>
#include <specdec/core/decode_stats.hpp>
#include <specdec/core/verify_types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace specdec {

enum class stop_reason { length, end_token, stop_string, context, callback, cancelled };

inline const char* to_string(stop_reason r) noexcept {
  switch (r) {
    case stop_reason::length: return "length";
    case stop_reason::end_token: return "eos";
    case stop_reason::stop_string: return "stop_string";
    case stop_reason::context: return "context";
    case stop_reason::callback: return "callback";
    case stop_reason::cancelled: return "cancelled";
  }
  return "unknown";
}

struct request_options {
  std::int32_t max_new_tokens = 128;
  std::int32_t budget = 1;                // most rows verified per step: tree nodes (root included) + extra rows
  // Chooses each step's budget, at most `budget` (core/budget_policy.hpp, core/auto_budget.hpp);
  // nullptr = every step uses `budget`. Not owned; it must outlive the request. Any budget is lossless.
  budget_policy* tree_budget_policy = nullptr;
  std::vector<token_id> end_tokens;       // generation stops before emitting any of these
  std::vector<std::string> stop_strings;  // needs `detokenize`; output is cut after the stop string
  std::function<std::string(token_id)> detokenize;
  // Called with the tokens each step emits; return false to stop early.
  std::function<bool(std::span<const token_id>)> on_tokens;
  std::uint64_t seed = 0;  // the request's own random stream (sampling rules)
};

struct request_result {
  request_id id = 0;
  std::vector<token_id> tokens;  // generated tokens (end token excluded)
  stop_reason reason = stop_reason::length;
  decode_stats stats;
};

struct decoder_options {
  std::int32_t max_active = 0;      // requests decoded together; 0 = the model's max_sequences()
  std::int32_t prefill_chunk = 64;  // prompt tokens per request per step while it prefills
};

namespace detail {
using seconds_clock = std::chrono::steady_clock;
inline double since(seconds_clock::time_point t) {
  return std::chrono::duration<double>(seconds_clock::now() - t).count();
}
}  // namespace detail

template <sequence_model Model, drafter Drafter, acceptance_rule Rule>
class decoder {
 public:
  explicit decoder(Model& model, const decoder_options& opt = {}) : model_(model), opt_(opt) {
    if (opt.max_active < 0 || opt.prefill_chunk < 1) {
      throw error(error_category::invalid_argument, "decoder: max_active must be >= 0 and prefill_chunk >= 1");
    }
    max_active_ = opt.max_active > 0 ? std::min<std::int32_t>(opt.max_active, model.max_sequences())
                                     : static_cast<std::int32_t>(model.max_sequences());
  }
  decoder(const decoder&) = delete;
  decoder& operator=(const decoder&) = delete;
  ~decoder() {
    for (auto& r : active_) {
      try {
        r->drafter->end(r->id);
        model_.free_sequence(r->seq);
      } catch (...) {  // a destructor does not throw; the model is being torn down with us
      }
    }
  }

  // Queues a request; it joins the batch at the next step with a free sequence. The drafter must
  // outlive the request. Throws invalid_argument / capacity for bad options before queueing.
  request_id add(std::span<const token_id> prompt, Drafter& d, Rule rule, request_options opt) {
    if (prompt.empty()) throw error(error_category::invalid_argument, "decoder: empty prompt");
    if (opt.max_new_tokens < 1) throw error(error_category::invalid_argument, "decoder: max_new_tokens must be >= 1");
    if (opt.budget < 1 || opt.budget > model_.n_ctx()) {
      throw error(error_category::invalid_argument, "decoder: tree budget " + std::to_string(opt.budget) +
                                                        " must be in [1, n_ctx = " + std::to_string(model_.n_ctx()) + "]");
    }
    if (!opt.stop_strings.empty() && !opt.detokenize) {
      throw error(error_category::invalid_argument, "decoder: stop strings need a detokenize function");
    }
    if (static_cast<std::int64_t>(prompt.size()) >= model_.n_ctx()) {
      throw error(error_category::capacity, "decoder: the prompt has " + std::to_string(prompt.size()) +
                                                " tokens but the context holds " + std::to_string(model_.n_ctx()));
    }
    auto r = std::make_unique<request>(std::move(rule));
    r->id = next_id_++;
    r->prompt.assign(prompt.begin(), prompt.end());
    r->drafter = &d;
    r->opt = std::move(opt);
    r->rng.seed(r->opt.seed);
    for (const auto& s : r->opt.stop_strings) r->longest_stop = std::max(r->longest_stop, s.size());
    r->result.id = r->id;
    r->result.stats.n_prompt = static_cast<std::int64_t>(prompt.size());
    queued_.push_back(std::move(r));
    return queued_.back()->id;
  }

  // Ends a request now (queued or active); its result, with reason cancelled, is in take_finished().
  void cancel(request_id id) {
    for (auto it = queued_.begin(); it != queued_.end(); ++it) {
      if ((*it)->id == id) {
        (*it)->result.reason = stop_reason::cancelled;
        finished_.push_back(std::move((*it)->result));
        queued_.erase(it);
        return;
      }
    }
    for (auto& r : active_) {
      if (r->id == id) {
        r->result.reason = stop_reason::cancelled;
        r->done = true;
      }
    }
    retire();
  }

  [[nodiscard]] bool idle() const noexcept { return queued_.empty() && active_.empty(); }
  [[nodiscard]] std::size_t n_active() const noexcept { return active_.size(); }
  [[nodiscard]] std::size_t n_queued() const noexcept { return queued_.size(); }
  [[nodiscard]] std::int32_t max_active() const noexcept { return max_active_; }

  // Results of the requests that finished since the last call, in the order they finished.
  std::vector<request_result> take_finished() {
    std::vector<request_result> out;
    out.swap(finished_);
    return out;
  }

  // One batched step. Returns false when there was nothing to do (no request queued or active).
  bool step() {
    admit();
    if (active_.empty()) return false;
    forward_batch batch;
    batch.steps.reserve(active_.size());
    for (auto& r : active_) {
      const auto t = detail::seconds_clock::now();
      r->step_index = static_cast<std::int32_t>(batch.steps.size());
      batch.steps.push_back(plan(*r));
      if (!r->prefilling) {
        r->overhead_s = detail::since(t);
        r->result.stats.draft_s += r->overhead_s;
      }
    }

    const auto t_forward = detail::seconds_clock::now();
    const batch_logits logits = model_.forward(batch);
    const double forward_s = detail::since(t_forward);
    const std::int32_t forward_rows = batch.n_rows();

    // Accept and observe every request before any commit: the logits stay valid until then.
    for (auto& r : active_) {
      decode_stats& st = r->result.stats;
      if (r->prefilling) {
        st.prefill_s += forward_s;
        continue;
      }
      st.verify_s += forward_s;
      const logits_view rows = logits.step(static_cast<std::size_t>(r->step_index));
      auto t = detail::seconds_clock::now();
      r->acc = r->rule.accept(r->tree, rows, r->rng);
      double dt = detail::since(t);
      st.accept_s += dt;
      r->overhead_s += dt;
      r->fresh.clear();
      for (std::size_t i = 1; i < r->acc.path.size(); ++i) {
        r->fresh.push_back(r->tree.tokens[static_cast<std::size_t>(r->acc.path[i])]);
      }
      r->fresh.push_back(r->acc.next_token);
      r->context.insert(r->context.end(), r->fresh.begin(), r->fresh.end());
      t = detail::seconds_clock::now();
      r->drafter->observe(r->id, step_outcome{r->tree, rows, r->acc, r->fresh, r->context});
      dt = detail::since(t);
      st.observe_s += dt;
      r->overhead_s += dt;
    }

    for (auto& r : active_) {
      if (r->prefilling) {
        std::vector<std::int32_t> rows(static_cast<std::size_t>(r->chunk));
        std::iota(rows.begin(), rows.end(), 0);
        model_.commit(r->seq, rows);
        r->prefilled += r->chunk;
        if (r->prefilled + 1 >= static_cast<std::int32_t>(r->prompt.size())) start_decoding(*r);
        continue;
      }
      auto t = detail::seconds_clock::now();
      model_.commit(r->seq, r->acc.path);
      const double commit_s = detail::since(t);
      r->result.stats.accept_s += commit_s;
      if (r->opt.tree_budget_policy != nullptr) {
        r->opt.tree_budget_policy->observe(
            budget_step{r->id, r->budget, r->tree, r->acc, forward_s, forward_rows, r->overhead_s + commit_s});
      }
      count(*r);
      emit(*r);
    }
    retire();
    return true;
  }

  // Runs steps until every request has finished.
  void run() {
    while (step()) {
    }
  }

 private:
  struct request {
    explicit request(Rule r) : rule(std::move(r)) {}
    request_id id = 0;
    std::vector<token_id> prompt;
    Drafter* drafter = nullptr;
    Rule rule;
    request_options opt;
    std::mt19937_64 rng;
    seq_id seq = -1;
    bool prefilling = true;
    std::int32_t prefilled = 0;  // prompt tokens committed
    std::int32_t chunk = 0;      // prompt tokens in this step's prefill chunk
    std::int32_t step_index = 0;
    std::int32_t budget = 1;     // rows this step's drafter was allowed
    double overhead_s = 0;       // this step's draft + accept + observe seconds
    bool done = false;
    std::vector<token_id> context;  // prompt + generated (decoding only)
    draft_tree tree;
    acceptance acc;
    std::vector<token_id> fresh;
    std::string text;  // only kept for stop strings
    std::size_t longest_stop = 0;
    detail::seconds_clock::time_point decode_start;
    request_result result;
  };

  void admit() {
    while (!queued_.empty() && static_cast<std::int32_t>(active_.size()) < max_active_) {
      auto& r = queued_.front();
      r->seq = model_.create_sequence();
      r->prefilling = r->prompt.size() > 1;
      if (!r->prefilling) start_decoding(*r);
      active_.push_back(std::move(r));
      queued_.pop_front();
    }
  }

  void start_decoding(request& r) {
    r.prefilling = false;
    r.context = r.prompt;
    r.drafter->begin(r.id, r.prompt);
    r.decode_start = detail::seconds_clock::now();
  }

  sequence_step plan(request& r) {
    if (r.prefilling) {
      const auto head = static_cast<std::int32_t>(r.prompt.size()) - 1;
      r.chunk = std::min(opt_.prefill_chunk, head - r.prefilled);
      return sequence_step::chain(r.seq, std::span<const token_id>(r.prompt).subspan(static_cast<std::size_t>(r.prefilled),
                                                                                    static_cast<std::size_t>(r.chunk)),
                                  r.prefilled, logits_request::none);
    }
    const std::int32_t room = model_.n_ctx() - model_.n_past(r.seq);
    SPECDEC_ASSERT(room >= 1);
    const std::int32_t cap = std::min(r.opt.budget, room);
    const std::int32_t budget =
        r.opt.tree_budget_policy != nullptr ? std::clamp(r.opt.tree_budget_policy->budget(r.id, cap), 1, cap) : cap;
    r.budget = budget;
    r.tree = r.drafter->draft(r.id, draft_request{r.context, budget});
    SPECDEC_ASSERT(r.tree.size() >= 1 && r.tree.n_rows() <= budget && r.tree.root() == r.context.back());
    return sequence_step::tree(r.seq, r.tree, model_.n_past(r.seq));
  }

  static void count(request& r) {
    decode_stats& st = r.result.stats;
    ++st.steps;
    if (st.steps_by_budget.size() <= static_cast<std::size_t>(r.budget)) st.steps_by_budget.resize(static_cast<std::size_t>(r.budget) + 1, 0);
    ++st.steps_by_budget[static_cast<std::size_t>(r.budget)];
    st.n_drafted += static_cast<std::int64_t>(r.tree.size() - 1);
    st.n_extra_rows += static_cast<std::int64_t>(r.tree.n_extra());
    st.n_accept += static_cast<std::int64_t>(r.acc.path.size() - 1);
    const auto max_d = static_cast<std::size_t>(r.tree.max_depth());
    if (st.drafted_by_depth.size() <= max_d) st.drafted_by_depth.resize(max_d + 1, 0);
    if (st.accepted_by_depth.size() <= max_d) st.accepted_by_depth.resize(max_d + 1, 0);
    for (std::int32_t i = 1; i < r.tree.size(); ++i) ++st.drafted_by_depth[static_cast<std::size_t>(r.tree.depth[static_cast<std::size_t>(i)])];
    for (std::size_t i = 1; i < r.acc.path.size(); ++i) ++st.accepted_by_depth[i];
  }

  // Emits this step's tokens, stopping at an end token, a stop string or the token limit.
  void emit(request& r) {
    auto& out = r.result.tokens;
    const std::size_t before = out.size();
    for (std::size_t k = 0; k < r.fresh.size() && !r.done; ++k) {
      const token_id tok = r.fresh[k];
      if (std::find(r.opt.end_tokens.begin(), r.opt.end_tokens.end(), tok) != r.opt.end_tokens.end()) {
        r.result.reason = stop_reason::end_token;
        r.done = true;
        break;
      }
      out.push_back(tok);
      if (!r.opt.stop_strings.empty()) {
        r.text += r.opt.detokenize(tok);
        const std::size_t from = r.text.size() > r.longest_stop + 64 ? r.text.size() - r.longest_stop - 64 : 0;
        for (const auto& s : r.opt.stop_strings) {
          if (!s.empty() && r.text.find(s, from) != std::string::npos) {
            r.result.reason = stop_reason::stop_string;
            r.done = true;
          }
        }
      }
      if (static_cast<std::int32_t>(out.size()) >= r.opt.max_new_tokens) {
        if (!r.done) r.result.reason = stop_reason::length;
        r.done = true;
      }
    }
    if (r.opt.on_tokens && out.size() > before) {
      if (!r.opt.on_tokens(std::span<const token_id>(out).subspan(before)) && !r.done) {
        r.result.reason = stop_reason::callback;
        r.done = true;
      }
    }
    if (!r.done && model_.n_ctx() - model_.n_past(r.seq) < 1) {
      r.result.reason = stop_reason::context;
      r.done = true;
    }
  }

  // Requests that are done leave: drafter.end, sequence freed, result kept for take_finished().
  void retire() {
    for (auto it = active_.begin(); it != active_.end();) {
      request& r = **it;
      if (!r.done) {
        ++it;
        continue;
      }
      if (!r.prefilling || !r.context.empty()) {
        r.drafter->end(r.id);
        r.result.stats.total_s = detail::since(r.decode_start);
      }
      r.result.stats.n_generated = static_cast<std::int64_t>(r.result.tokens.size());
      model_.free_sequence(r.seq);
      finished_.push_back(std::move(r.result));
      it = active_.erase(it);
    }
  }

  Model& model_;
  decoder_options opt_;
  std::int32_t max_active_ = 1;
  request_id next_id_ = 1;
  std::deque<std::unique_ptr<request>> queued_;
  std::vector<std::unique_ptr<request>> active_;
  std::vector<request_result> finished_;
};

}  // namespace specdec
