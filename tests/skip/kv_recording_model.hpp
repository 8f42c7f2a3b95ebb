// A fake layered_sequence_model for SkipDecode tests: it keeps, per sequence and per position, which
// layers wrote K/V, and throws std::logic_error when a row runs a layer in which one of the rows it
// attends to (the committed cache, its pending ancestors) wrote nothing. It records the layer list of
// every forward and the layers each row ran. Logits depend only on the row's token (a fixed table),
// so greedy continuations are predictable: the next token after t is next_token(t).
#pragma once

#include <specdec/core/batch.hpp>
#include <specdec/error.hpp>

#include <cstdint>
#include <numeric>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace specdec::test {

class kv_recording_model {
 public:
  explicit kv_recording_model(std::int32_t n_layers = 8, std::int32_t n_vocab = 11, std::int32_t n_ctx = 512,
                              std::int32_t max_sequences = 4)
      : n_layers_(n_layers), n_vocab_(n_vocab), n_ctx_(n_ctx), seqs_(static_cast<std::size_t>(max_sequences)) {
    all_.resize(static_cast<std::size_t>(n_layers));
    std::iota(all_.begin(), all_.end(), 0);
  }

  [[nodiscard]] std::int32_t n_vocab() const noexcept { return n_vocab_; }
  [[nodiscard]] std::int32_t n_ctx() const noexcept { return n_ctx_; }
  [[nodiscard]] std::int32_t n_layers() const noexcept { return n_layers_; }
  [[nodiscard]] std::int32_t max_sequences() const noexcept { return static_cast<std::int32_t>(seqs_.size()); }

  seq_id create_sequence() {
    for (std::size_t s = 0; s < seqs_.size(); ++s) {
      if (!seqs_[s].live) {
        seqs_[s] = sequence{};
        seqs_[s].live = true;
        return static_cast<seq_id>(s);
      }
    }
    throw error(error_category::capacity, "kv_recording_model: no free sequence");
  }
  void free_sequence(seq_id s) { seq(s).live = false; }
  [[nodiscard]] std::int32_t n_past(seq_id s) const { return static_cast<std::int32_t>(seqs_.at(static_cast<std::size_t>(s)).cache.size()); }
  [[nodiscard]] std::int32_t n_pending(seq_id s) const { return static_cast<std::int32_t>(seqs_.at(static_cast<std::size_t>(s)).pending.size()); }

  // The greedy next token after t: argmax of logit(t, .).
  [[nodiscard]] token_id next_token(token_id t) const noexcept { return static_cast<token_id>((t * 7 + 3) % n_vocab_); }

  batch_logits forward(const forward_batch& b) { return forward(b, all_); }

  batch_logits forward(const forward_batch& b, std::span<const std::int32_t> layers) {
    forward_layers.emplace_back(layers.begin(), layers.end());
    batch_logits out;
    logits_.clear();
    for (const sequence_step& st : b.steps) {
      sequence& q = seq(st.seq);
      validate_step(st, static_cast<std::int32_t>(q.pending.size()), 0, n_vocab_, "kv_recording_model");
      out.first.push_back(static_cast<std::int32_t>(logits_.size() / static_cast<std::size_t>(n_vocab_)));
      for (std::int32_t i = 0; i < st.size(); ++i) {
        const auto iu = static_cast<std::size_t>(i);
        row r;
        r.token = st.tokens[iu];
        r.position = st.positions[iu];
        r.parent = st.parents[iu];
        r.written.assign(static_cast<std::size_t>(n_layers_), false);
        for (const std::int32_t l : layers) {
          for (std::size_t p = 0; p < q.cache.size(); ++p) check(q.cache[p], l, st.seq, r.position, "committed position " + std::to_string(p));
          for (std::int32_t a = r.parent; a >= 0; a = q.pending[static_cast<std::size_t>(a)].parent) {
            check(q.pending[static_cast<std::size_t>(a)], l, st.seq, r.position, "pending row " + std::to_string(a));
          }
          r.written[static_cast<std::size_t>(l)] = true;
        }
        row_layers.push_back(row_record{static_cast<std::int32_t>(forward_layers.size()) - 1, st.seq, r.position,
                                        st.logits == logits_request::all,
                                        std::vector<std::int32_t>(layers.begin(), layers.end())});
        q.pending.push_back(std::move(r));
        const bool returned = st.logits == logits_request::all || (st.logits == logits_request::last && i + 1 == st.size());
        if (returned) {
          for (token_id v = 0; v < n_vocab_; ++v) logits_.push_back(v == next_token(st.tokens[iu]) ? 1.0f : 0.0f);
        }
      }
      out.count.push_back(static_cast<std::int32_t>(logits_.size() / static_cast<std::size_t>(n_vocab_)) - out.first.back());
    }
    out.rows = logits_view{logits_.data(), static_cast<std::int32_t>(logits_.size() / static_cast<std::size_t>(n_vocab_)), n_vocab_};
    return out;
  }

  void commit(seq_id s, std::span<const std::int32_t> rows) {
    sequence& q = seq(s);
    std::int32_t parent = -1;
    for (const std::int32_t r : rows) {
      const row& x = q.pending.at(static_cast<std::size_t>(r));
      if (x.parent != parent || x.position != static_cast<std::int32_t>(q.cache.size())) {
        throw std::logic_error("kv_recording_model: commit is not a root-to-node path continuing the cache");
      }
      q.cache.push_back(x);
      parent = r;
    }
    q.pending.clear();
  }

  void truncate(seq_id s, std::int32_t n) {
    sequence& q = seq(s);
    q.pending.clear();
    q.cache.resize(static_cast<std::size_t>(n));
  }

  struct row_record {
    std::int32_t forward = 0;  // index in forward_layers
    seq_id seq = 0;
    std::int32_t position = 0;
    bool all_logits = false;
    std::vector<std::int32_t> layers;
  };
  std::vector<std::vector<std::int32_t>> forward_layers;  // the layer list of every forward
  std::vector<row_record> row_layers;                     // every row run, in order
  std::int64_t n_reads_checked = 0;

 private:
  struct row {
    token_id token = 0;
    std::int32_t position = 0;
    std::int32_t parent = -1;
    std::vector<bool> written;  // [n_layers]
  };
  struct sequence {
    bool live = false;
    std::vector<row> cache;
    std::vector<row> pending;
  };

  sequence& seq(seq_id s) {
    if (s < 0 || static_cast<std::size_t>(s) >= seqs_.size() || !seqs_[static_cast<std::size_t>(s)].live) {
      throw std::logic_error("kv_recording_model: unknown sequence " + std::to_string(s));
    }
    return seqs_[static_cast<std::size_t>(s)];
  }

  void check(const row& read, std::int32_t layer, seq_id s, std::int32_t position, const std::string& what) {
    ++n_reads_checked;
    if (!read.written[static_cast<std::size_t>(layer)]) {
      throw std::logic_error("kv_recording_model: sequence " + std::to_string(s) + ", row at position " +
                             std::to_string(position) + " runs layer " + std::to_string(layer) + " but " + what +
                             " wrote no K/V there");
    }
  }

  std::int32_t n_layers_, n_vocab_, n_ctx_;
  std::vector<sequence> seqs_;
  std::vector<std::int32_t> all_;
  std::vector<float> logits_;
};

}  // namespace specdec::test
