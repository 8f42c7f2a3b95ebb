// restricted_head: a draft model whose head covers only part of the vocabulary. A draft forward of a
// large-vocabulary model spends a large share of its time in the head (Qwen2.5's 151,936 rows are a
// fifth of the 1.5B's weight bytes and over a third of the 0.5B's); a draft may propose from any
// distribution, since the acceptance rules keep the target's output exact whatever q is, so the
// draft can drop the rows of tokens it would rarely propose. The logits a restricted_head returns
// have output_tokens().size() columns; column j is token output_tokens()[j]. model_drafter maps
// the columns back to token ids (vocabulary_subset_model).
//
// It wraps a backend with the head_subset_model capability (cpu::llama_cpu has it) and optionally a
// subset of its layers, so it is both the restricted head of a second GGUF (all layers) and that of
// self-speculation (the target's own first layers).
#pragma once

#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/layer_subset.hpp>
#include <specdec/core/types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace specdec {

// A model whose logits columns are some tokens of a larger vocabulary: column j is output_tokens()[j].
template <class M>
concept vocabulary_subset_model = sequence_model<M> && requires(const M& cm) {
  { cm.output_tokens() } -> std::convertible_to<std::span<const token_id>>;
};

// A backend that can build a head over some tokens and run a forward with it (capability).
template <class M>
concept head_subset_model =
    layered_sequence_model<M> &&
    requires(M& m, const M& cm, std::vector<token_id> ids, const forward_batch& b, std::span<const std::int32_t> layers,
             const typename M::head_subset& h) {
      { cm.make_head_subset(std::move(ids)) } -> std::same_as<typename M::head_subset>;
      { m.forward(b, layers, h) } -> std::same_as<batch_logits>;
    };

template <head_subset_model Model>
class restricted_head {
 public:
  // tokens: the head's tokens, distinct, in the model's vocabulary (checked by the backend);
  // layers: the layers to run, ascending (empty = every layer).
  restricted_head(Model& m, std::vector<token_id> tokens, std::vector<std::int32_t> layers = {})
      : m_(m), tokens_(tokens), head_(m.make_head_subset(std::move(tokens))), layers_(std::move(layers)) {
    if (layers_.empty()) {
      layers_.resize(static_cast<std::size_t>(m.n_layers()));
      std::iota(layers_.begin(), layers_.end(), 0);
    }
    check_layer_subset(layers_, m.n_layers());
  }

  [[nodiscard]] std::int32_t n_vocab() const { return static_cast<std::int32_t>(tokens_.size()); }
  [[nodiscard]] std::span<const token_id> output_tokens() const noexcept { return tokens_; }
  [[nodiscard]] std::span<const std::int32_t> layers() const noexcept { return layers_; }
  [[nodiscard]] std::int32_t n_ctx() const { return m_.n_ctx(); }
  [[nodiscard]] std::int32_t max_sequences() const { return m_.max_sequences(); }
  seq_id create_sequence() { return m_.create_sequence(); }
  void free_sequence(seq_id s) { m_.free_sequence(s); }
  [[nodiscard]] std::int32_t n_past(seq_id s) const { return m_.n_past(s); }
  [[nodiscard]] std::int32_t n_pending(seq_id s) const { return m_.n_pending(s); }
  batch_logits forward(const forward_batch& b) { return m_.forward(b, layers_, head_); }
  void commit(seq_id s, std::span<const std::int32_t> rows) { m_.commit(s, rows); }
  void truncate(seq_id s, std::int32_t n) { m_.truncate(s, n); }

 private:
  Model& m_;
  std::vector<token_id> tokens_;
  typename Model::head_subset head_;
  std::vector<std::int32_t> layers_;
};

// The tokens of a frequency-ranked head: ids [0, n) plus `always` (end-of-turn and other control
// tokens above n), each once, in that order. Byte-level BPE vocabularies number their tokens in
// merge order, i.e. by how often the pair was seen in the tokenizer's training text, so the first n
// ids are the n most frequent pieces of that text (not an eval set). n must be in [1, n_vocab].
inline std::vector<token_id> frequent_tokens(std::int32_t n, std::int32_t n_vocab, std::span<const token_id> always = {}) {
  if (n < 1 || n > n_vocab) {
    throw error(error_category::invalid_argument, "restricted head: " + std::to_string(n) + " tokens is outside [1, " +
                                                      std::to_string(n_vocab) + "]");
  }
  std::vector<token_id> out(static_cast<std::size_t>(n));
  std::iota(out.begin(), out.end(), 0);
  for (const token_id t : always) {
    if (t < 0 || t >= n_vocab) {
      throw error(error_category::invalid_argument, "restricted head: token id " + std::to_string(t) + " outside the vocabulary");
    }
    if (t >= n && std::find(out.begin() + n, out.end(), t) == out.end()) out.push_back(t);
  }
  return out;
}

}  // namespace specdec
