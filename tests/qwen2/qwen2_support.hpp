// Test helper for the Qwen2 checks: the model file of this executable (SPECDEC_QWEN2_MODEL, one of
// the realistic tier's GGUFs), its published hyper-parameters, and the fixtures that
// tools/reference/qwen2_fixtures.py wrote for it (SPECDEC_QWEN2_FIXTURES).
#pragma once

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/core/sequence_view.hpp>
#include <specdec/model/gguf/reader.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace specdec::test {

// Qwen2.5-Coder-{0.5B,1.5B}-Instruct as their config.json on the Hugging Face Hub publishes them
// (num_hidden_layers, hidden_size, intermediate_size, num_attention_heads, num_key_value_heads,
// max_position_embeddings, rope_theta, rms_norm_eps, vocab_size): independent of the GGUF reader.
struct qwen2_published {
  std::int64_t n_layers, n_embd, n_ff, n_head, n_head_kv, n_ctx_train;
};

inline qwen2_published published_hparams() {
  const std::string size = SPECDEC_QWEN2_SIZE;
  if (size == "0.5B") return {24, 896, 4864, 14, 2, 32768};
  if (size == "1.5B") return {28, 1536, 8960, 12, 2, 32768};
  throw std::runtime_error("no published hyper-parameters for size " + size);
}

inline const gguf::file& qwen2_file() {
  static const gguf::file f(SPECDEC_QWEN2_MODEL);
  return f;
}

// The backend, loaded once per executable (fp32: ~2.5 GB for the 0.5B file, ~7 GB for the 1.5B).
inline cpu::llama_cpu& qwen2_model() {
  static cpu::llama_cpu model(qwen2_file(), cpu::llama_cpu_options{2, 1024, 64});
  return model;
}

inline std::string qwen2_fixture(const std::string& rel) { return std::string(SPECDEC_QWEN2_FIXTURES) + "/" + rel; }

inline nlohmann::json read_qwen2_json(const std::string& rel) {
  const std::string path = qwen2_fixture(rel);
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path + " (ctest runs tools/reference/qwen2_fixtures.py first)");
  return nlohmann::json::parse(in);
}

inline std::vector<float> read_qwen2_f32(const std::string& rel) {
  const std::string path = qwen2_fixture(rel);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  const std::vector<char> b{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::vector<float> v(b.size() / 4);
  std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}

}  // namespace specdec::test
