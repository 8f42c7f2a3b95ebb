// Weights of a Llama-architecture model for the CPU backend, dequantized to fp32 at load.
// Q, K and V are stacked into one [q_dim + 2 kv_dim, n_embd] matrix and gate/up into one
// [2 n_ff, n_embd] matrix, so each layer streams its weights in four products instead of seven.
// Every matrix is row-major [out, in]: GGUF's ne[0] is the input dimension, so rows are contiguous.
#pragma once

#include <specdec/error.hpp>
#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/model/llama_config.hpp>

#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace specdec::cpu {

struct llama_layer_weights {
  xt::xtensor<float, 1> attn_norm;  // [n_embd]
  xt::xtensor<float, 2> wqkv;       // [q_dim + 2 kv_dim, n_embd]
  xt::xtensor<float, 1> bqkv;       // [q_dim + 2 kv_dim] or empty: Q/K/V biases (qwen2)
  xt::xtensor<float, 2> wo;         // [n_embd, q_dim]
  xt::xtensor<float, 1> ffn_norm;   // [n_embd]
  xt::xtensor<float, 2> w_gate_up;  // [2 n_ff, n_embd]: gate rows first, then up rows
  xt::xtensor<float, 2> w_down;     // [n_embd, n_ff]
};

struct llama_weights {
  xt::xtensor<float, 2> token_embd;  // [n_vocab, n_embd]
  xt::xtensor<float, 1> output_norm;  // [n_embd]
  xt::xtensor<float, 2> output;       // [n_vocab, n_embd]; empty when the head is tied
  xt::xtensor<float, 1> rope_freq_factors;  // [n_rot / 2] or empty
  std::vector<llama_layer_weights> layers;

  [[nodiscard]] const float* head() const noexcept {
    return output.size() > 0 ? output.data() : token_embd.data();
  }
};

namespace detail {

// Dequantizes tensor `name` into dst (which must have room for its n_elements).
inline void load_into(const gguf::file& f, const std::string& name, float* dst) {
  gguf::dequantize(f, f.tensor(name), dst);
}

inline xt::xtensor<float, 1> load_vector(const gguf::file& f, const std::string& name) {
  const auto& t = f.tensor(name);
  xt::xtensor<float, 1> v = xt::empty<float>({static_cast<std::size_t>(t.n_elements)});
  load_into(f, name, v.data());
  return v;
}

inline xt::xtensor<float, 2> load_matrix(const gguf::file& f, const std::string& name) {
  const auto& t = f.tensor(name);
  xt::xtensor<float, 2> m = xt::empty<float>({static_cast<std::size_t>(t.ne[1]), static_cast<std::size_t>(t.ne[0])});
  load_into(f, name, m.data());
  return m;
}

// Stacks the row blocks of several [rows_i, cols] tensors into one [sum rows_i, cols] matrix.
inline xt::xtensor<float, 2> load_stacked(const gguf::file& f, const std::vector<std::string>& names) {
  std::size_t rows = 0, cols = 0;
  for (const auto& n : names) {
    const auto& t = f.tensor(n);
    rows += t.ne[1];
    cols = t.ne[0];
  }
  xt::xtensor<float, 2> m = xt::empty<float>({rows, cols});
  float* dst = m.data();
  for (const auto& n : names) {
    load_into(f, n, dst);
    dst += f.tensor(n).n_elements;
  }
  return m;
}

// Concatenates several 1-d tensors into one vector (the Q, K and V biases).
inline xt::xtensor<float, 1> load_stacked_vector(const gguf::file& f, const std::vector<std::string>& names) {
  std::size_t n = 0;
  for (const auto& name : names) n += static_cast<std::size_t>(f.tensor(name).n_elements);
  xt::xtensor<float, 1> v = xt::empty<float>({n});
  float* dst = v.data();
  for (const auto& name : names) {
    load_into(f, name, dst);
    dst += f.tensor(name).n_elements;
  }
  return v;
}

}  // namespace detail

// Loads every weight of the model described by `c` (already validated by read_llama_config).
inline llama_weights load_llama_weights(const gguf::file& f, const llama_config& c) {
  llama_weights w;
  w.token_embd = detail::load_matrix(f, "token_embd.weight");
  w.output_norm = detail::load_vector(f, "output_norm.weight");
  if (!c.tied_head) w.output = detail::load_matrix(f, "output.weight");
  if (c.has_rope_freq_factors) w.rope_freq_factors = detail::load_vector(f, "rope_freqs.weight");
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (std::int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    auto& l = w.layers[static_cast<std::size_t>(i)];
    l.attn_norm = detail::load_vector(f, b + "attn_norm.weight");
    l.wqkv = detail::load_stacked(f, {b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"});
    if (f.find_tensor(b + "attn_q.bias") != nullptr) {
      l.bqkv = detail::load_stacked_vector(f, {b + "attn_q.bias", b + "attn_k.bias", b + "attn_v.bias"});
    }
    l.wo = detail::load_matrix(f, b + "attn_output.weight");
    l.ffn_norm = detail::load_vector(f, b + "ffn_norm.weight");
    l.w_gate_up = detail::load_stacked(f, {b + "ffn_gate.weight", b + "ffn_up.weight"});
    l.w_down = detail::load_matrix(f, b + "ffn_down.weight");
  }
  return w;
}

}  // namespace specdec::cpu
