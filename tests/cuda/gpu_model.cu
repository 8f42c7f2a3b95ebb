// The one nvcc translation unit of the CUDA tests: gpu_model (gpu_model.hpp) over cuda::llama_cuda.
#include "gpu_model.hpp"

#include <specdec/backends/cuda/llama_cuda.cuh>

namespace specdec::test {

int cuda_device_count() noexcept { return cuda::device_count(); }

struct gpu_model::impl {
  cuda::llama_cuda m;
  impl(const std::string& path, const cuda::llama_cuda_options& opt) : m(path, opt) {}
};

gpu_model::gpu_model(const std::string& path, const cuda::llama_cuda_options& opt)
    : p_(std::make_unique<impl>(path, opt)) {}
gpu_model::~gpu_model() = default;
gpu_model::gpu_model(gpu_model&&) noexcept = default;
gpu_model& gpu_model::operator=(gpu_model&&) noexcept = default;

std::int32_t gpu_model::n_vocab() const { return p_->m.n_vocab(); }
std::int32_t gpu_model::n_ctx() const { return p_->m.n_ctx(); }
std::int32_t gpu_model::n_layers() const { return p_->m.n_layers(); }
std::int32_t gpu_model::n_embd() const { return p_->m.n_embd(); }
std::int32_t gpu_model::max_sequences() const { return p_->m.max_sequences(); }
seq_id gpu_model::create_sequence() { return p_->m.create_sequence(); }
void gpu_model::free_sequence(seq_id s) { p_->m.free_sequence(s); }
std::int32_t gpu_model::n_past(seq_id s) const { return p_->m.n_past(s); }
std::int32_t gpu_model::n_pending(seq_id s) const { return p_->m.n_pending(s); }
batch_logits gpu_model::forward(const forward_batch& b) { return p_->m.forward(b); }
batch_logits gpu_model::forward(const forward_batch& b, std::span<const std::int32_t> layers) {
  return p_->m.forward(b, layers);
}
cuda::batch_argmax gpu_model::forward_argmax(const forward_batch& b) { return p_->m.forward_argmax(b); }
void gpu_model::commit(seq_id s, std::span<const std::int32_t> rows) { p_->m.commit(s, rows); }
void gpu_model::truncate(seq_id s, std::int32_t n) { p_->m.truncate(s, n); }
void gpu_model::token_embedding(token_id t, std::span<float> out) const { p_->m.token_embedding(t, out); }
logits_view gpu_model::prefill(seq_id s, std::span<const token_id> tokens) { return p_->m.prefill(s, tokens); }
void gpu_model::read_kv(seq_id s, std::int32_t layer, std::int32_t g, std::int32_t slot, std::span<float> k,
                        std::span<float> v) const {
  p_->m.read_kv(s, layer, g, slot, k, v);
}
std::string gpu_model::device_name() const { return p_->m.device_name(); }
std::size_t gpu_model::weight_bytes() const { return p_->m.weight_bytes(); }
std::size_t gpu_model::kv_bytes() const { return p_->m.kv_bytes(); }
std::int32_t gpu_model::n_head_kv() const { return static_cast<std::int32_t>(p_->m.config().n_head_kv); }
std::int32_t gpu_model::head_dim() const { return static_cast<std::int32_t>(p_->m.config().head_dim); }

static_assert(sequence_model<gpu_model> && layered_sequence_model<gpu_model> && embedding_input_model<gpu_model>);

}  // namespace specdec::test
