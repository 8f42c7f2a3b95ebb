// specdec::generate: one request, start to finish, on the decoder (verify/decoder.hpp): the call
// for a program that decodes one prompt at a time. It accepts the full boundary (sequence_model) or
// a one-sequence engine with the small forward_step concept (wrapped in single_sequence_adapter).
//
//   prefill prompt[0 .. n-1)            (the last prompt token is the first root, not yet cached)
//   repeat:  tree   = drafter.draft(id, {context, budget})
//            logits = model.forward(tree as a step: positions n_past + depth, parents)
//            acc    = rule.accept(tree, logits, rng)
//            drafter.observe(id, whole step)
//            model.commit(seq, acc.path)  (root + accepted drafts join the cache)
//            emit tokens[acc.path[1..]] + acc.next_token   (next_token is the new root)
//   until an end token, a stop string, max_new_tokens, a callback or a full context.
#pragma once

#include <specdec/concepts/acceptance_rule.hpp>
#include <specdec/concepts/drafter.hpp>
#include <specdec/concepts/forward_step.hpp>
#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/single_sequence_adapter.hpp>
#include <specdec/verify/decoder.hpp>

#include <span>

namespace specdec {

using generate_options = request_options;
using generate_result = request_result;

template <class Model, drafter Drafter, acceptance_rule Rule>
  requires sequence_model<Model> || forward_step<Model>
generate_result generate(Model& model, Drafter& drafter, Rule& rule, std::span<const token_id> prompt,
                         const generate_options& opt) {
  if constexpr (sequence_model<Model>) {
    decoder<Model, Drafter, Rule> dec(model);
    dec.add(prompt, drafter, rule, opt);
    dec.run();
    auto done = dec.take_finished();
    SPECDEC_ASSERT(done.size() == 1);
    return std::move(done.front());
  } else {
    single_sequence_adapter<Model> adapted(model);
    return generate(adapted, drafter, rule, prompt, opt);
  }
}

}  // namespace specdec
