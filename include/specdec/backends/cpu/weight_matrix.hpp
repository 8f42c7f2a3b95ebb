// weight_matrix: a [rows, cols] weight matrix held in one storage format — a GGUF block format
// (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K), bf16 or fp32 — byte for byte as GGUF lays it out,
// row after row, without dequantizing to fp32. project.hpp multiplies activations by it;
// dequantize_row() expands one row (the token embedding lookup). weight_stack is a row-wise
// stack of matrices (Q, K, V or gate, up) whose formats may differ: parts of equal format are
// merged into one matrix, so a file with a single format gives a single product.
#pragma once

#include <specdec/error.hpp>
#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/format.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace specdec::cpu {

// Storage formats a weight_matrix can hold (each has a product kernel in project.hpp).
enum class block_format : std::uint8_t { f32, bf16, q4_0, q4_1, q5_0, q8_0, q4_k, q5_k, q6_k };

struct block_format_traits {
  std::string_view name;
  std::size_t block_values;  // values per block along a row
  std::size_t block_bytes;   // bytes per block
  gguf::ggml_type ggml;      // the GGUF type with this exact layout
};

constexpr block_format_traits traits(block_format f) noexcept {
  using gguf::ggml_type;
  switch (f) {
    case block_format::f32: return {"F32", 1, 4, ggml_type::f32};
    case block_format::bf16: return {"BF16", 1, 2, ggml_type::bf16};
    case block_format::q4_0: return {"Q4_0", 32, 18, ggml_type::q4_0};
    case block_format::q4_1: return {"Q4_1", 32, 20, ggml_type::q4_1};
    case block_format::q5_0: return {"Q5_0", 32, 22, ggml_type::q5_0};
    case block_format::q8_0: return {"Q8_0", 32, 34, ggml_type::q8_0};
    case block_format::q4_k: return {"Q4_K", 256, 144, ggml_type::q4_k};
    case block_format::q5_k: return {"Q5_K", 256, 176, ggml_type::q5_k};
    case block_format::q6_k: return {"Q6_K", 256, 210, ggml_type::q6_k};
  }
  return {"?", 1, 1, ggml_type::f32};
}

constexpr std::string_view to_string(block_format f) noexcept { return traits(f).name; }

inline constexpr block_format all_block_formats[] = {
    block_format::f32,  block_format::bf16, block_format::q4_0, block_format::q4_1, block_format::q5_0,
    block_format::q8_0, block_format::q4_k, block_format::q5_k, block_format::q6_k};

// True for the formats multiplied with int8 activations (all but f32 and bf16).
constexpr bool is_quantized(block_format f) noexcept {
  return f != block_format::f32 && f != block_format::bf16;
}

// How a product with block-quantized weights treats the activations (--activations):
//   f32   each weight block widened to fp32 in registers; the fp32 product of the dequantized
//         weights (the same values the fp32 path computes, batch invariant)
//   int8  activations quantized to int8 per 32 values, integer dot products (faster where the
//         integer units are, at a measured cost in accuracy: docs/benchmarks.md)
enum class activation_format : std::uint8_t { f32, int8 };

constexpr std::string_view to_string(activation_format a) noexcept { return a == activation_format::f32 ? "f32" : "int8"; }

inline activation_format parse_activation_format(std::string_view s, std::string_view flag = "--activations") {
  if (s == "f32") return activation_format::f32;
  if (s == "int8") return activation_format::int8;
  throw error(error_category::invalid_argument,
              std::string(flag) + ": '" + std::string(s) + "' is not one of f32, int8");
}

class weight_matrix {
 public:
  weight_matrix() = default;

  // Zero-filled [rows, cols] matrix; cols must be a multiple of the format's block size.
  weight_matrix(block_format f, std::size_t rows, std::size_t cols) : format_(f), rows_(rows), cols_(cols) {
    const auto t = traits(f);
    if (cols % t.block_values != 0) {
      throw error(error_category::invalid_argument,
                  "weight_matrix: " + std::to_string(cols) + " columns are not a whole number of " +
                      std::string(t.name) + " blocks (" + std::to_string(t.block_values) + " values)");
    }
    row_bytes_ = cols / t.block_values * t.block_bytes;
    data_.assign(rows * row_bytes_ + padding, std::byte{0});
  }

  [[nodiscard]] block_format format() const noexcept { return format_; }
  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
  [[nodiscard]] std::size_t row_bytes() const noexcept { return row_bytes_; }
  // Bytes of weight data (what a product streams from memory).
  [[nodiscard]] std::size_t bytes() const noexcept { return rows_ * row_bytes_; }
  [[nodiscard]] bool empty() const noexcept { return rows_ == 0; }

  [[nodiscard]] const std::byte* row(std::size_t r) const noexcept { return data_.data() + r * row_bytes_; }
  [[nodiscard]] std::byte* row(std::size_t r) noexcept { return data_.data() + r * row_bytes_; }
  [[nodiscard]] const std::byte* data() const noexcept { return data_.data(); }

  // out[0, cols) = row r in fp32, exactly as gguf::dequantize_row converts the GGUF bytes.
  void dequantize_row(std::size_t r, float* out) const noexcept {
    SPECDEC_ASSERT(r < rows_);
    gguf::dequantize_row(traits(format_).ggml, row(r), out, cols_);
  }

 private:
  // Kernels may load a whole SIMD register from the last block of the last row.
  static constexpr std::size_t padding = 64;

  block_format format_ = block_format::f32;
  std::size_t rows_ = 0, cols_ = 0, row_bytes_ = 0;
  std::vector<std::byte> data_;
};

// Rows of several matrices with the same cols, stacked: part i holds rows
// [row_offset(i), row_offset(i) + parts[i].rows()).
struct weight_stack {
  std::vector<weight_matrix> parts;

  [[nodiscard]] std::size_t rows() const noexcept {
    std::size_t n = 0;
    for (const auto& p : parts) n += p.rows();
    return n;
  }
  [[nodiscard]] std::size_t cols() const noexcept { return parts.empty() ? 0 : parts.front().cols(); }
  [[nodiscard]] std::size_t bytes() const noexcept {
    std::size_t n = 0;
    for (const auto& p : parts) n += p.bytes();
    return n;
  }
};

}  // namespace specdec::cpu
