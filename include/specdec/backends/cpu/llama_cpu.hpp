// llama_cpu: the reference CPU backend for Llama-architecture GGUF models. Implements the version-2
// boundary with every capability (concepts/sequence_model.hpp): many sequences, each with its own
// paged KV cache (kv_cache.hpp); a batch of per-sequence steps per forward, whose rows stay pending
// across forwards until commit; truncate; layer subsets; embedding-vector rows.
// Weights stay in the GGUF's formats (or the one llama_cpu_options::weights asks for); products use
// project.hpp, whose per-row reduction order does not depend on the number of rows, so a row's
// logits are bit-identical whatever the batch.
#pragma once

#include <specdec/backends/cpu/aligned.hpp>
#include <specdec/backends/cpu/attention.hpp>
#include <specdec/backends/cpu/kv_cache.hpp>
#include <specdec/backends/cpu/llama_weights.hpp>
#include <specdec/backends/cpu/matmul.hpp>
#include <specdec/backends/cpu/ops.hpp>
#include <specdec/backends/cpu/project.hpp>
#include <specdec/backends/cpu/thread_pool.hpp>
#include <specdec/core/batch.hpp>
#include <specdec/core/step.hpp>
#include <specdec/error.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/model/llama_config.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace specdec::cpu {

struct llama_cpu_options {
  std::int32_t n_threads = 2;       // threads of the backend's pool (the caller's thread included)
  std::int32_t n_ctx = 0;           // positions per sequence; 0 = the model's training context
  std::int32_t n_batch = 64;        // prefill chunk size (tokens per forward) of prefill()
  std::int32_t max_sequences = 16;  // sequences held at once
  std::int64_t kv_slots = 0;        // KV slots over all sequences; 0 = max_sequences x n_ctx (pages are
                                    // allocated as sequences grow, so this is a cap, not a reservation)
  // Storage of the weight matrices (--weights): by default the file's own formats, which with f32
  // activations compute the fp32 path's logits bit for bit while reading 5.6x fewer bytes.
  weight_format weights = weight_format::automatic;
  // How products with block-quantized weights meet the activations (--activations): f32 widens
  // each block in registers (the fp32 product of the dequantized weights), int8 quantizes the
  // activations (integer products, less accurate: docs/benchmarks.md).
  activation_format activations = activation_format::f32;
  // Element type of the cached K and V (--kv-type): f32, or fp16 / bf16 (half the bytes attention
  // reads per cached token; each value rounded once when written).
  kv_format kv_type = kv_format::f32;
};

class llama_cpu {
 public:
  llama_cpu(const gguf::file& f, const llama_cpu_options& opt = {})
      : config_(read_llama_config(f)), pool_(check_threads(opt.n_threads)) {
    if (config_.rope_scaling_type == rope_scaling::yarn) {
      throw error(error_category::unsupported, f.source() + ": YaRN rope scaling is not supported by the CPU backend");
    }
    if (opt.n_ctx < 0 || opt.n_batch <= 0) {
      throw error(error_category::invalid_argument, "llama_cpu: n_ctx must be >= 0 and n_batch > 0");
    }
    n_ctx_ = opt.n_ctx == 0 ? static_cast<std::int32_t>(std::min<std::int64_t>(config_.n_ctx_train, 1 << 20))
                            : opt.n_ctx;
    if (opt.n_ctx > config_.n_ctx_train) {
      throw error(error_category::invalid_argument, "llama_cpu: n_ctx " + std::to_string(opt.n_ctx) +
                                                        " exceeds the model's context length " +
                                                        std::to_string(config_.n_ctx_train));
    }
    if (opt.max_sequences < 1 || opt.kv_slots < 0) {
      throw error(error_category::invalid_argument, "llama_cpu: max_sequences must be >= 1 and kv_slots >= 0");
    }
    n_batch_ = opt.n_batch;
    max_sequences_ = opt.max_sequences;
    weights_ = load_llama_weights(f, config_, opt.weights);
    activations_ = opt.activations;
    const std::int64_t slots = opt.kv_slots > 0 ? opt.kv_slots : static_cast<std::int64_t>(max_sequences_) * n_ctx_;
    cache_ = kv_cache(static_cast<std::int32_t>(config_.n_layers), static_cast<std::int32_t>(config_.n_head_kv),
                      static_cast<std::int32_t>(config_.head_dim), slots, opt.kv_type);
    all_layers_.resize(static_cast<std::size_t>(config_.n_layers));
    std::iota(all_layers_.begin(), all_layers_.end(), 0);
  }

  explicit llama_cpu(const std::string& path, const llama_cpu_options& opt = {}) : llama_cpu(gguf::file(path), opt) {}

  [[nodiscard]] const llama_config& config() const noexcept { return config_; }
  [[nodiscard]] std::int32_t n_vocab() const noexcept { return static_cast<std::int32_t>(config_.n_vocab); }
  [[nodiscard]] std::int32_t n_ctx() const noexcept { return n_ctx_; }
  [[nodiscard]] std::int32_t n_layers() const noexcept { return static_cast<std::int32_t>(config_.n_layers); }
  [[nodiscard]] std::int32_t n_embd() const noexcept { return static_cast<std::int32_t>(config_.n_embd); }
  [[nodiscard]] std::int32_t n_threads() const noexcept { return static_cast<std::int32_t>(pool_.size()); }
  // Bytes of weights held, and streamed per forward step; formats changed at load, one line each.
  [[nodiscard]] std::size_t weight_bytes() const noexcept { return weights_.bytes(); }
  [[nodiscard]] std::size_t weight_bytes_per_step() const noexcept { return weights_.bytes_per_step(); }
  [[nodiscard]] std::vector<std::string> weight_conversions() const { return weights_.conversions.lines(); }
  // Storage of the layer matrices (that of the first layer's QKV projection; the tied head and
  // norms aside, every layer matrix of the default files shares it). Sets the forward's cost curve.
  [[nodiscard]] block_format layer_format() const noexcept { return weights_.layers.front().wqkv.parts.front().format(); }
  [[nodiscard]] std::int32_t max_sequences() const noexcept { return max_sequences_; }
  [[nodiscard]] const kv_cache& cache() const noexcept { return cache_; }

  seq_id create_sequence() {
    for (std::size_t i = 0; i < seqs_.size(); ++i) {
      if (!seqs_[i].live) {
        seqs_[i] = sequence{};
        seqs_[i].live = true;
        return static_cast<seq_id>(i);
      }
    }
    if (static_cast<std::int32_t>(seqs_.size()) >= max_sequences_) {
      throw error(error_category::capacity, "llama_cpu: all " + std::to_string(max_sequences_) +
                                                " sequences are in use (llama_cpu_options::max_sequences)");
    }
    seqs_.emplace_back();
    seqs_.back().live = true;
    return static_cast<seq_id>(seqs_.size() - 1);
  }

  void free_sequence(seq_id s) {
    sequence& q = seq(s, "free_sequence");
    cache_.shrink(q.pages, 0);
    q = sequence{};
  }

  [[nodiscard]] std::int32_t n_past(seq_id s) const { return seq(s, "n_past").n_past; }
  [[nodiscard]] std::int32_t n_pending(seq_id s) const { return seq(s, "n_pending").n_pending(); }

  batch_logits forward(const forward_batch& b) { return run(b, all_layers_); }

  batch_logits forward(const forward_batch& b, std::span<const std::int32_t> layers) {
    check_layers(layers);
    return run(b, layers);
  }

  // A head restricted to some tokens of the vocabulary: the head matrix's rows of `tokens`, copied
  // once (a draft model's cheaper head, docs/methods/dyspec.md). A forward with it returns logits
  // rows of tokens.size() columns, column j being token tokens[j], bit for bit the value the full
  // head gives that token (the same row bytes and the same product order).
  struct head_subset {
    std::vector<token_id> tokens;
    weight_matrix rows;
  };

  // tokens: distinct ids in [0, n_vocab), at least one. Throws invalid_argument naming the problem.
  [[nodiscard]] head_subset make_head_subset(std::vector<token_id> tokens) const {
    if (tokens.empty()) throw error(error_category::invalid_argument, "llama_cpu::make_head_subset: no tokens given");
    std::vector<bool> seen(static_cast<std::size_t>(n_vocab()), false);
    for (const token_id t : tokens) {
      if (t < 0 || t >= n_vocab()) {
        throw error(error_category::invalid_argument, "llama_cpu::make_head_subset: token id " + std::to_string(t) +
                                                          " outside the vocabulary of " + std::to_string(n_vocab()));
      }
      if (seen[static_cast<std::size_t>(t)]) {
        throw error(error_category::invalid_argument, "llama_cpu::make_head_subset: token id " + std::to_string(t) + " given twice");
      }
      seen[static_cast<std::size_t>(t)] = true;
    }
    const weight_matrix& full = weights_.head();
    head_subset h;
    h.tokens = std::move(tokens);
    h.rows = weight_matrix(full.format(), h.tokens.size(), full.cols());
    for (std::size_t j = 0; j < h.tokens.size(); ++j) {
      std::memcpy(h.rows.row(j), full.row(static_cast<std::size_t>(h.tokens[j])), full.row_bytes());
    }
    return h;
  }

  // forward(b, layers) whose logits come from the restricted head h (made by this model).
  batch_logits forward(const forward_batch& b, std::span<const std::int32_t> layers, const head_subset& h) {
    if (h.rows.cols() != static_cast<std::size_t>(config_.n_embd) || h.rows.rows() != h.tokens.size() || h.tokens.empty()) {
      throw error(error_category::invalid_argument, "llama_cpu::forward: the head subset was not made by this model");
    }
    check_layers(layers);
    return run(b, layers, &h.rows);
  }

  // Keeps pending rows `rows` (a root-to-node path) as positions n_past, n_past + 1, ...; drops the
  // other pending rows.
  void commit(seq_id s, std::span<const std::int32_t> rows) {
    sequence& q = seq(s, "commit");
    const std::int32_t n_pend = q.n_pending();
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::int32_t r = rows[k];
      if (r < 0 || r >= n_pend) {
        throw error(error_category::invalid_argument, "llama_cpu::commit: sequence " + std::to_string(s) + ": row " +
                                                          std::to_string(r) + " is not pending (" +
                                                          std::to_string(n_pend) + " pending)");
      }
      const std::int32_t want_parent = k == 0 ? -1 : rows[k - 1];
      const auto ru = static_cast<std::size_t>(r);
      if (q.parents[ru] != want_parent || q.positions[ru] != q.n_past + static_cast<std::int32_t>(k)) {
        throw error(error_category::invalid_argument,
                    "llama_cpu::commit: sequence " + std::to_string(s) + ": rows must form a root-to-node path at positions " +
                        std::to_string(q.n_past) + ", " + std::to_string(q.n_past + 1) + ", ... (row " + std::to_string(r) +
                        " has parent " + std::to_string(q.parents[ru]) + " and position " + std::to_string(q.positions[ru]) + ")");
      }
    }
    cache_.gather(q.pages, q.n_past, rows);
    q.n_past += static_cast<std::int32_t>(rows.size());
    q.clear_pending();
    cache_.shrink(q.pages, q.n_past);
  }

  // Drops the pending rows and the committed positions >= n.
  void truncate(seq_id s, std::int32_t n) {
    sequence& q = seq(s, "truncate");
    if (n < 0 || n > q.n_past) {
      throw error(error_category::invalid_argument, "llama_cpu::truncate: sequence " + std::to_string(s) + ": length " +
                                                        std::to_string(n) + " outside [0, n_past = " +
                                                        std::to_string(q.n_past) + "]");
    }
    q.n_past = n;
    q.clear_pending();
    cache_.shrink(q.pages, n);
  }

  // Token t's input embedding: row t of the embedding matrix. out: [n_embd]
  void token_embedding(token_id t, std::span<float> out) const {
    if (t < 0 || t >= n_vocab()) {
      throw error(error_category::invalid_argument, "llama_cpu::token_embedding: token id " + std::to_string(t) +
                                                        " outside the vocabulary");
    }
    if (out.size() != static_cast<std::size_t>(config_.n_embd)) {
      throw error(error_category::invalid_argument, "llama_cpu::token_embedding: output has " +
                                                        std::to_string(out.size()) + " floats, n_embd is " +
                                                        std::to_string(config_.n_embd));
    }
    weights_.token_embd.dequantize_row(static_cast<std::size_t>(t), out.data());
  }

  // Runs a prompt on sequence s in chunks of n_batch, commits all of it, and returns the logits of its
  // last token only (the head runs once, not per prompt token). The sequence must have no pending rows.
  logits_view prefill(seq_id s, std::span<const token_id> tokens) {
    if (tokens.empty()) throw error(error_category::invalid_argument, "llama_cpu::prefill: empty prompt");
    if (n_pending(s) != 0) throw error(error_category::invalid_argument, "llama_cpu::prefill: the sequence has pending rows");
    if (static_cast<std::int64_t>(n_past(s)) + static_cast<std::int64_t>(tokens.size()) > n_ctx_) {
      throw error(error_category::capacity, "context full: " + std::to_string(n_past(s)) + " cached + " +
                                                std::to_string(tokens.size()) + " new tokens exceed n_ctx " +
                                                std::to_string(n_ctx_));
    }
    logits_view out;
    for (std::size_t at = 0; at < tokens.size(); at += static_cast<std::size_t>(n_batch_)) {
      const std::size_t len = std::min(tokens.size() - at, static_cast<std::size_t>(n_batch_));
      const bool last = at + len == tokens.size();
      forward_batch b;
      b.steps.push_back(sequence_step::chain(s, tokens.subspan(at, len), n_past(s),
                                             last ? logits_request::last : logits_request::none));
      out = run(b, all_layers_).rows;
      std::vector<std::int32_t> rows(len);
      std::iota(rows.begin(), rows.end(), 0);
      commit(s, rows);
    }
    return out;
  }

 private:
  // One sequence: its pages, committed length and pending rows (positions, parents by pending index).
  struct sequence {
    bool live = false;
    kv_cache::table pages;
    std::int32_t n_past = 0;
    std::vector<std::int32_t> positions;  // [n_pending]
    std::vector<std::int32_t> parents;    // [n_pending]
    std::vector<std::int32_t> ancestors;  // flattened ancestor lists (pending slots) of the rows, see anc_first
    std::vector<std::int32_t> anc_first;  // [n_pending]: start of row j's list in ancestors; its length is depth + 1
    [[nodiscard]] std::int32_t n_pending() const noexcept { return static_cast<std::int32_t>(positions.size()); }
    void clear_pending() noexcept {
      positions.clear();
      parents.clear();
      ancestors.clear();
      anc_first.clear();
    }
  };

  static std::size_t check_threads(std::int32_t n) {
    if (n < 1 || n > 256) {
      throw error(error_category::invalid_argument, "llama_cpu: thread count " + std::to_string(n) + " outside [1, 256]");
    }
    return static_cast<std::size_t>(n);
  }

  sequence& seq(seq_id s, const char* who) {
    return const_cast<sequence&>(static_cast<const llama_cpu&>(*this).seq(s, who));
  }
  [[nodiscard]] const sequence& seq(seq_id s, const char* who) const {
    if (s < 0 || static_cast<std::size_t>(s) >= seqs_.size() || !seqs_[static_cast<std::size_t>(s)].live) {
      throw error(error_category::invalid_argument,
                  std::string("llama_cpu::") + who + ": sequence " + std::to_string(s) + " does not exist");
    }
    return seqs_[static_cast<std::size_t>(s)];
  }

  // Checks every step before any state changes: shapes, parents, positions, one step per sequence,
  // room in the sequence's context and in the page pool.
  void validate(const forward_batch& b) const {
    std::vector<char> seen(seqs_.size(), 0);
    std::int64_t new_pages = 0;
    for (const auto& st : b.steps) {
      if (st.size() == 0) continue;
      const sequence& q = seq(st.seq, "forward");
      if (seen[static_cast<std::size_t>(st.seq)]++) {
        throw error(error_category::invalid_argument,
                    "llama_cpu::forward: two steps for sequence " + std::to_string(st.seq) + " in one batch");
      }
      validate_step(st, q.n_pending(), n_embd(), n_vocab(), "llama_cpu::forward");
      const std::int64_t used = static_cast<std::int64_t>(q.n_past) + q.n_pending() + st.size();
      if (used > n_ctx_) {
        throw error(error_category::capacity, "context full: sequence " + std::to_string(st.seq) + " holds " +
                                                  std::to_string(q.n_past) + " cached + " +
                                                  std::to_string(q.n_pending()) + " pending + " +
                                                  std::to_string(st.size()) + " new rows, n_ctx is " +
                                                  std::to_string(n_ctx_));
      }
      for (std::int32_t i = 0; i < st.size(); ++i) {
        const auto p = st.positions[static_cast<std::size_t>(i)];
        if (p < 0 || p >= n_ctx_) {
          throw error(error_category::invalid_argument, "llama_cpu::forward: sequence " + std::to_string(st.seq) +
                                                            ": position " + std::to_string(p) + " outside [0, n_ctx)");
        }
      }
      new_pages += kv_cache::pages_needed(q.pages, used);
    }
    if (new_pages > cache_.pages_available()) {
      throw error(error_category::capacity, "llama_cpu::forward: the KV cache pool is full (" +
                                                std::to_string(cache_.max_pages()) + " pages of " +
                                                std::to_string(kv_cache::page_slots) +
                                                " slots; raise llama_cpu_options::kv_slots)");
    }
  }

  void reserve(std::int32_t n) {
    const auto rows = static_cast<std::size_t>(n);
    if (x_.shape(0) >= rows) return;
    const auto e = static_cast<std::size_t>(config_.n_embd);
    const auto qd = static_cast<std::size_t>(config_.n_head * config_.head_dim);
    const auto kvd = static_cast<std::size_t>(config_.n_embd_kv());
    const auto ff = static_cast<std::size_t>(config_.n_ff);
    x_ = activations_t::from_shape({rows, e});
    xn_ = activations_t::from_shape({rows, e});
    tmp_ = activations_t::from_shape({rows, e});
    qkv_ = activations_t::from_shape({rows, qd + 2 * kvd});
    q_ = activations_t::from_shape({rows, qd});
    att_ = activations_t::from_shape({rows, qd});
    gate_up_ = activations_t::from_shape({rows, 2 * ff});
    ffn_ = activations_t::from_shape({rows, ff});
    const auto half = static_cast<std::size_t>(config_.n_rot / 2);
    cos_ = activations_t::from_shape({rows, half});
    sin_ = activations_t::from_shape({rows, half});
  }

  // Registers the batch's rows as pending rows of their sequences (after validate: nothing here
  // throws but an out-of-memory page allocation) and fills the per-row tables of this forward.
  void admit(const forward_batch& b) {
    rows_.clear();
    anc_slots_.clear();
    att_rows_.clear();
    out_rows_.clear();
    out_first_.assign(b.steps.size(), 0);
    out_count_.assign(b.steps.size(), 0);
    for (std::size_t k = 0; k < b.steps.size(); ++k) {
      const sequence_step& st = b.steps[k];
      out_first_[k] = static_cast<std::int32_t>(out_rows_.size());
      if (st.size() == 0) continue;
      sequence& q = seq(st.seq, "forward");
      const std::int32_t before = q.n_pending();
      cache_.reserve(q.pages, static_cast<std::int64_t>(q.n_past) + before + st.size());
      std::size_t emb = 0;
      for (std::int32_t i = 0; i < st.size(); ++i) {
        const auto iu = static_cast<std::size_t>(i);
        const std::int32_t j = before + i;  // pending index
        const std::int32_t parent = st.parents[iu];
        q.anc_first.push_back(static_cast<std::int32_t>(q.ancestors.size()));
        if (parent >= 0) {
          const auto pu = static_cast<std::size_t>(parent);
          const std::int32_t from = q.anc_first[pu];
          const std::int32_t len = q.anc_first[pu + 1] - from;  // row j's own entry exists already
          for (std::int32_t a = 0; a < len; ++a) {
            const std::int32_t ancestor = q.ancestors[static_cast<std::size_t>(from + a)];
            q.ancestors.push_back(ancestor);
          }
        }
        q.ancestors.push_back(j);
        q.positions.push_back(st.positions[iu]);
        q.parents.push_back(parent);

        row_info r;
        r.table = &q.pages;
        r.slot = q.n_past + j;
        r.position = st.positions[iu];
        r.token = st.tokens[iu];
        r.embedding = r.token == embedding_row ? st.embeddings.data() + (emb++) * static_cast<std::size_t>(config_.n_embd) : nullptr;
        rows_.push_back(r);

        attention_row ar;
        ar.table = &q.pages;
        ar.n_past = q.n_past;
        ar.first = static_cast<std::int32_t>(anc_slots_.size());
        const auto af = static_cast<std::size_t>(q.anc_first[static_cast<std::size_t>(j)]);
        ar.count = static_cast<std::int32_t>(q.ancestors.size() - af);
        for (std::size_t a = af; a < q.ancestors.size(); ++a) anc_slots_.push_back(q.n_past + q.ancestors[a]);
        att_rows_.push_back(ar);
      }
      const auto first_row = static_cast<std::int32_t>(rows_.size()) - st.size();
      if (st.logits == logits_request::all) {
        for (std::int32_t i = 0; i < st.size(); ++i) out_rows_.push_back(first_row + i);
      } else if (st.logits == logits_request::last) {
        out_rows_.push_back(first_row + st.size() - 1);
      }
      out_count_[k] = static_cast<std::int32_t>(out_rows_.size()) - out_first_[k];
    }
  }

  void check_layers(std::span<const std::int32_t> layers) const {
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if (layers[i] < 0 || layers[i] >= n_layers() || (i > 0 && layers[i] <= layers[i - 1])) {
        throw error(error_category::invalid_argument,
                    "llama_cpu::forward: layer list must be ascending indices in [0, " + std::to_string(n_layers()) + ")");
      }
    }
  }

  // head: the matrix the logits come from; nullptr = the model's own head (n_vocab columns).
  batch_logits run(const forward_batch& b, std::span<const std::int32_t> layers, const weight_matrix* head = nullptr) {
    validate(b);
    admit(b);
    const weight_matrix& head_w = head != nullptr ? *head : weights_.head();
    const auto width = static_cast<std::int32_t>(head_w.rows());
    const auto n = static_cast<std::int32_t>(rows_.size());
    batch_logits result;
    result.first = out_first_;
    result.count = out_count_;
    result.rows = logits_view{logits_.data(), 0, width};
    if (n == 0) return result;
    reserve(n);
    const auto& c = config_;
    const auto e = static_cast<std::size_t>(c.n_embd);
    const auto hd = static_cast<std::size_t>(c.head_dim);
    const auto qd = static_cast<std::size_t>(c.n_head) * hd;
    const auto kvd = static_cast<std::size_t>(c.n_embd_kv());
    const auto ff = static_cast<std::size_t>(c.n_ff);
    const auto qkv_cols = qd + 2 * kvd;
    const float* freq_factors = weights_.rope_freq_factors.size() > 0 ? weights_.rope_freq_factors.data() : nullptr;
    const float linear = c.rope_scaling_type == rope_scaling::linear ? c.rope_scaling_factor : 1.0f;

    for (std::int32_t i = 0; i < n; ++i) {
      const row_info& r = rows_[static_cast<std::size_t>(i)];
      if (r.embedding != nullptr) {
        std::memcpy(&x_(i, 0), r.embedding, e * sizeof(float));
      } else {
        weights_.token_embd.dequantize_row(static_cast<std::size_t>(r.token), &x_(i, 0));
      }
      rope_angles(r.position, c.n_rot, c.rope_freq_base, linear, freq_factors, &cos_(i, 0), &sin_(i, 0));
    }

    std::size_t next = 0;  // index into `layers`
    const attention_shape shape{c.n_head, c.n_head_kv, c.head_dim};
    for (std::int32_t l = 0; l < n_layers(); ++l) {
      const bool run_layer = next < layers.size() && layers[next] == l;
      if (!run_layer) {  // no K/V for these rows in this layer: leave defined zeros behind
        for (const row_info& r : rows_) {
          for (std::int32_t g = 0; g < c.n_head_kv; ++g) cache_.clear(*r.table, l, g, r.slot);
        }
        continue;
      }
      ++next;
      const auto& w = weights_.layers[static_cast<std::size_t>(l)];
      for (std::int32_t i = 0; i < n; ++i) rms_norm_row(&x_(i, 0), w.attn_norm.data(), &xn_(i, 0), e, c.rms_eps);
      project(pool_, w.wqkv, xn_.data(), static_cast<std::size_t>(n), qkv_.data(), activations_);
      for (std::int32_t i = 0; i < n; ++i) {
        const row_info& r = rows_[static_cast<std::size_t>(i)];
        float* row = &qkv_(i, 0);
        if (w.bqkv.size() > 0) add_row(row, w.bqkv.data(), qkv_cols);
        rope_heads(row, c.n_head, c.head_dim, c.n_rot, c.neox_rope, &cos_(i, 0), &sin_(i, 0));
        rope_heads(row + qd, c.n_head_kv, c.head_dim, c.n_rot, c.neox_rope, &cos_(i, 0), &sin_(i, 0));
        std::memcpy(&q_(i, 0), row, qd * sizeof(float));
        for (std::int32_t g = 0; g < c.n_head_kv; ++g) {
          cache_.store(*r.table, l, g, r.slot, row + qd + static_cast<std::size_t>(g) * hd,
                       row + qd + kvd + static_cast<std::size_t>(g) * hd);
        }
      }
      tree_attention(pool_, cache_, l, att_rows_, anc_slots_.data(), q_.data(), att_.data(), shape);
      project(pool_, w.wo, att_.data(), static_cast<std::size_t>(n), tmp_.data(), activations_);
      for (std::int32_t i = 0; i < n; ++i) add_row(&x_(i, 0), &tmp_(i, 0), e);

      for (std::int32_t i = 0; i < n; ++i) rms_norm_row(&x_(i, 0), w.ffn_norm.data(), &xn_(i, 0), e, c.rms_eps);
      project(pool_, w.w_gate_up, xn_.data(), static_cast<std::size_t>(n), gate_up_.data(), activations_);
      for (std::int32_t i = 0; i < n; ++i) swiglu_row(&gate_up_(i, 0), &ffn_(i, 0), ff);
      project(pool_, w.w_down, ffn_.data(), static_cast<std::size_t>(n), tmp_.data(), activations_);
      for (std::int32_t i = 0; i < n; ++i) add_row(&x_(i, 0), &tmp_(i, 0), e);
    }

    const auto n_out = static_cast<std::int32_t>(out_rows_.size());
    for (std::int32_t k = 0; k < n_out; ++k) {
      rms_norm_row(&x_(out_rows_[static_cast<std::size_t>(k)], 0), weights_.output_norm.data(), &xn_(k, 0), e, c.rms_eps);
    }
    const auto vocab = static_cast<std::size_t>(width);
    if (logits_.size() < static_cast<std::size_t>(n_out) * vocab) logits_.resize(static_cast<std::size_t>(n_out) * vocab);
    if (n_out > 0) {
      project(pool_, head_w, xn_.data(), static_cast<std::size_t>(n_out), logits_.data(), activations_);
    }
    result.rows = logits_view{logits_.data(), n_out, width};
    return result;
  }

  // One row of the current forward: where its K/V go and what its input is.
  struct row_info {
    const kv_cache::table* table = nullptr;
    std::int32_t slot = 0;
    std::int32_t position = 0;
    token_id token = 0;
    const float* embedding = nullptr;  // [n_embd] for an embedding row
  };

  llama_config config_;
  thread_pool pool_;
  std::int32_t n_ctx_ = 0;
  std::int32_t n_batch_ = 64;
  llama_weights weights_;
  activation_format activations_ = activation_format::f32;
  kv_cache cache_;
  std::vector<std::int32_t> all_layers_;
  std::int32_t max_sequences_ = 16;
  std::vector<sequence> seqs_;  // indexed by seq_id; freed entries are reused

  // Per-forward row tables (kept to reuse their memory).
  std::vector<row_info> rows_;               // [n]
  std::vector<attention_row> att_rows_;      // [n]
  std::vector<std::int32_t> anc_slots_;      // pending slots each row attends to, see attention_row
  std::vector<std::int32_t> out_rows_;       // rows whose logits are returned, in output order
  std::vector<std::int32_t> out_first_, out_count_;  // [n_steps]

  // Activations, [rows, dim] with rows grown to the largest step seen, 64-byte aligned (aligned.hpp).
  using activations_t = xt::xtensor<float, 2, xt::layout_type::row_major, aligned_allocator<float>>;
  activations_t x_, xn_, tmp_, qkv_, q_, att_, gate_up_, ffn_, cos_, sin_;
  std::vector<float> logits_;  // [n_out, n_vocab]
};

}  // namespace specdec::cpu
