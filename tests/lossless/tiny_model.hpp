// Test helper: a tiny Llama model with random weights (vocabulary 8, 2 layers, 16-dim embeddings,
// 2 query heads sharing 1 kv head), built as an in-memory GGUF and run by the real CPU backend.
// Small enough to enumerate exact sequence probabilities for distribution tests.
#pragma once

#include "../gguf/gguf_builder.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>

#include <random>

namespace specdec::test {

inline gguf::file tiny_llama_gguf(unsigned seed, std::uint32_t n_vocab = 8) {
  gguf_builder b;
  const std::uint32_t e = 16, ff = 32, layers = 2;
  b.add_string("general.architecture", "llama");
  b.add_u32("llama.block_count", layers);
  b.add_u32("llama.embedding_length", e);
  b.add_u32("llama.feed_forward_length", ff);
  b.add_u32("llama.attention.head_count", 2);
  b.add_u32("llama.attention.head_count_kv", 1);
  b.add_u32("llama.context_length", 256);
  b.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  b.add_f32_tensor("token_embd.weight", {e, n_vocab});
  b.add_f32_tensor("output_norm.weight", {e}, 1.0f);
  for (std::uint32_t i = 0; i < layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    b.add_f32_tensor(p + "attn_norm.weight", {e}, 1.0f);
    b.add_f32_tensor(p + "attn_q.weight", {e, e});
    b.add_f32_tensor(p + "attn_k.weight", {e, 8});
    b.add_f32_tensor(p + "attn_v.weight", {e, 8});
    b.add_f32_tensor(p + "attn_output.weight", {e, e});
    b.add_f32_tensor(p + "ffn_norm.weight", {e}, 1.0f);
    b.add_f32_tensor(p + "ffn_gate.weight", {e, ff});
    b.add_f32_tensor(p + "ffn_up.weight", {e, ff});
    b.add_f32_tensor(p + "ffn_down.weight", {ff, e});
  }
  // Random weights everywhere except the norms (kept at 1): fill every float, then restore norms.
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.6f);
  for (const auto& t : b.tensors) {
    std::uint64_t n = 1;
    for (auto d : t.ne) n *= d;
    const bool norm = t.name.find("norm") != std::string::npos;
    for (std::uint64_t i = 0; i < n; ++i) {
      const float v = norm ? 1.0f : normal(rng);
      std::memcpy(b.data.data() + t.offset + 4 * i, &v, 4);
    }
  }
  return gguf::file::from_bytes(b.bytes(), "tiny-llama");
}

inline cpu::llama_cpu tiny_llama(unsigned seed) {
  return cpu::llama_cpu(tiny_llama_gguf(seed), cpu::llama_cpu_options{1, 256, 64});
}

}  // namespace specdec::test
