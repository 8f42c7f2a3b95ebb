// Weights of a Llama-architecture model for the CPU backend. Matrices are weight_matrix objects in
// the GGUF's own block formats (or the format --weights asks for, quant/convert.hpp); norms,
// biases and rope factors are fp32. Q, K and V are stacked into one [q_dim + 2 kv_dim, n_embd]
// stack and gate/up into one [2 n_ff, n_embd] stack, so each layer streams its weights in four
// products instead of seven. Every matrix is row-major [out, in]: GGUF's ne[0] is the input
// dimension, so rows are contiguous.
#pragma once

#include <specdec/backends/cpu/quant/convert.hpp>
#include <specdec/backends/cpu/weight_matrix.hpp>
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
  weight_stack wqkv;                // [q_dim + 2 kv_dim, n_embd]: Q, K, V rows
  xt::xtensor<float, 1> bqkv;       // [q_dim + 2 kv_dim] or empty: Q/K/V biases (qwen2)
  weight_matrix wo;                 // [n_embd, q_dim]
  xt::xtensor<float, 1> ffn_norm;   // [n_embd]
  weight_stack w_gate_up;           // [2 n_ff, n_embd]: gate rows first, then up rows
  weight_matrix w_down;             // [n_embd, n_ff]
};

struct llama_weights {
  weight_matrix token_embd;           // [n_vocab, n_embd]; also the head when it is tied
  xt::xtensor<float, 1> output_norm;  // [n_embd]
  weight_matrix output;               // [n_vocab, n_embd]; empty when the head is tied
  xt::xtensor<float, 1> rope_freq_factors;  // [n_rot / 2] or empty
  std::vector<llama_layer_weights> layers;
  conversion_log conversions;         // formats changed at load (auto: no kernel; q8/bf16/fp32)

  [[nodiscard]] const weight_matrix& head() const noexcept { return output.empty() ? token_embd : output; }

  // Bytes of weight matrices held (norms, biases and rope factors, all fp32, included).
  [[nodiscard]] std::size_t bytes() const noexcept {
    std::size_t n = token_embd.bytes() + output.bytes() + (output_norm.size() + rope_freq_factors.size()) * 4;
    for (const auto& l : layers) {
      n += l.wqkv.bytes() + l.wo.bytes() + l.w_gate_up.bytes() + l.w_down.bytes();
      n += (l.attn_norm.size() + l.bqkv.size() + l.ffn_norm.size()) * 4;
    }
    return n;
  }
  // Bytes one forward step streams: every layer's matrices and the head (the embedding rows
  // looked up are negligible unless the head is tied, when they are the head).
  [[nodiscard]] std::size_t bytes_per_step() const noexcept {
    std::size_t n = head().bytes();
    for (const auto& l : layers) n += l.wqkv.bytes() + l.wo.bytes() + l.w_gate_up.bytes() + l.w_down.bytes();
    return n;
  }
};

namespace weights_detail {

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

}  // namespace weights_detail

// Loads every weight of the model described by `c` (already validated by read_llama_config),
// matrices in the formats `weights` asks for (quant/convert.hpp), vectors in fp32.
// Q/K/V and gate/up are stacked row-wise; where their formats differ (a Q4_K_M file's Q6_K attn_v
// beside Q4_K attn_q/attn_k) the stack keeps one part per format rather than re-quantizing.
inline llama_weights load_llama_weights(const gguf::file& f, const llama_config& c,
                                        weight_format weights = weight_format::automatic) {
  llama_weights w;
  auto& log = w.conversions;
  w.token_embd = load_matrix(f, "token_embd.weight", weights, log);
  w.output_norm = weights_detail::load_vector(f, "output_norm.weight");
  if (!c.tied_head) w.output = load_matrix(f, "output.weight", weights, log);
  if (c.has_rope_freq_factors) w.rope_freq_factors = weights_detail::load_vector(f, "rope_freqs.weight");
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (std::int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    auto& l = w.layers[static_cast<std::size_t>(i)];
    l.attn_norm = weights_detail::load_vector(f, b + "attn_norm.weight");
    l.wqkv = load_stack(f, {b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"}, weights, log);
    if (f.find_tensor(b + "attn_q.bias") != nullptr) {
      l.bqkv = weights_detail::load_stacked_vector(f, {b + "attn_q.bias", b + "attn_k.bias", b + "attn_v.bias"});
    }
    l.wo = load_matrix(f, b + "attn_output.weight", weights, log);
    l.ffn_norm = weights_detail::load_vector(f, b + "ffn_norm.weight");
    l.w_gate_up = load_stack(f, {b + "ffn_gate.weight", b + "ffn_up.weight"}, weights, log);
    l.w_down = load_matrix(f, b + "ffn_down.weight", weights, log);
  }
  return w;
}

}  // namespace specdec::cpu
