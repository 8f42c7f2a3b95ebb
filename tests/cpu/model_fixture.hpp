// Test helper: the default model, loaded once per test binary.
#pragma once

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/core/sequence_view.hpp>

#include <cstring>
#include <span>
#include <vector>

namespace specdec::test {

// The default model as programs load it (--weights auto: the GGUF's own formats).
inline cpu::llama_cpu& default_model() {
  static cpu::llama_cpu model(SPECDEC_TEST_MODEL, cpu::llama_cpu_options{2, 2048, 64});
  return model;
}

// The default model with every weight dequantized to fp32 (--weights fp32), for the tests that hold
// the forward to fp32 agreement with the float64 reference.
inline cpu::llama_cpu& fp32_model() {
  static cpu::llama_cpu model(SPECDEC_TEST_MODEL,
                              cpu::llama_cpu_options{.n_threads = 2, .n_ctx = 2048, .n_batch = 64,
                                                      .weights = cpu::weight_format::fp32});
  return model;
}

// The default model with the KV cache in the given element type (--kv-type); f32 is default_model().
inline cpu::llama_cpu& kv_model(cpu::kv_format kv) {
  auto make = [](cpu::kv_format f) {
    return cpu::llama_cpu(SPECDEC_TEST_MODEL,
                          cpu::llama_cpu_options{.n_threads = 2, .n_ctx = 2048, .n_batch = 64, .kv_type = f});
  };
  switch (kv) {
    case cpu::kv_format::f32: return default_model();
    case cpu::kv_format::f16: {
      static cpu::llama_cpu model = make(kv);
      return model;
    }
    case cpu::kv_format::bf16: {
      static cpu::llama_cpu model = make(kv);
      return model;
    }
  }
  return default_model();
}

inline std::vector<float> copy_row(const logits_view& l, std::int32_t i) {
  const auto r = l.row(i);
  return {r.begin(), r.end()};
}

inline bool bitwise_equal(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

inline token_id argmax(std::span<const float> r) {
  return static_cast<token_id>(std::max_element(r.begin(), r.end()) - r.begin());
}

}  // namespace specdec::test
