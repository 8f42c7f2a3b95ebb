// Hyper-parameters of a Llama-architecture model (Llama 2/3, SmolLM2, TinyLlama, ...) or of the
// Qwen2 variant of it (Qwen2, Qwen2.5: the same blocks plus Q/K/V biases and NeoX RoPE) read from
// GGUF metadata, checked for consistency with each other and with the tensors' shapes. Errors name
// the file and the key or tensor at fault.
#pragma once

#include <specdec/error.hpp>
#include <specdec/model/gguf/reader.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace specdec {

enum class rope_scaling { none, linear, yarn };

struct llama_config {
  std::string architecture;  // general.architecture
  std::string name;          // general.name (informational)
  std::int64_t n_layers = 0;
  std::int64_t n_embd = 0;
  std::int64_t n_ff = 0;
  std::int64_t n_head = 0;
  std::int64_t n_head_kv = 0;
  std::int64_t head_dim = 0;  // per-head size of q and k (and v)
  std::int64_t n_rot = 0;     // rotated dimensions per head (<= head_dim)
  std::int64_t n_vocab = 0;
  std::int64_t n_ctx_train = 0;
  float rope_freq_base = 10000.0f;
  rope_scaling rope_scaling_type = rope_scaling::none;
  float rope_scaling_factor = 1.0f;
  std::int64_t rope_original_ctx = 0;
  bool has_rope_freq_factors = false;  // rope_freqs.weight (Llama 3.1-style per-dimension factors)
  bool neox_rope = false;              // rotate (i, i + n_rot/2) pairs instead of (2i, 2i+1)
  float rms_eps = 1e-5f;
  bool tied_head = false;              // no output.weight: the head reuses token_embd.weight
  bool has_qkv_bias = false;           // blk.N.attn_{q,k,v}.bias, added after the Q/K/V products

  [[nodiscard]] std::int64_t n_embd_kv() const noexcept { return n_head_kv * head_dim; }
};

namespace detail {

inline void check_shape(const gguf::file& f, const std::string& name, std::vector<std::uint64_t> want) {
  const gguf::tensor_info& t = f.tensor(name);
  bool ok = t.n_dims == want.size();
  for (std::size_t d = 0; ok && d < want.size(); ++d) ok = t.ne[d] == want[d];
  if (!ok) {
    auto show = [](auto begin, auto end) {
      std::string s = "[";
      for (auto it = begin; it != end; ++it) s += (it == begin ? "" : ", ") + std::to_string(*it);
      return s + "]";
    };
    throw error(error_category::model, f.source() + ": tensor '" + name + "' has shape " +
                                           show(t.ne.begin(), t.ne.begin() + t.n_dims) + ", expected " +
                                           show(want.begin(), want.end()));
  }
}

}  // namespace detail

// Reads and validates the configuration. Throws `unsupported` for an architecture other than
// "llama" and "qwen2", `missing_key` / `type_mismatch` for metadata, `model` for inconsistent shapes.
//
// What differs for "qwen2" (llama.cpp's LLM_ARCH_QWEN2; transformers' Qwen2Attention):
//   - metadata keys live under "qwen2." instead of "llama.";
//   - RoPE is the NeoX layout: transformers' rotate_half pairs dimension i with i + head_dim/2,
//     and llama.cpp's converter, which permutes attn_q/attn_k of "llama" models into the adjacent
//     (2i, 2i+1) layout, leaves Qwen2's unpermuted (llama.cpp runs it with LLAMA_ROPE_TYPE_NEOX);
//   - Q, K and V carry biases (nn.Linear(bias=True)): blk.N.attn_{q,k,v}.bias are required.
// A "llama" file may carry the three biases too (llama.cpp accepts them), all or none.
inline llama_config read_llama_config(const gguf::file& f) {
  llama_config c;
  c.architecture = f.get<std::string>("general.architecture");
  c.name = f.get_or<std::string>("general.name", "");
  static constexpr std::array supported{"llama", "qwen2"};
  bool known = false;
  for (const char* a : supported) known = known || c.architecture == a;
  if (!known) {
    throw error(error_category::unsupported, f.source() + ": architecture '" + c.architecture +
                                                 "' is not supported (supported: llama, qwen2)");
  }
  const bool qwen2 = c.architecture == "qwen2";
  c.neox_rope = qwen2;
  const std::string p = c.architecture + ".";
  auto positive = [&](const std::string& key, std::int64_t v) {
    if (v <= 0) {
      throw error(error_category::model, f.source() + ": metadata key '" + key + "' = " +
                                             std::to_string(v) + " must be positive");
    }
    return v;
  };
  auto req = [&](const std::string& key) { return positive(key, f.get<std::int64_t>(key)); };

  c.n_layers = req(p + "block_count");
  c.n_embd = req(p + "embedding_length");
  c.n_ff = req(p + "feed_forward_length");
  c.n_head = req(p + "attention.head_count");
  c.n_head_kv = positive(p + "attention.head_count_kv", f.get_or<std::int64_t>(p + "attention.head_count_kv", c.n_head));
  c.n_ctx_train = req(p + "context_length");
  c.rms_eps = f.get<float>(p + "attention.layer_norm_rms_epsilon");
  if (!(c.rms_eps > 0.0f && c.rms_eps < 1.0f)) {
    throw error(error_category::model, f.source() + ": metadata key '" + p +
                                           "attention.layer_norm_rms_epsilon' = " + std::to_string(c.rms_eps) +
                                           " is outside (0, 1)");
  }
  if (c.n_head % c.n_head_kv != 0) {
    throw error(error_category::model, f.source() + ": attention.head_count " + std::to_string(c.n_head) +
                                           " is not a multiple of attention.head_count_kv " +
                                           std::to_string(c.n_head_kv));
  }
  if (const auto kl = f.get_optional<std::int64_t>(p + "attention.key_length")) {
    c.head_dim = positive(p + "attention.key_length", *kl);
  } else {
    if (c.n_embd % c.n_head != 0) {
      throw error(error_category::model, f.source() + ": embedding_length " + std::to_string(c.n_embd) +
                                             " is not a multiple of attention.head_count " +
                                             std::to_string(c.n_head));
    }
    c.head_dim = c.n_embd / c.n_head;
  }
  if (const auto vl = f.get_optional<std::int64_t>(p + "attention.value_length"); vl && *vl != c.head_dim) {
    throw error(error_category::unsupported, f.source() + ": attention.value_length differs from key_length");
  }
  c.n_rot = positive(p + "rope.dimension_count", f.get_or<std::int64_t>(p + "rope.dimension_count", c.head_dim));
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0) {
    throw error(error_category::model, f.source() + ": rope.dimension_count " + std::to_string(c.n_rot) +
                                           " must be even and at most the head size " + std::to_string(c.head_dim));
  }
  c.rope_freq_base = f.get_or<float>(p + "rope.freq_base", 10000.0f);
  if (!(c.rope_freq_base > 1.0f)) {
    throw error(error_category::model, f.source() + ": rope.freq_base must be greater than 1");
  }
  const std::string scaling = f.get_or<std::string>(p + "rope.scaling.type", "none");
  if (scaling == "none") {
    c.rope_scaling_type = rope_scaling::none;
  } else if (scaling == "linear") {
    c.rope_scaling_type = rope_scaling::linear;
  } else if (scaling == "yarn") {
    c.rope_scaling_type = rope_scaling::yarn;
  } else {
    throw error(error_category::unsupported,
                f.source() + ": rope.scaling.type '" + scaling + "' is not supported (none, linear, yarn)");
  }
  c.rope_scaling_factor = f.get_or<float>(p + "rope.scaling.factor", 1.0f);
  if (const auto lin = f.get_optional<float>(p + "rope.scale_linear")) {  // older spelling
    c.rope_scaling_type = rope_scaling::linear;
    c.rope_scaling_factor = *lin;
  }
  if (!(c.rope_scaling_factor >= 1.0f)) {
    throw error(error_category::model, f.source() + ": rope scaling factor must be at least 1");
  }
  c.rope_original_ctx = f.get_or<std::int64_t>(p + "rope.scaling.original_context_length", c.n_ctx_train);
  c.has_rope_freq_factors = f.find_tensor("rope_freqs.weight") != nullptr;

  const gguf::tensor_info& embd = f.tensor("token_embd.weight");
  c.n_vocab = static_cast<std::int64_t>(embd.n_dims == 2 ? embd.ne[1] : 0);
  if (const auto vs = f.get_optional<std::int64_t>(p + "vocab_size"); vs && *vs != c.n_vocab) {
    throw error(error_category::model, f.source() + ": " + p + "vocab_size " + std::to_string(*vs) +
                                           " disagrees with token_embd.weight rows " + std::to_string(c.n_vocab));
  }
  c.tied_head = f.find_tensor("output.weight") == nullptr;
  // Q/K/V biases: required by qwen2, optional (all three or none) for llama; layer 0 decides and
  // every layer must agree, so a half-present set is an error naming the tensor, not a crash at load.
  c.has_qkv_bias = qwen2 || f.find_tensor("blk.0.attn_q.bias") != nullptr;

  // Shapes (ne[0] is the input dimension of a weight, ne[1] the output dimension).
  using u = std::uint64_t;
  const u e = static_cast<u>(c.n_embd), qd = static_cast<u>(c.n_head * c.head_dim),
          kvd = static_cast<u>(c.n_embd_kv()), ff = static_cast<u>(c.n_ff), v = static_cast<u>(c.n_vocab);
  detail::check_shape(f, "token_embd.weight", {e, v});
  detail::check_shape(f, "output_norm.weight", {e});
  if (!c.tied_head) detail::check_shape(f, "output.weight", {e, v});
  if (c.has_rope_freq_factors) detail::check_shape(f, "rope_freqs.weight", {static_cast<u>(c.n_rot / 2)});
  for (std::int64_t i = 0; i < c.n_layers; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    detail::check_shape(f, b + "attn_norm.weight", {e});
    detail::check_shape(f, b + "attn_q.weight", {e, qd});
    detail::check_shape(f, b + "attn_k.weight", {e, kvd});
    detail::check_shape(f, b + "attn_v.weight", {e, kvd});
    detail::check_shape(f, b + "attn_output.weight", {qd, e});
    if (c.has_qkv_bias) {
      detail::check_shape(f, b + "attn_q.bias", {qd});
      detail::check_shape(f, b + "attn_k.bias", {kvd});
      detail::check_shape(f, b + "attn_v.bias", {kvd});
    } else {
      for (const char* t : {"attn_q.bias", "attn_k.bias", "attn_v.bias"}) {
        if (f.find_tensor(b + t) != nullptr) {
          throw error(error_category::model, f.source() + ": tensor '" + b + t +
                                                 "' is present but blk.0.attn_q.bias is not: Q/K/V biases must "
                                                 "be in every layer or in none");
        }
      }
    }
    detail::check_shape(f, b + "ffn_norm.weight", {e});
    detail::check_shape(f, b + "ffn_gate.weight", {e, ff});
    detail::check_shape(f, b + "ffn_up.weight", {e, ff});
    detail::check_shape(f, b + "ffn_down.weight", {ff, e});
  }
  return c;
}

}  // namespace specdec
