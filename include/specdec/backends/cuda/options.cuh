// Options and result types of the CUDA backend (llama_cuda.cuh). Plain C++, no CUDA header: a
// translation unit compiled by the host compiler may include this file to name the options of a
// model that lives in a CUDA translation unit.
#pragma once

#include <specdec/core/types.hpp>

#include <cstdint>
#include <vector>

namespace specdec::cuda {

// Element type of the weight matrices on the device. Every GGUF tensor is dequantized to fp32 on
// the host (gguf/dequantize.hpp) and rounded once, to nearest even, to this type.
enum class cuda_weights : std::uint8_t {
  bf16,  // default: the fp32 exponent range, 8 significant bits
  fp16,  // 11 significant bits; a weight beyond +-65504 would overflow (none in the supported files)
};

// How the weight products (projections and head) are computed; both accumulate in fp32.
enum class cuda_products : std::uint8_t {
  // specdec's own skinny kernel (kernels.cuh, fixed_order_gemm): every output element is one warp's
  // dot product in one fixed order (a lane's strided run, then a fixed butterfly), whatever the
  // number of rows, the block or the row's place in it. Batch-invariant by construction.
  fixed_order,
  // cublasGemmEx with 16-bit inputs (activations rounded to the weight type), fp32 compute and fp32
  // output, CUBLAS_GEMM_DEFAULT. cuBLAS picks its kernel (tile, split-K) per shape, so a row's
  // logits may change with the number of rows sharing the forward: not batch-invariant.
  cublas,
};

struct llama_cuda_options {
  int device = 0;                   // CUDA device ordinal
  std::int32_t n_ctx = 0;           // positions per sequence; 0 = the model's training context
  std::int32_t n_batch = 64;        // prefill chunk size (tokens per forward) of prefill()
  std::int32_t max_sequences = 8;   // sequences held at once; each owns n_ctx cache slots on the device
  cuda_weights weights = cuda_weights::bf16;
  cuda_products products = cuda_products::fixed_order;
};

// The device-side argmax of the rows a forward returns (llama_cuda::forward_argmax): only one token
// id and its logit per row cross to the host. Rows are ordered as batch_logits's.
struct batch_argmax {
  std::vector<token_id> tokens;    // [rows]: lowest index among the largest logits (std::max_element's)
  std::vector<float> values;       // [rows]: that logit
  std::vector<std::int32_t> first; // [n_steps]
  std::vector<std::int32_t> count; // [n_steps]
};

}  // namespace specdec::cuda
