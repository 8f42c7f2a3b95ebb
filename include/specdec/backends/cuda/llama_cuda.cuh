// llama_cuda: the CUDA backend for Llama and Qwen2 GGUF models. Implements the version-2 boundary
// (concepts/sequence_model.hpp) with the semantics of cpu::llama_cpu: many sequences, each owning a
// contiguous region of n_ctx K/V slots on the device; a batch of per-sequence steps per forward,
// whose rows stay pending across forwards (pending row j in slot n_past + j, parents by pending
// index) until commit keeps a root-to-node path (a gather kernel moves its K/V down) or truncate
// drops them; logits_request none / last / all; layer subsets, whose skipped layers get zero K/V;
// embedding-vector rows. Errors (invalid_argument, capacity) are thrown before any state changes.
//
// Weights: bf16 (default) or fp16 on the device (weights.cuh). Products: the fixed-order kernel
// (default, batch-invariant by construction) or cuBLAS (cublasGemmEx, fp32 compute), see
// options.cuh and docs/gpu.md. Everything runs on one stream of the model's own; a forward ends by
// copying the requested logits rows into pinned host memory and waiting for that copy.
#pragma once

#include <specdec/backends/cuda/buffer.cuh>
#include <specdec/backends/cuda/check.cuh>
#include <specdec/backends/cuda/kernels.cuh>
#include <specdec/backends/cuda/options.cuh>
#include <specdec/backends/cuda/weights.cuh>
#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/batch.hpp>
#include <specdec/core/step.hpp>
#include <specdec/error.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/model/llama_config.hpp>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace specdec::cuda {

class llama_cuda {
 public:
  llama_cuda(const gguf::file& f, const llama_cuda_options& opt = {}) : config_(read_llama_config(f)), opt_(opt) {
    const auto& c = config_;
    if (c.rope_scaling_type == rope_scaling::yarn) {
      throw error(error_category::unsupported, f.source() + ": YaRN rope scaling is not supported by the CUDA backend");
    }
    if (opt.n_ctx < 0 || opt.n_batch <= 0 || opt.max_sequences < 1) {
      throw error(error_category::invalid_argument, "llama_cuda: n_ctx must be >= 0, n_batch > 0 and max_sequences >= 1");
    }
    if (opt.n_ctx > c.n_ctx_train) {
      throw error(error_category::invalid_argument, "llama_cuda: n_ctx " + std::to_string(opt.n_ctx) +
                                                        " exceeds the model's context length " +
                                                        std::to_string(c.n_ctx_train));
    }
    for (const auto& [name, v] : {std::pair{"embedding_length", c.n_embd}, std::pair{"q_dim", c.n_head * c.head_dim},
                                  std::pair{"feed_forward_length", c.n_ff}}) {
      if (v % 8 != 0) {
        throw error(error_category::unsupported, f.source() + ": " + name + " " + std::to_string(v) +
                                                     " is not a multiple of 8 (the CUDA products load 8 weights at a time)");
      }
    }
    if (c.head_dim > 256) {
      throw error(error_category::unsupported, f.source() + ": head size " + std::to_string(c.head_dim) +
                                                   " exceeds the CUDA attention kernel's 256");
    }
    n_ctx_ = opt.n_ctx == 0 ? static_cast<std::int32_t>(std::min<std::int64_t>(c.n_ctx_train, 1 << 20)) : opt.n_ctx;
    n_batch_ = opt.n_batch;
    max_sequences_ = opt.max_sequences;
    device_ = opt.device;
    if (device_count() == 0) throw error(error_category::unsupported, "llama_cuda: no CUDA device");
    SPECDEC_CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    SPECDEC_CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    device_name_ = prop.name;
    stream_ = stream_handle::create();
    blas_ = cublas_handle::create(stream_.get());

    shape_ = kernels::cache_shape{static_cast<std::int32_t>(c.n_layers), static_cast<std::int32_t>(c.n_head_kv), n_ctx_,
                                  static_cast<std::int32_t>(c.head_dim)};
    const std::size_t kv_floats = static_cast<std::size_t>(max_sequences_) * shape_.base(1, 0, 0);
    const std::size_t rope_floats = static_cast<std::size_t>(n_ctx_) * static_cast<std::size_t>(c.n_rot / 2);
    // Everything the constructor allocates, checked against free memory before the first allocation;
    // the work buffers for one prefill chunk of n_batch rows come on top.
    const std::size_t need = cuda::weight_bytes(c) + 2 * kv_floats * 4 + 2 * rope_floats * 4 +
                             work_bytes(n_batch_, 1, std::min<std::int32_t>(n_ctx_, 4096), 0) + reserve_bytes;
    const auto [free_b, total_b] = device_memory();
    if (need > free_b) {
      throw error(error_category::capacity,
                  "llama_cuda: the model needs " + mib(need) + " of device memory (weights " + mib(cuda::weight_bytes(c)) +
                      ", K/V cache " + mib(2 * kv_floats * 4) + " for " + std::to_string(max_sequences_) + " x " +
                      std::to_string(n_ctx_) + " positions), " + device_name_ + " has " + mib(free_b) + " free of " +
                      mib(total_b) + "; lower llama_cuda_options::max_sequences or n_ctx");
    }
    weights_ = load_cuda_weights(f, c, opt.weights);
    k_cache_ = device_buffer<float>(kv_floats, "the K cache");
    v_cache_ = device_buffer<float>(kv_floats, "the V cache");
    SPECDEC_CUDA_CHECK(cudaMemsetAsync(k_cache_.get(), 0, k_cache_.bytes(), stream_.get()));
    SPECDEC_CUDA_CHECK(cudaMemsetAsync(v_cache_.get(), 0, v_cache_.bytes(), stream_.get()));
    upload_rope_tables(f);
    commit_rows_ = device_buffer<std::int32_t>(static_cast<std::size_t>(n_ctx_), "commit paths");
    all_layers_.resize(static_cast<std::size_t>(c.n_layers));
    std::iota(all_layers_.begin(), all_layers_.end(), 0);
    // The uploads used the legacy default stream, which a non-blocking stream does not wait for.
    SPECDEC_CUDA_CHECK(cudaDeviceSynchronize());
  }

  explicit llama_cuda(const std::string& path, const llama_cuda_options& opt = {}) : llama_cuda(gguf::file(path), opt) {}

  llama_cuda(const llama_cuda&) = delete;
  llama_cuda& operator=(const llama_cuda&) = delete;

  [[nodiscard]] const llama_config& config() const noexcept { return config_; }
  [[nodiscard]] const llama_cuda_options& options() const noexcept { return opt_; }
  [[nodiscard]] std::int32_t n_vocab() const noexcept { return static_cast<std::int32_t>(config_.n_vocab); }
  [[nodiscard]] std::int32_t n_ctx() const noexcept { return n_ctx_; }
  [[nodiscard]] std::int32_t n_layers() const noexcept { return static_cast<std::int32_t>(config_.n_layers); }
  [[nodiscard]] std::int32_t n_embd() const noexcept { return static_cast<std::int32_t>(config_.n_embd); }
  [[nodiscard]] std::int32_t max_sequences() const noexcept { return max_sequences_; }
  [[nodiscard]] const std::string& device_name() const noexcept { return device_name_; }
  [[nodiscard]] std::size_t weight_bytes() const noexcept { return cuda::weight_bytes(config_); }
  [[nodiscard]] std::size_t kv_bytes() const noexcept { return k_cache_.bytes() + v_cache_.bytes(); }

  seq_id create_sequence() {
    for (std::size_t i = 0; i < seqs_.size(); ++i) {
      if (!seqs_[i].live) {
        seqs_[i] = sequence{};
        seqs_[i].live = true;
        return static_cast<seq_id>(i);
      }
    }
    if (static_cast<std::int32_t>(seqs_.size()) >= max_sequences_) {
      throw error(error_category::capacity, "llama_cuda: all " + std::to_string(max_sequences_) +
                                                " sequences are in use (llama_cuda_options::max_sequences)");
    }
    seqs_.emplace_back();
    seqs_.back().live = true;
    return static_cast<seq_id>(seqs_.size() - 1);
  }

  void free_sequence(seq_id s) { seq(s, "free_sequence") = sequence{}; }

  [[nodiscard]] std::int32_t n_past(seq_id s) const { return seq(s, "n_past").n_past; }
  [[nodiscard]] std::int32_t n_pending(seq_id s) const { return seq(s, "n_pending").n_pending(); }

  batch_logits forward(const forward_batch& b) { return run(b, all_layers_, false).logits; }

  batch_logits forward(const forward_batch& b, std::span<const std::int32_t> layers) {
    check_layers(layers);
    return run(b, layers, false).logits;
  }

  // forward(b) whose returned rows are reduced on the device to their argmax: no logits row crosses
  // to the host (greedy verification, Token Recycling's top-1).
  batch_argmax forward_argmax(const forward_batch& b) { return run(b, all_layers_, true).argmax; }

  batch_argmax forward_argmax(const forward_batch& b, std::span<const std::int32_t> layers) {
    check_layers(layers);
    return run(b, layers, true).argmax;
  }

  // Keeps pending rows `rows` (a root-to-node path) as positions n_past, n_past + 1, ...; drops the
  // other pending rows. The K/V gather is queued on the model's stream.
  void commit(seq_id s, std::span<const std::int32_t> rows) {
    sequence& q = seq(s, "commit");
    const std::int32_t n_pend = q.n_pending();
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::int32_t r = rows[k];
      if (r < 0 || r >= n_pend) {
        throw error(error_category::invalid_argument, "llama_cuda::commit: sequence " + std::to_string(s) + ": row " +
                                                          std::to_string(r) + " is not pending (" +
                                                          std::to_string(n_pend) + " pending)");
      }
      const std::int32_t want_parent = k == 0 ? -1 : rows[k - 1];
      const auto ru = static_cast<std::size_t>(r);
      if (q.parents[ru] != want_parent || q.positions[ru] != q.n_past + static_cast<std::int32_t>(k)) {
        throw error(error_category::invalid_argument,
                    "llama_cuda::commit: sequence " + std::to_string(s) + ": rows must form a root-to-node path at positions " +
                        std::to_string(q.n_past) + ", " + std::to_string(q.n_past + 1) + ", ... (row " + std::to_string(r) +
                        " has parent " + std::to_string(q.parents[ru]) + " and position " + std::to_string(q.positions[ru]) + ")");
      }
    }
    bool moved = false;
    for (std::size_t k = 0; k < rows.size(); ++k) moved = moved || rows[k] != static_cast<std::int32_t>(k);
    if (moved) {
      SPECDEC_CUDA_CHECK(cudaSetDevice(device_));
      // From pageable memory: the source is staged before cudaMemcpyAsync returns.
      SPECDEC_CUDA_CHECK(cudaMemcpyAsync(commit_rows_.get(), rows.data(), rows.size() * sizeof(std::int32_t),
                                         cudaMemcpyHostToDevice, stream_.get()));
      const std::size_t threads = static_cast<std::size_t>(shape_.n_layers) * shape_.n_head_kv * shape_.head_dim;
      kernels::launch("commit_gather", kernels::commit_gather, static_cast<unsigned>((threads + 255) / 256), 256,
          stream_.get(), k_cache_.get(), v_cache_.get(), shape_, s, q.n_past, commit_rows_.get(),
          static_cast<std::int32_t>(rows.size()));
      SPECDEC_CUDA_LAUNCHED("commit_gather");
      // The next commit may overwrite commit_rows_: keep the order explicit on the host as well.
      SPECDEC_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    }
    q.n_past += static_cast<std::int32_t>(rows.size());
    q.clear_pending();
  }

  // Drops the pending rows and the committed positions >= n.
  void truncate(seq_id s, std::int32_t n) {
    sequence& q = seq(s, "truncate");
    if (n < 0 || n > q.n_past) {
      throw error(error_category::invalid_argument, "llama_cuda::truncate: sequence " + std::to_string(s) + ": length " +
                                                        std::to_string(n) + " outside [0, n_past = " +
                                                        std::to_string(q.n_past) + "]");
    }
    q.n_past = n;
    q.clear_pending();
  }

  // Token t's input embedding as the device holds it (the row of the 16-bit table, widened). out: [n_embd]
  void token_embedding(token_id t, std::span<float> out) const {
    if (t < 0 || t >= n_vocab()) {
      throw error(error_category::invalid_argument, "llama_cuda::token_embedding: token id " + std::to_string(t) +
                                                        " outside the vocabulary");
    }
    if (out.size() != static_cast<std::size_t>(config_.n_embd)) {
      throw error(error_category::invalid_argument, "llama_cuda::token_embedding: output has " +
                                                        std::to_string(out.size()) + " floats, n_embd is " +
                                                        std::to_string(config_.n_embd));
    }
    std::vector<std::uint16_t> bits(out.size());
    SPECDEC_CUDA_CHECK(cudaSetDevice(device_));
    SPECDEC_CUDA_CHECK(cudaMemcpy(bits.data(), weights_.token_embd.get() + static_cast<std::size_t>(t) * out.size(),
                                  bits.size() * 2, cudaMemcpyDeviceToHost));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = from_16bit(bits[i], weights_.type);
  }

  // Runs a prompt on sequence s in chunks of n_batch, commits all of it, and returns the logits of its
  // last token only. The sequence must have no pending rows.
  logits_view prefill(seq_id s, std::span<const token_id> tokens) {
    if (tokens.empty()) throw error(error_category::invalid_argument, "llama_cuda::prefill: empty prompt");
    if (n_pending(s) != 0) throw error(error_category::invalid_argument, "llama_cuda::prefill: the sequence has pending rows");
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
      out = run(b, all_layers_, false).logits.rows;
      std::vector<std::int32_t> rows(len);
      std::iota(rows.begin(), rows.end(), 0);
      commit(s, rows);
    }
    return out;
  }

  // Test and debugging access: K and V of cache slot `slot` (n_past + pending index for a pending
  // row) of sequence s, `layer`, KV group g. k, v: [head_dim]
  void read_kv(seq_id s, std::int32_t layer, std::int32_t g, std::int32_t slot, std::span<float> k,
               std::span<float> v) const {
    const sequence& q = seq(s, "read_kv");
    if (layer < 0 || layer >= n_layers() || g < 0 || g >= shape_.n_head_kv || slot < 0 ||
        slot >= q.n_past + q.n_pending() || k.size() != static_cast<std::size_t>(shape_.head_dim) ||
        v.size() != k.size()) {
      throw error(error_category::invalid_argument, "llama_cuda::read_kv: layer, group, slot or sizes out of range");
    }
    const std::size_t at = shape_.base(s, layer, g) + static_cast<std::size_t>(slot) * shape_.head_dim;
    SPECDEC_CUDA_CHECK(cudaSetDevice(device_));
    SPECDEC_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    SPECDEC_CUDA_CHECK(cudaMemcpy(k.data(), k_cache_.get() + at, k.size_bytes(), cudaMemcpyDeviceToHost));
    SPECDEC_CUDA_CHECK(cudaMemcpy(v.data(), v_cache_.get() + at, v.size_bytes(), cudaMemcpyDeviceToHost));
  }

  // Waits for everything queued on the model's stream.
  void synchronize() const {
    SPECDEC_CUDA_CHECK(cudaSetDevice(device_));
    SPECDEC_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  }

 private:
  // Device memory kept free beyond what the model asks for (cuBLAS's own workspace, kernels' stacks).
  static constexpr std::size_t reserve_bytes = std::size_t{64} << 20;

  struct sequence {
    bool live = false;
    std::int32_t n_past = 0;
    std::vector<std::int32_t> positions;  // [n_pending]
    std::vector<std::int32_t> parents;    // [n_pending]
    std::vector<std::int32_t> ancestors;  // flattened ancestor lists (pending indices), see anc_first
    std::vector<std::int32_t> anc_first;  // [n_pending]: start of row j's list; its length is depth + 1
    [[nodiscard]] std::int32_t n_pending() const noexcept { return static_cast<std::int32_t>(positions.size()); }
    void clear_pending() noexcept {
      positions.clear();
      parents.clear();
      ancestors.clear();
      anc_first.clear();
    }
  };

  struct run_result {
    batch_logits logits;
    batch_argmax argmax;
  };

  sequence& seq(seq_id s, const char* who) { return const_cast<sequence&>(static_cast<const llama_cuda&>(*this).seq(s, who)); }
  [[nodiscard]] const sequence& seq(seq_id s, const char* who) const {
    if (s < 0 || static_cast<std::size_t>(s) >= seqs_.size() || !seqs_[static_cast<std::size_t>(s)].live) {
      throw error(error_category::invalid_argument,
                  std::string("llama_cuda::") + who + ": sequence " + std::to_string(s) + " does not exist");
    }
    return seqs_[static_cast<std::size_t>(s)];
  }

  void check_layers(std::span<const std::int32_t> layers) const {
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if (layers[i] < 0 || layers[i] >= n_layers() || (i > 0 && layers[i] <= layers[i - 1])) {
        throw error(error_category::invalid_argument,
                    "llama_cuda::forward: layer list must be ascending indices in [0, " + std::to_string(n_layers()) + ")");
      }
    }
  }

  // cos / sin of every position's rotation angles, as cpu::rope_angles computes them (in double).
  void upload_rope_tables(const gguf::file& f) {
    const auto& c = config_;
    const auto half = static_cast<std::size_t>(c.n_rot / 2);
    std::vector<float> factors;
    if (c.has_rope_freq_factors) factors = gguf::dequantize(f, f.tensor("rope_freqs.weight"));
    const double linear = c.rope_scaling_type == rope_scaling::linear ? static_cast<double>(c.rope_scaling_factor) : 1.0;
    std::vector<float> cs(static_cast<std::size_t>(n_ctx_) * half), sn(cs.size());
    for (std::int32_t pos = 0; pos < n_ctx_; ++pos) {
      const double p = static_cast<double>(pos) / linear;
      for (std::size_t i = 0; i < half; ++i) {
        double theta = p * std::pow(static_cast<double>(c.rope_freq_base),
                                    -2.0 * static_cast<double>(i) / static_cast<double>(c.n_rot));
        if (!factors.empty()) theta /= static_cast<double>(factors[i]);
        cs[static_cast<std::size_t>(pos) * half + i] = static_cast<float>(std::cos(theta));
        sn[static_cast<std::size_t>(pos) * half + i] = static_cast<float>(std::sin(theta));
      }
    }
    rope_cos_ = device_buffer<float>(cs.size(), "RoPE cos table");
    rope_sin_ = device_buffer<float>(sn.size(), "RoPE sin table");
    SPECDEC_CUDA_CHECK(cudaMemcpy(rope_cos_.get(), cs.data(), cs.size() * 4, cudaMemcpyHostToDevice));
    SPECDEC_CUDA_CHECK(cudaMemcpy(rope_sin_.get(), sn.data(), sn.size() * 4, cudaMemcpyHostToDevice));
  }

  // Bytes of the per-forward work buffers for `rows` rows, `out_rows` logits rows, `keys` keys per row
  // and `emb_rows` embedding rows.
  [[nodiscard]] std::size_t work_bytes(std::int64_t rows, std::int64_t out_rows, std::int64_t keys, std::int64_t emb_rows) const {
    const auto& c = config_;
    const std::int64_t qd = c.n_head * c.head_dim, kvd = c.n_embd_kv();
    const std::int64_t floats = rows * (2 * c.n_embd + (qd + 2 * kvd) + 2 * qd + 3 * c.n_ff) + rows * c.n_head * keys +
                                out_rows * c.n_vocab + emb_rows * c.n_embd + out_rows;
    const std::int64_t halves = rows * std::max({c.n_embd, qd, c.n_ff});
    const std::int64_t ints = rows * 9 + rows * 16 + out_rows * 2;
    return static_cast<std::size_t>(floats * 4 + halves * 2 + ints * 4);
  }

  // Grows the work buffers to hold a forward of this size, before admit() changes any state: a
  // capacity error here leaves every sequence as it was.
  void reserve(std::int32_t rows, std::int32_t out_rows, std::int32_t keys, std::int32_t emb_rows, std::size_t table_ints) {
    const bool grow = rows > cap_rows_ || out_rows > cap_out_ || keys > cap_keys_ || emb_rows > cap_emb_ ||
                      table_ints > tables_.size();
    if (!grow) return;
    const auto& c = config_;
    // Grow geometrically so that a slowly growing tree does not reallocate every forward.
    const auto up = [](std::int32_t want, std::int32_t have) { return want <= have ? have : std::max(want, have + have / 2); };
    const std::int32_t r = up(rows, cap_rows_), o = up(out_rows, cap_out_), k = up(keys, cap_keys_), m = up(emb_rows, cap_emb_);
    const std::size_t ti = std::max(table_ints, tables_.size() + tables_.size() / 2);
    // The old buffers go first (their contents are not needed across forwards), so that the new
    // ones need only the free memory; if an allocation fails the model holds no work buffers and the
    // next forward allocates them again. Sequences are untouched either way.
    work_ = work{};
    host_logits_ = pinned_buffer<float>();
    host_index_ = pinned_buffer<std::int32_t>();
    host_value_ = pinned_buffer<float>();
    tables_.clear();
    tables_.shrink_to_fit();
    cap_rows_ = cap_out_ = cap_keys_ = cap_emb_ = 0;
    const std::size_t need = work_bytes(r, o, k, m) + ti * 4;
    const auto [free_b, total_b] = device_memory();
    if (need + reserve_bytes > free_b) {
      throw error(error_category::capacity, "llama_cuda::forward: a forward of " + std::to_string(rows) + " rows (" +
                                                std::to_string(keys) + " keys per row) needs " + mib(need) +
                                                " of work buffers, the device has " + mib(free_b) + " free of " +
                                                mib(total_b));
    }
    const std::int64_t qd = c.n_head * c.head_dim, kvd = c.n_embd_kv();
    const auto n = static_cast<std::size_t>(r);
    work w;
    w.x = device_buffer<float>(n * c.n_embd, "activations");
    w.xn = device_buffer<float>(n * c.n_embd, "normalised activations");
    w.qkv = device_buffer<float>(n * (qd + 2 * kvd), "Q/K/V rows");
    w.q = device_buffer<float>(n * qd, "rotated queries");
    w.att = device_buffer<float>(n * qd, "attention output");
    w.gate_up = device_buffer<float>(n * 2 * c.n_ff, "gate/up rows");
    w.ffn = device_buffer<float>(n * c.n_ff, "SwiGLU rows");
    w.x16 = device_buffer<std::uint16_t>(n * std::max({c.n_embd, qd, c.n_ff}), "16-bit activations");
    w.scores = device_buffer<float>(n * c.n_head * static_cast<std::size_t>(k), "attention scores");
    w.logits = device_buffer<float>(static_cast<std::size_t>(o) * c.n_vocab, "logits");
    w.emb = device_buffer<float>(static_cast<std::size_t>(m) * c.n_embd, "embedding rows");
    w.arg_index = device_buffer<std::int32_t>(static_cast<std::size_t>(o), "argmax");
    w.arg_value = device_buffer<float>(static_cast<std::size_t>(o), "argmax");
    w.tables = device_buffer<std::int32_t>(ti, "row tables");
    pinned_buffer<float> host_logits(static_cast<std::size_t>(o) * c.n_vocab, "logits");
    pinned_buffer<std::int32_t> host_index(static_cast<std::size_t>(o), "argmax");
    pinned_buffer<float> host_value(static_cast<std::size_t>(o), "argmax");
    work_ = std::move(w);
    host_logits_ = std::move(host_logits);
    host_index_ = std::move(host_index);
    host_value_ = std::move(host_value);
    tables_.resize(ti);
    cap_rows_ = r;
    cap_out_ = o;
    cap_keys_ = k;
    cap_emb_ = m;
  }

  // Checks every step before any state changes: shapes, parents, positions, one step per sequence,
  // room in the sequence's context. Returns the largest key count of a row.
  std::int32_t validate(const forward_batch& b) const {
    std::vector<char> seen(seqs_.size(), 0);
    std::int32_t most_keys = 1;
    for (const auto& st : b.steps) {
      if (st.size() == 0) continue;
      const sequence& q = seq(st.seq, "forward");
      if (seen[static_cast<std::size_t>(st.seq)]++) {
        throw error(error_category::invalid_argument,
                    "llama_cuda::forward: two steps for sequence " + std::to_string(st.seq) + " in one batch");
      }
      validate_step(st, q.n_pending(), n_embd(), n_vocab(), "llama_cuda::forward");
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
          throw error(error_category::invalid_argument, "llama_cuda::forward: sequence " + std::to_string(st.seq) +
                                                            ": position " + std::to_string(p) + " outside [0, n_ctx)");
        }
      }
      most_keys = std::max(most_keys, static_cast<std::int32_t>(used));  // n_past + depth + 1 <= used
    }
    return most_keys;
  }

  // Registers the batch's rows as pending rows of their sequences and fills the host row tables:
  // [row_meta x n][tokens n][emb_index n][out_rows n_out][ancestor slots]. Nothing here throws.
  void admit(const forward_batch& b, std::vector<std::int32_t>& out_first, std::vector<std::int32_t>& out_count) {
    meta_.clear();
    tokens_.clear();
    emb_index_.clear();
    anc_slots_.clear();
    out_rows_.clear();
    emb_host_.clear();
    out_first.assign(b.steps.size(), 0);
    out_count.assign(b.steps.size(), 0);
    for (std::size_t k = 0; k < b.steps.size(); ++k) {
      const sequence_step& st = b.steps[k];
      out_first[k] = static_cast<std::int32_t>(out_rows_.size());
      if (st.size() == 0) continue;
      sequence& q = seq(st.seq, "forward");
      const std::int32_t before = q.n_pending();
      std::size_t emb = 0;
      for (std::int32_t i = 0; i < st.size(); ++i) {
        const auto iu = static_cast<std::size_t>(i);
        const std::int32_t j = before + i;
        const std::int32_t parent = st.parents[iu];
        q.anc_first.push_back(static_cast<std::int32_t>(q.ancestors.size()));
        if (parent >= 0) {
          const auto pu = static_cast<std::size_t>(parent);
          const std::int32_t from = q.anc_first[pu];
          const std::int32_t len = q.anc_first[pu + 1] - from;
          for (std::int32_t a = 0; a < len; ++a) q.ancestors.push_back(q.ancestors[static_cast<std::size_t>(from + a)]);
        }
        q.ancestors.push_back(j);
        q.positions.push_back(st.positions[iu]);
        q.parents.push_back(parent);

        kernels::row_meta m{};
        m.seq = st.seq;
        m.slot = q.n_past + j;
        m.position = st.positions[iu];
        m.n_past = q.n_past;
        m.anc_first = static_cast<std::int32_t>(anc_slots_.size());
        const auto af = static_cast<std::size_t>(q.anc_first[static_cast<std::size_t>(j)]);
        m.anc_count = static_cast<std::int32_t>(q.ancestors.size() - af);
        for (std::size_t a = af; a < q.ancestors.size(); ++a) anc_slots_.push_back(q.n_past + q.ancestors[a]);
        meta_.push_back(m);
        tokens_.push_back(st.tokens[iu]);
        if (st.tokens[iu] == embedding_row) {
          emb_index_.push_back(static_cast<std::int32_t>(emb_host_.size() / static_cast<std::size_t>(config_.n_embd)));
          const float* src = st.embeddings.data() + (emb++) * static_cast<std::size_t>(config_.n_embd);
          emb_host_.insert(emb_host_.end(), src, src + config_.n_embd);
        } else {
          emb_index_.push_back(-1);
        }
      }
      const auto first_row = static_cast<std::int32_t>(meta_.size()) - st.size();
      if (st.logits == logits_request::all) {
        for (std::int32_t i = 0; i < st.size(); ++i) out_rows_.push_back(first_row + i);
      } else if (st.logits == logits_request::last) {
        out_rows_.push_back(first_row + st.size() - 1);
      }
      out_count[k] = static_cast<std::int32_t>(out_rows_.size()) - out_first[k];
    }
  }

  // y[n, out] (+)= x[n, in] W^T for a 16-bit W [out, in].
  void product(const std::uint16_t* w, std::int32_t out, std::int32_t in, const float* x, std::int32_t n, float* y,
               bool accumulate) {
    if (n == 0) return;
    const cudaStream_t s = stream_.get();
    const bool bf16 = weights_.type == cuda_weights::bf16;
    if (opt_.products == cuda_products::fixed_order) {
      const dim3 grid(static_cast<unsigned>((out + kernels::gemm_warps - 1) / kernels::gemm_warps),
                      static_cast<unsigned>((n + kernels::gemm_block_rows - 1) / kernels::gemm_block_rows));
      if (bf16) {
        kernels::launch("fixed_order_gemm", kernels::fixed_order_gemm<__nv_bfloat16>, grid, kernels::gemm_warps * 32, s,
            reinterpret_cast<const __nv_bfloat16*>(w), out, in, x, n, y, accumulate);
      } else {
        kernels::launch("fixed_order_gemm", kernels::fixed_order_gemm<__half>, grid, kernels::gemm_warps * 32, s,
            reinterpret_cast<const __half*>(w), out, in, x, n, y, accumulate);
      }
      SPECDEC_CUDA_LAUNCHED("fixed_order_gemm");
      return;
    }
    const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(in);
    const auto blocks = static_cast<unsigned>((count + 255) / 256);
    if (bf16) {
      kernels::launch("to_16bit", kernels::to_16bit<__nv_bfloat16>, blocks, 256, s, x,
          reinterpret_cast<__nv_bfloat16*>(work_.x16.get()), count);
    } else {
      kernels::launch("to_16bit", kernels::to_16bit<__half>, blocks, 256, s, x,
          reinterpret_cast<__half*>(work_.x16.get()), count);
    }
    SPECDEC_CUDA_LAUNCHED("to_16bit");
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    // Column-major view: Y^T [out, n] = W [in, out]^T X^T [in, n].
    SPECDEC_CUBLAS_CHECK(cublasGemmEx(blas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, t, in,
                                      work_.x16.get(), t, in, &beta, y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F,
                                      CUBLAS_GEMM_DEFAULT));
  }

  run_result run(const forward_batch& b, std::span<const std::int32_t> layers, bool argmax) {
    const std::int32_t most_keys = validate(b);
    std::int32_t n = 0, n_out = 0, n_emb = 0;
    std::size_t n_anc = 0;
    for (const auto& st : b.steps) {
      if (st.size() == 0) continue;
      n += st.size();
      n_out += st.logits == logits_request::all ? st.size() : st.logits == logits_request::last ? 1 : 0;
      for (const token_id t : st.tokens) n_emb += t == embedding_row ? 1 : 0;
      // A row's ancestor list is at most its depth + 1 <= n_pending + step size.
      n_anc += static_cast<std::size_t>(st.size()) *
               static_cast<std::size_t>(seq(st.seq, "forward").n_pending() + st.size());
    }
    const std::size_t table_ints = static_cast<std::size_t>(n) * 9 + static_cast<std::size_t>(n_out) + n_anc + 1;
    SPECDEC_CUDA_CHECK(cudaSetDevice(device_));
    reserve(n, n_out, most_keys, n_emb, table_ints);  // may throw capacity: no state has changed yet

    run_result result;
    admit(b, result.logits.first, result.logits.count);
    result.argmax.first = result.logits.first;
    result.argmax.count = result.logits.count;
    result.logits.rows = logits_view{host_logits_.get(), 0, n_vocab()};
    if (n == 0) return result;

    // One upload of every table: [row_meta][tokens][emb_index][out_rows][ancestor slots].
    static_assert(sizeof(kernels::row_meta) == 6 * sizeof(std::int32_t));
    const auto nu = static_cast<std::size_t>(n);
    std::int32_t* host = tables_.data();
    std::memcpy(host, meta_.data(), nu * sizeof(kernels::row_meta));
    std::memcpy(host + 6 * nu, tokens_.data(), nu * 4);
    std::memcpy(host + 7 * nu, emb_index_.data(), nu * 4);
    std::memcpy(host + 8 * nu, out_rows_.data(), out_rows_.size() * 4);
    std::memcpy(host + 8 * nu + out_rows_.size(), anc_slots_.data(), anc_slots_.size() * 4);
    const std::size_t used_ints = 8 * nu + out_rows_.size() + anc_slots_.size();
    const cudaStream_t s = stream_.get();
    SPECDEC_CUDA_CHECK(cudaMemcpyAsync(work_.tables.get(), host, used_ints * 4, cudaMemcpyHostToDevice, s));
    if (!emb_host_.empty()) {
      SPECDEC_CUDA_CHECK(cudaMemcpyAsync(work_.emb.get(), emb_host_.data(), emb_host_.size() * 4, cudaMemcpyHostToDevice, s));
    }
    const auto* d_meta = reinterpret_cast<const kernels::row_meta*>(work_.tables.get());
    const std::int32_t* d_tokens = work_.tables.get() + 6 * nu;
    const std::int32_t* d_emb_index = work_.tables.get() + 7 * nu;
    const std::int32_t* d_out_rows = work_.tables.get() + 8 * nu;
    const std::int32_t* d_anc = d_out_rows + out_rows_.size();

    const auto& c = config_;
    const auto e = static_cast<std::int32_t>(c.n_embd);
    const auto qd = static_cast<std::int32_t>(c.n_head * c.head_dim);
    const auto kvd = static_cast<std::int32_t>(c.n_embd_kv());
    const auto ff = static_cast<std::int32_t>(c.n_ff);
    const auto un = static_cast<unsigned>(n);
    const kernels::rope_shape rs{static_cast<std::int32_t>(c.n_head), static_cast<std::int32_t>(c.n_head_kv),
                                 static_cast<std::int32_t>(c.head_dim), static_cast<std::int32_t>(c.n_rot), c.neox_rope};
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));

    if (weights_.type == cuda_weights::bf16) {
      kernels::launch("embed_rows", kernels::embed_rows<__nv_bfloat16>, un, 128, s,
          reinterpret_cast<const __nv_bfloat16*>(weights_.token_embd.get()), e, d_tokens, d_emb_index, work_.emb.get(),
          work_.x.get());
    } else {
      kernels::launch("embed_rows", kernels::embed_rows<__half>, un, 128, s,
          reinterpret_cast<const __half*>(weights_.token_embd.get()), e, d_tokens, d_emb_index, work_.emb.get(),
          work_.x.get());
    }
    SPECDEC_CUDA_LAUNCHED("embed_rows");

    std::size_t next = 0;
    for (std::int32_t l = 0; l < n_layers(); ++l) {
      const bool run_layer = next < layers.size() && layers[next] == l;
      if (!run_layer) {  // no K/V for these rows in this layer: leave defined zeros behind
        kernels::launch("zero_kv", kernels::zero_kv, un, 128, s, d_meta, k_cache_.get(), v_cache_.get(), shape_, l);
        SPECDEC_CUDA_LAUNCHED("zero_kv");
        continue;
      }
      ++next;
      const auto& w = weights_.layers[static_cast<std::size_t>(l)];
      kernels::launch("rms_norm", kernels::rms_norm, un, kernels::norm_threads, s, work_.x.get(), nullptr,
          w.attn_norm.get(), work_.xn.get(), e, c.rms_eps);
      SPECDEC_CUDA_LAUNCHED("rms_norm");
      product(w.wqkv.get(), qd + 2 * kvd, e, work_.xn.get(), n, work_.qkv.get(), false);
      kernels::launch("bias_rope_store", kernels::bias_rope_store, un, 128, s, work_.qkv.get(),
          w.bqkv.size() > 0 ? w.bqkv.get() : nullptr, rope_cos_.get(), rope_sin_.get(), d_meta, work_.q.get(),
          k_cache_.get(), v_cache_.get(), rs, shape_, l);
      SPECDEC_CUDA_LAUNCHED("bias_rope_store");
      kernels::launch("tree_attention", kernels::tree_attention, dim3(un, static_cast<unsigned>(c.n_head)),
          kernels::attention_threads, s, work_.q.get(), d_meta, d_anc, k_cache_.get(), v_cache_.get(),
          work_.scores.get(), cap_keys_, work_.att.get(), static_cast<std::int32_t>(c.n_head), shape_, l, scale);
      SPECDEC_CUDA_LAUNCHED("tree_attention");
      product(w.wo.get(), e, qd, work_.att.get(), n, work_.x.get(), true);  // residual add in the product
      kernels::launch("rms_norm", kernels::rms_norm, un, kernels::norm_threads, s, work_.x.get(), nullptr,
          w.ffn_norm.get(), work_.xn.get(), e, c.rms_eps);
      SPECDEC_CUDA_LAUNCHED("rms_norm");
      product(w.w_gate_up.get(), 2 * ff, e, work_.xn.get(), n, work_.gate_up.get(), false);
      const std::size_t elems = nu * static_cast<std::size_t>(ff);
      kernels::launch("swiglu", kernels::swiglu, static_cast<unsigned>((elems + 255) / 256), 256, s,
          work_.gate_up.get(), work_.ffn.get(), n, ff);
      SPECDEC_CUDA_LAUNCHED("swiglu");
      product(w.w_down.get(), e, ff, work_.ffn.get(), n, work_.x.get(), true);  // residual add in the product
    }

    if (n_out > 0) {
      kernels::launch("rms_norm", kernels::rms_norm, static_cast<unsigned>(n_out), kernels::norm_threads, s,
          work_.x.get(), d_out_rows, weights_.output_norm.get(), work_.xn.get(), e, c.rms_eps);
      SPECDEC_CUDA_LAUNCHED("rms_norm");
      product(weights_.head(), n_vocab(), e, work_.xn.get(), n_out, work_.logits.get(), false);
      const auto no = static_cast<std::size_t>(n_out);
      if (argmax) {
        kernels::launch("row_argmax", kernels::row_argmax, static_cast<unsigned>(n_out), kernels::argmax_threads, s,
            work_.logits.get(), n_vocab(), work_.arg_index.get(), work_.arg_value.get());
        SPECDEC_CUDA_LAUNCHED("row_argmax");
        SPECDEC_CUDA_CHECK(cudaMemcpyAsync(host_index_.get(), work_.arg_index.get(), no * 4, cudaMemcpyDeviceToHost, s));
        SPECDEC_CUDA_CHECK(cudaMemcpyAsync(host_value_.get(), work_.arg_value.get(), no * 4, cudaMemcpyDeviceToHost, s));
      } else {
        SPECDEC_CUDA_CHECK(cudaMemcpyAsync(host_logits_.get(), work_.logits.get(), no * static_cast<std::size_t>(n_vocab()) * 4,
                                           cudaMemcpyDeviceToHost, s));
      }
    }
    SPECDEC_CUDA_CHECK(cudaStreamSynchronize(s));
    if (argmax) {
      result.argmax.tokens.assign(host_index_.get(), host_index_.get() + n_out);
      result.argmax.values.assign(host_value_.get(), host_value_.get() + n_out);
    } else {
      result.logits.rows = logits_view{host_logits_.get(), n_out, n_vocab()};
    }
    return result;
  }

  struct work {
    device_buffer<float> x, xn, qkv, q, att, gate_up, ffn, scores, logits, emb, arg_value;
    device_buffer<std::uint16_t> x16;
    device_buffer<std::int32_t> arg_index, tables;
  };

  llama_config config_;
  llama_cuda_options opt_;
  std::int32_t n_ctx_ = 0;
  std::int32_t n_batch_ = 64;
  std::int32_t max_sequences_ = 8;
  int device_ = 0;
  std::string device_name_;
  stream_handle stream_;
  cublas_handle blas_;
  kernels::cache_shape shape_{};
  cuda_weights_set weights_;
  device_buffer<float> k_cache_, v_cache_;
  device_buffer<float> rope_cos_, rope_sin_;
  device_buffer<std::int32_t> commit_rows_;
  std::vector<std::int32_t> all_layers_;
  std::vector<sequence> seqs_;

  // Work buffers, grown to the largest forward seen.
  work work_;
  std::int32_t cap_rows_ = 0, cap_out_ = 0, cap_keys_ = 0, cap_emb_ = 0;
  pinned_buffer<float> host_logits_;
  pinned_buffer<std::int32_t> host_index_;
  pinned_buffer<float> host_value_;

  // Host row tables of the current forward.
  std::vector<kernels::row_meta> meta_;
  std::vector<std::int32_t> tokens_, emb_index_, anc_slots_, out_rows_, tables_;
  std::vector<float> emb_host_;
};

static_assert(sequence_model<llama_cuda>);
static_assert(layered_sequence_model<llama_cuda>);
static_assert(embedding_input_model<llama_cuda>);

}  // namespace specdec::cuda
