// The CUDA backend behind a plain C++ interface, so that the tests and the GPU check (compiled by the
// host compiler, with Catch2, Eigen and the CPU backend) never parse a CUDA header: gpu_model.cu is
// the one translation unit nvcc compiles. gpu_model forwards every call to cuda::llama_cuda and
// satisfies the same concepts (sequence_model, layered_sequence_model, embedding_input_model).
#pragma once

#include <specdec/backends/cuda/options.cuh>
#include <specdec/core/batch.hpp>
#include <specdec/core/step.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace specdec::test {

// CUDA devices visible (0 without a device or a driver; never throws).
int cuda_device_count() noexcept;

class gpu_model {
 public:
  explicit gpu_model(const std::string& path, const cuda::llama_cuda_options& opt = {});
  ~gpu_model();
  gpu_model(gpu_model&&) noexcept;
  gpu_model& operator=(gpu_model&&) noexcept;

  [[nodiscard]] std::int32_t n_vocab() const;
  [[nodiscard]] std::int32_t n_ctx() const;
  [[nodiscard]] std::int32_t n_layers() const;
  [[nodiscard]] std::int32_t n_embd() const;
  [[nodiscard]] std::int32_t max_sequences() const;
  seq_id create_sequence();
  void free_sequence(seq_id s);
  [[nodiscard]] std::int32_t n_past(seq_id s) const;
  [[nodiscard]] std::int32_t n_pending(seq_id s) const;
  batch_logits forward(const forward_batch& b);
  batch_logits forward(const forward_batch& b, std::span<const std::int32_t> layers);
  cuda::batch_argmax forward_argmax(const forward_batch& b);
  void commit(seq_id s, std::span<const std::int32_t> rows);
  void truncate(seq_id s, std::int32_t n);
  void token_embedding(token_id t, std::span<float> out) const;
  logits_view prefill(seq_id s, std::span<const token_id> tokens);
  void read_kv(seq_id s, std::int32_t layer, std::int32_t g, std::int32_t slot, std::span<float> k,
               std::span<float> v) const;
  [[nodiscard]] std::string device_name() const;
  [[nodiscard]] std::size_t weight_bytes() const;
  [[nodiscard]] std::size_t kv_bytes() const;
  [[nodiscard]] std::int32_t n_head_kv() const;
  [[nodiscard]] std::int32_t head_dim() const;

 private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace specdec::test
