// llama_cpu: the reference CPU backend for Llama-architecture GGUF models. Satisfies
// layered_forward_step (concepts/forward_step.hpp): tree-shaped steps on top of a committed KV
// cache, commit of any subset of rows, and forwards over a chosen list of layers.
// Weights stay in the GGUF's formats (or the one llama_cpu_options::weights asks for); products use
// project.hpp, whose per-row reduction order does not depend on the number of tokens, so logits are
// bit-identical whatever the tree size.
#pragma once

#include <specdec/backends/cpu/attention.hpp>
#include <specdec/backends/cpu/kv_cache.hpp>
#include <specdec/backends/cpu/llama_weights.hpp>
#include <specdec/backends/cpu/matmul.hpp>
#include <specdec/backends/cpu/ops.hpp>
#include <specdec/backends/cpu/project.hpp>
#include <specdec/backends/cpu/thread_pool.hpp>
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
  std::int32_t n_threads = 2;  // threads of the backend's pool (the caller's thread included)
  std::int32_t n_ctx = 0;      // KV cache slots; 0 = the model's training context
  std::int32_t n_batch = 64;   // prefill chunk size (tokens per forward)
  weight_format weights = weight_format::automatic;  // storage of the weight matrices (--weights)
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
    n_batch_ = opt.n_batch;
    weights_ = load_llama_weights(f, config_, opt.weights);
    cache_ = kv_cache(static_cast<std::int32_t>(config_.n_layers), static_cast<std::int32_t>(config_.n_head_kv),
                      n_ctx_, static_cast<std::int32_t>(config_.head_dim));
    all_layers_.resize(static_cast<std::size_t>(config_.n_layers));
    std::iota(all_layers_.begin(), all_layers_.end(), 0);
  }

  explicit llama_cpu(const std::string& path, const llama_cpu_options& opt = {}) : llama_cpu(gguf::file(path), opt) {}

  [[nodiscard]] const llama_config& config() const noexcept { return config_; }
  [[nodiscard]] std::int32_t n_vocab() const noexcept { return static_cast<std::int32_t>(config_.n_vocab); }
  [[nodiscard]] std::int32_t n_ctx() const noexcept { return n_ctx_; }
  [[nodiscard]] std::int32_t n_past() const noexcept { return n_past_; }
  [[nodiscard]] std::int32_t n_layers() const noexcept { return static_cast<std::int32_t>(config_.n_layers); }
  [[nodiscard]] std::int32_t n_threads() const noexcept { return static_cast<std::int32_t>(pool_.size()); }
  // Bytes of weights held, and streamed per forward step; formats changed at load, one line each.
  [[nodiscard]] std::size_t weight_bytes() const noexcept { return weights_.bytes(); }
  [[nodiscard]] std::size_t weight_bytes_per_step() const noexcept { return weights_.bytes_per_step(); }
  [[nodiscard]] std::vector<std::string> weight_conversions() const { return weights_.conversions.lines(); }

  logits_view forward(const step_batch& b) { return run(b, all_layers_, false); }

  logits_view forward(const step_batch& b, std::span<const std::int32_t> layers) {
    for (std::size_t i = 0; i < layers.size(); ++i) {
      if (layers[i] < 0 || layers[i] >= n_layers() || (i > 0 && layers[i] <= layers[i - 1])) {
        throw error(error_category::invalid_argument,
                    "llama_cpu::forward: layer list must be ascending indices in [0, " + std::to_string(n_layers()) + ")");
      }
    }
    return run(b, layers, false);
  }

  // Keeps rows of the last step as cache entries n_past, n_past + 1, ...; drops the others.
  void commit(std::span<const std::int32_t> rows) {
    if (rows.size() > static_cast<std::size_t>(last_n_)) {
      throw error(error_category::invalid_argument, "llama_cpu::commit: more rows than the last step had");
    }
    for (std::size_t k = 0; k < rows.size(); ++k) {
      if (rows[k] < 0 || rows[k] >= last_n_) {
        throw error(error_category::invalid_argument,
                    "llama_cpu::commit: row " + std::to_string(rows[k]) + " is not a row of the last step");
      }
      if (last_positions_[static_cast<std::size_t>(rows[k])] != n_past_ + static_cast<std::int32_t>(k)) {
        throw error(error_category::invalid_argument,
                    "llama_cpu::commit: row " + std::to_string(rows[k]) + " has position " +
                        std::to_string(last_positions_[static_cast<std::size_t>(rows[k])]) + ", expected " +
                        std::to_string(n_past_ + static_cast<std::int32_t>(k)));
      }
    }
    cache_.gather(n_past_, rows);
    n_past_ += static_cast<std::int32_t>(rows.size());
    last_n_ = 0;
  }

  void reset() noexcept {
    n_past_ = 0;
    last_n_ = 0;
  }

  // Runs a prompt through the model in chunks of n_batch, commits all of it, and returns the
  // logits of its last token only (the head runs once, not per prompt token).
  logits_view prefill(std::span<const token_id> tokens) {
    if (tokens.empty()) throw error(error_category::invalid_argument, "llama_cpu::prefill: empty prompt");
    check_capacity(static_cast<std::int32_t>(tokens.size()));
    logits_view out;
    for (std::size_t at = 0; at < tokens.size(); at += static_cast<std::size_t>(n_batch_)) {
      const std::size_t len = std::min(tokens.size() - at, static_cast<std::size_t>(n_batch_));
      const step_batch b = step_batch::chain(tokens.subspan(at, len), n_past_);
      out = run(b, all_layers_, true);
      std::vector<std::int32_t> rows(len);
      std::iota(rows.begin(), rows.end(), 0);
      commit(rows);
    }
    return out;
  }

 private:
  static std::size_t check_threads(std::int32_t n) {
    if (n < 1 || n > 256) {
      throw error(error_category::invalid_argument, "llama_cpu: thread count " + std::to_string(n) + " outside [1, 256]");
    }
    return static_cast<std::size_t>(n);
  }

  void check_capacity(std::int32_t n) const {
    if (static_cast<std::int64_t>(n_past_) + n > n_ctx_) {
      throw error(error_category::capacity, "context full: " + std::to_string(n_past_) + " cached + " +
                                                std::to_string(n) + " new tokens exceed n_ctx " + std::to_string(n_ctx_));
    }
  }

  void validate(const step_batch& b) const {
    const std::int32_t n = b.size();
    if (n == 0) throw error(error_category::invalid_argument, "llama_cpu::forward: empty step");
    if (static_cast<std::int32_t>(b.positions.size()) != n || b.mask.size() != n) {
      throw error(error_category::invalid_argument, "llama_cpu::forward: tokens, positions and mask differ in size");
    }
    check_capacity(n);
    for (std::int32_t i = 0; i < n; ++i) {
      const auto t = b.tokens[static_cast<std::size_t>(i)];
      if (t < 0 || t >= n_vocab()) {
        throw error(error_category::invalid_argument,
                    "llama_cpu::forward: token id " + std::to_string(t) + " outside the vocabulary");
      }
      const auto p = b.positions[static_cast<std::size_t>(i)];
      if (p < 0 || p >= n_ctx_) {
        throw error(error_category::invalid_argument, "llama_cpu::forward: position " + std::to_string(p) + " outside [0, n_ctx)");
      }
    }
    if (!b.mask.is_lower_triangular()) {
      throw error(error_category::invalid_argument,
                  "llama_cpu::forward: mask must let each token see itself and only earlier tokens");
    }
  }

  void reserve(std::int32_t n) {
    const auto rows = static_cast<std::size_t>(n);
    if (x_.shape(0) >= rows) return;
    const auto e = static_cast<std::size_t>(config_.n_embd);
    const auto qd = static_cast<std::size_t>(config_.n_head * config_.head_dim);
    const auto kvd = static_cast<std::size_t>(config_.n_embd_kv());
    const auto ff = static_cast<std::size_t>(config_.n_ff);
    x_ = xt::empty<float>({rows, e});
    xn_ = xt::empty<float>({rows, e});
    tmp_ = xt::empty<float>({rows, e});
    qkv_ = xt::empty<float>({rows, qd + 2 * kvd});
    q_ = xt::empty<float>({rows, qd});
    att_ = xt::empty<float>({rows, qd});
    gate_up_ = xt::empty<float>({rows, 2 * ff});
    ffn_ = xt::empty<float>({rows, ff});
    const auto half = static_cast<std::size_t>(config_.n_rot / 2);
    cos_ = xt::empty<float>({rows, half});
    sin_ = xt::empty<float>({rows, half});
  }

  logits_view run(const step_batch& b, std::span<const std::int32_t> layers, bool last_row_only) {
    validate(b);
    const std::int32_t n = b.size();
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
      weights_.token_embd.dequantize_row(static_cast<std::size_t>(b.tokens[static_cast<std::size_t>(i)]), &x_(i, 0));
      rope_angles(b.positions[static_cast<std::size_t>(i)], c.n_rot, c.rope_freq_base, linear, freq_factors,
                  &cos_(i, 0), &sin_(i, 0));
    }

    std::size_t next = 0;  // index into `layers`
    const attention_shape shape{c.n_head, c.n_head_kv, c.head_dim};
    for (std::int32_t l = 0; l < n_layers(); ++l) {
      const bool run_layer = next < layers.size() && layers[next] == l;
      if (!run_layer) {  // no K/V for these tokens in this layer: leave defined zeros behind
        for (std::int32_t i = 0; i < n; ++i) {
          for (std::int32_t g = 0; g < c.n_head_kv; ++g) {
            std::fill_n(cache_.k(l, g, n_past_ + i), hd, 0.0f);
            std::fill_n(cache_.v(l, g, n_past_ + i), hd, 0.0f);
          }
        }
        continue;
      }
      ++next;
      const auto& w = weights_.layers[static_cast<std::size_t>(l)];
      for (std::int32_t i = 0; i < n; ++i) rms_norm_row(&x_(i, 0), w.attn_norm.data(), &xn_(i, 0), e, c.rms_eps);
      project(pool_, w.wqkv, xn_.data(), static_cast<std::size_t>(n), qkv_.data());
      for (std::int32_t i = 0; i < n; ++i) {
        float* row = &qkv_(i, 0);
        if (w.bqkv.size() > 0) add_row(row, w.bqkv.data(), qkv_cols);
        rope_heads(row, c.n_head, c.head_dim, c.n_rot, c.neox_rope, &cos_(i, 0), &sin_(i, 0));
        rope_heads(row + qd, c.n_head_kv, c.head_dim, c.n_rot, c.neox_rope, &cos_(i, 0), &sin_(i, 0));
        std::memcpy(&q_(i, 0), row, qd * sizeof(float));
        for (std::int32_t g = 0; g < c.n_head_kv; ++g) {
          std::memcpy(cache_.k(l, g, n_past_ + i), row + qd + static_cast<std::size_t>(g) * hd, hd * sizeof(float));
          std::memcpy(cache_.v(l, g, n_past_ + i), row + qd + kvd + static_cast<std::size_t>(g) * hd, hd * sizeof(float));
        }
      }
      tree_attention(pool_, cache_, l, n_past_, b.mask, q_.data(), att_.data(), shape);
      project(pool_, w.wo, att_.data(), static_cast<std::size_t>(n), tmp_.data());
      for (std::int32_t i = 0; i < n; ++i) add_row(&x_(i, 0), &tmp_(i, 0), e);

      for (std::int32_t i = 0; i < n; ++i) rms_norm_row(&x_(i, 0), w.ffn_norm.data(), &xn_(i, 0), e, c.rms_eps);
      project(pool_, w.w_gate_up, xn_.data(), static_cast<std::size_t>(n), gate_up_.data());
      for (std::int32_t i = 0; i < n; ++i) swiglu_row(&gate_up_(i, 0), &ffn_(i, 0), ff);
      project(pool_, w.w_down, ffn_.data(), static_cast<std::size_t>(n), tmp_.data());
      for (std::int32_t i = 0; i < n; ++i) add_row(&x_(i, 0), &tmp_(i, 0), e);
    }

    const std::int32_t first = last_row_only ? n - 1 : 0;
    const std::int32_t n_out = n - first;
    for (std::int32_t i = first; i < n; ++i) {
      rms_norm_row(&x_(i, 0), weights_.output_norm.data(), &xn_(i - first, 0), e, c.rms_eps);
    }
    const auto vocab = static_cast<std::size_t>(c.n_vocab);
    if (logits_.size() < static_cast<std::size_t>(n_out) * vocab) logits_.resize(static_cast<std::size_t>(n_out) * vocab);
    project(pool_, weights_.head(), xn_.data(), static_cast<std::size_t>(n_out), logits_.data());

    last_n_ = n;
    last_positions_.assign(b.positions.begin(), b.positions.end());
    return logits_view{logits_.data(), n_out, n_vocab()};
  }

  llama_config config_;
  thread_pool pool_;
  std::int32_t n_ctx_ = 0;
  std::int32_t n_batch_ = 64;
  llama_weights weights_;
  kv_cache cache_;
  std::vector<std::int32_t> all_layers_;
  std::int32_t n_past_ = 0;
  std::int32_t last_n_ = 0;
  std::vector<std::int32_t> last_positions_;

  // Activations, [rows, dim] with rows grown to the largest step seen.
  xt::xtensor<float, 2> x_, xn_, tmp_, qkv_, q_, att_, gate_up_, ffn_, cos_, sin_;
  std::vector<float> logits_;  // [n_out, n_vocab]
};

}  // namespace specdec::cpu
