// Weights of a Llama / Qwen2 model on the device. Every GGUF tensor is dequantized on the host with
// gguf/dequantize.hpp (the values the CPU backend's fp32 path holds) and rounded once, to nearest
// even, to bf16 or fp16; norms, biases and RoPE frequency factors stay fp32. Q, K and V are stacked
// row-wise into one [q_dim + 2 kv_dim, n_embd] matrix and gate/up into one [2 n_ff, n_embd] matrix,
// as in the CPU backend, so a layer is four products. Matrices are row-major [out, in] (GGUF's ne[0]
// is the input dimension). A tied head is the embedding matrix itself.
#pragma once

#include <specdec/backends/cuda/buffer.cuh>
#include <specdec/backends/cuda/check.cuh>
#include <specdec/backends/cuda/options.cuh>
#include <specdec/error.hpp>
#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/model/llama_config.hpp>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace specdec::cuda {

// fp32 -> bf16 bits, round to nearest even (NaN stays a quiet NaN).
inline std::uint16_t to_bf16_bits(float v) noexcept {
  std::uint32_t u = std::bit_cast<std::uint32_t>(v);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

// fp32 -> fp16 bits, round to nearest even (cuda_fp16.h's host conversion).
inline std::uint16_t to_fp16_bits(float v) noexcept {
  const __half_raw raw = static_cast<__half_raw>(__float2half_rn(v));
  return raw.x;
}

inline float from_16bit(std::uint16_t bits, cuda_weights type) noexcept {
  if (type == cuda_weights::bf16) return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
  return gguf::fp16_to_fp32(bits);
}

struct cuda_layer_weights {
  device_buffer<float> attn_norm;          // [n_embd]
  device_buffer<std::uint16_t> wqkv;       // [q_dim + 2 kv_dim, n_embd]
  device_buffer<float> bqkv;               // [q_dim + 2 kv_dim] or empty
  device_buffer<std::uint16_t> wo;         // [n_embd, q_dim]
  device_buffer<float> ffn_norm;           // [n_embd]
  device_buffer<std::uint16_t> w_gate_up;  // [2 n_ff, n_embd]
  device_buffer<std::uint16_t> w_down;     // [n_embd, n_ff]
};

struct cuda_weights_set {
  cuda_weights type = cuda_weights::bf16;
  device_buffer<std::uint16_t> token_embd;  // [n_vocab, n_embd]; the head too when tied
  device_buffer<float> output_norm;         // [n_embd]
  device_buffer<std::uint16_t> output;      // [n_vocab, n_embd] or empty (tied)
  std::vector<cuda_layer_weights> layers;

  [[nodiscard]] const std::uint16_t* head() const noexcept {
    return output.size() > 0 ? output.get() : token_embd.get();
  }
};

// Bytes the weights of `c` take on the device (checked against free memory before any allocation).
inline std::size_t weight_bytes(const llama_config& c) noexcept {
  const auto e = static_cast<std::size_t>(c.n_embd), qd = static_cast<std::size_t>(c.n_head * c.head_dim),
             kvd = static_cast<std::size_t>(c.n_embd_kv()), ff = static_cast<std::size_t>(c.n_ff),
             v = static_cast<std::size_t>(c.n_vocab);
  std::size_t halves = v * e * (c.tied_head ? 1 : 2);
  std::size_t floats = e;
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    halves += (qd + 2 * kvd) * e + e * qd + 2 * ff * e + e * ff;
    floats += 2 * e + (c.has_qkv_bias ? qd + 2 * kvd : 0);
  }
  return halves * 2 + floats * 4;
}

namespace weights_detail {

// Uploads tensors `names` (dequantized, rounded to `type`) one after the other into a new buffer.
inline device_buffer<std::uint16_t> upload_matrix(const gguf::file& f, const std::vector<std::string>& names,
                                                  cuda_weights type, std::vector<float>& scratch,
                                                  std::vector<std::uint16_t>& scratch16) {
  std::size_t total = 0;
  for (const auto& n : names) total += static_cast<std::size_t>(f.tensor(n).n_elements);
  device_buffer<std::uint16_t> dst(total, names.front().c_str());
  std::size_t at = 0;
  for (const auto& n : names) {
    const gguf::tensor_info& t = f.tensor(n);
    const auto count = static_cast<std::size_t>(t.n_elements);
    scratch.resize(count);
    scratch16.resize(count);
    gguf::dequantize(f, t, scratch.data());
    if (type == cuda_weights::bf16) {
      for (std::size_t i = 0; i < count; ++i) scratch16[i] = to_bf16_bits(scratch[i]);
    } else {
      for (std::size_t i = 0; i < count; ++i) scratch16[i] = to_fp16_bits(scratch[i]);
    }
    SPECDEC_CUDA_CHECK(cudaMemcpy(dst.get() + at, scratch16.data(), count * 2, cudaMemcpyHostToDevice));
    at += count;
  }
  return dst;
}

inline device_buffer<float> upload_vector(const gguf::file& f, const std::vector<std::string>& names,
                                          std::vector<float>& scratch) {
  std::size_t total = 0;
  for (const auto& n : names) total += static_cast<std::size_t>(f.tensor(n).n_elements);
  device_buffer<float> dst(total, names.front().c_str());
  std::size_t at = 0;
  for (const auto& n : names) {
    const gguf::tensor_info& t = f.tensor(n);
    const auto count = static_cast<std::size_t>(t.n_elements);
    scratch.resize(count);
    gguf::dequantize(f, t, scratch.data());
    SPECDEC_CUDA_CHECK(cudaMemcpy(dst.get() + at, scratch.data(), count * 4, cudaMemcpyHostToDevice));
    at += count;
  }
  return dst;
}

}  // namespace weights_detail

// Loads every weight of the model `c` describes (read_llama_config validated the shapes).
inline cuda_weights_set load_cuda_weights(const gguf::file& f, const llama_config& c, cuda_weights type) {
  using weights_detail::upload_matrix;
  using weights_detail::upload_vector;
  std::vector<float> scratch;
  std::vector<std::uint16_t> scratch16;
  cuda_weights_set w;
  w.type = type;
  w.token_embd = upload_matrix(f, {"token_embd.weight"}, type, scratch, scratch16);
  w.output_norm = upload_vector(f, {"output_norm.weight"}, scratch);
  if (!c.tied_head) w.output = upload_matrix(f, {"output.weight"}, type, scratch, scratch16);
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (std::int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    auto& l = w.layers[static_cast<std::size_t>(i)];
    l.attn_norm = upload_vector(f, {b + "attn_norm.weight"}, scratch);
    l.wqkv = upload_matrix(f, {b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"}, type, scratch, scratch16);
    if (c.has_qkv_bias) l.bqkv = upload_vector(f, {b + "attn_q.bias", b + "attn_k.bias", b + "attn_v.bias"}, scratch);
    l.wo = upload_matrix(f, {b + "attn_output.weight"}, type, scratch, scratch16);
    l.ffn_norm = upload_vector(f, {b + "ffn_norm.weight"}, scratch);
    l.w_gate_up = upload_matrix(f, {b + "ffn_gate.weight", b + "ffn_up.weight"}, type, scratch, scratch16);
    l.w_down = upload_matrix(f, {b + "ffn_down.weight"}, type, scratch, scratch16);
  }
  return w;
}

}  // namespace specdec::cuda
