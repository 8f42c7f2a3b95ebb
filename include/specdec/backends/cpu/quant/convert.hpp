// Loading GGUF tensors into weight_matrix, in the format a --weights choice asks for:
//   auto    each tensor in its own format where a kernel exists; otherwise the nearest one
//           (F16 -> F32, exact; Q5_1 -> Q8_0, re-quantized). Every conversion is recorded in a
//           conversion_log so the program can say it once.
//   native  each tensor in its own format; a format without a kernel is an `unsupported` error
//   q8      every tensor re-quantized to Q8_0 (Q8_0 tensors are copied)
//   bf16    every tensor converted to bf16 (round to nearest even)
//   fp32    every tensor dequantized to fp32 (the products of the fp32 backend, bit for bit)
// Conversions dequantize with gguf/dequantize.hpp first; Q8_0 re-quantization follows ggml's
// reference rule (d = max|x| / 127 rounded to fp16, q = roundf(x / d) with 1/d from the fp32 d),
// as the `gguf` Python package does, so the NumPy reference can rebuild the same weights.
#pragma once

#include <specdec/backends/cpu/half.hpp>
#include <specdec/backends/cpu/weight_matrix.hpp>
#include <specdec/error.hpp>
#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/reader.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace specdec::cpu {

enum class weight_format : std::uint8_t { automatic, native, q8, bf16, fp32 };

constexpr std::string_view to_string(weight_format w) noexcept {
  switch (w) {
    case weight_format::automatic: return "auto";
    case weight_format::native: return "native";
    case weight_format::q8: return "q8";
    case weight_format::bf16: return "bf16";
    case weight_format::fp32: return "fp32";
  }
  return "?";
}

// Parses a --weights value; `flag` names the option in the error.
inline weight_format parse_weight_format(std::string_view s, std::string_view flag = "--weights") {
  for (auto w : {weight_format::automatic, weight_format::native, weight_format::q8, weight_format::bf16,
                 weight_format::fp32}) {
    if (s == to_string(w)) return w;
  }
  throw error(error_category::invalid_argument, std::string(flag) + ": '" + std::string(s) +
                                                    "' is not one of auto, native, q8, bf16, fp32");
}

// The block format with the same layout as a GGUF type, where a product kernel exists.
constexpr std::optional<block_format> kernel_format(gguf::ggml_type t) noexcept {
  for (block_format f : all_block_formats) {
    if (traits(f).ggml == t) return f;
  }
  return std::nullopt;
}

// Counts of conversions made while loading: "Q5_1 -> Q8_0 (no Q5_1 kernel)" -> 14 tensors.
struct conversion_log {
  std::map<std::string, std::size_t> counts;

  void add(const std::string& what) { ++counts[what]; }
  [[nodiscard]] std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& [what, n] : counts) out.push_back(what + ": " + std::to_string(n) + " tensor(s)");
    return out;
  }
};

// The format tensor t is held in under choice w (recording a conversion in log).
inline block_format choose_format(const gguf::file& f, const gguf::tensor_info& t, weight_format w,
                                  conversion_log& log) {
  if (!gguf::can_dequantize(t.type)) {
    throw error(error_category::unsupported, f.source() + ": tensor '" + t.name + "' has type " +
                                                 std::string(gguf::to_string(t.type)) +
                                                 ", which the CPU backend cannot load");
  }
  const auto native = kernel_format(t.type);
  const std::string from(gguf::to_string(t.type));
  auto convert = [&](block_format to, const char* why) {
    if (native == to) return to;
    log.add(from + " -> " + std::string(to_string(to)) + " (" + why + ")");
    return to;
  };
  switch (w) {
    case weight_format::native:
      if (!native) {
        throw error(error_category::unsupported,
                    f.source() + ": tensor '" + t.name + "' has type " + from +
                        ", for which the CPU backend has no kernel (--weights native); use --weights auto");
      }
      return *native;
    case weight_format::automatic:
      if (native) return *native;
      return t.type == gguf::ggml_type::f16 ? convert(block_format::f32, "no F16 kernel, exact")
                                            : convert(block_format::q8_0, "no kernel for this type");
    case weight_format::q8: return convert(block_format::q8_0, "--weights q8");
    case weight_format::bf16: return convert(block_format::bf16, "--weights bf16");
    case weight_format::fp32: return convert(block_format::f32, "--weights fp32");
  }
  return block_format::f32;
}

// n values (a multiple of 32) -> Q8_0 blocks.
inline void quantize_q8_0(const float* x, std::size_t n, std::byte* dst) noexcept {
  for (std::size_t b = 0; b < n / 32; ++b, x += 32, dst += 34) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::abs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const std::uint16_t h = fp32_to_fp16(d);
    std::memcpy(dst, &h, 2);
    for (int j = 0; j < 32; ++j) {
      const auto q = static_cast<std::int8_t>(std::round(x[j] * id));
      std::memcpy(dst + 2 + j, &q, 1);
    }
  }
}

// Writes n fp32 values to dst in format f (f32, bf16 or q8_0: the conversion targets).
inline void encode(block_format f, const float* x, std::size_t n, std::byte* dst) {
  switch (f) {
    case block_format::f32: std::memcpy(dst, x, n * sizeof(float)); return;
    case block_format::bf16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = fp32_to_bf16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case block_format::q8_0: quantize_q8_0(x, n, dst); return;
    default:
      throw error(error_category::unsupported,
                  "weight conversion to " + std::string(to_string(f)) + " is not implemented");
  }
}

namespace load_detail {

// Copies or converts tensor t into rows [row0, row0 + rows) of m.
inline void fill_rows(const gguf::file& f, const gguf::tensor_info& t, weight_matrix& m, std::size_t row0) {
  const auto rows = static_cast<std::size_t>(t.n_rows());
  if (kernel_format(t.type) == m.format()) {
    std::memcpy(m.row(row0), t.data, rows * m.row_bytes());
    return;
  }
  std::vector<float> tmp(m.cols());
  const std::size_t src_row_bytes = static_cast<std::size_t>(t.n_bytes) / std::max<std::size_t>(rows, 1);
  for (std::size_t r = 0; r < rows; ++r) {
    if (!gguf::dequantize_row(t.type, t.data + r * src_row_bytes, tmp.data(), m.cols())) {
      gguf::dequantize(f, t, nullptr);  // throws `unsupported` naming the tensor
    }
    encode(m.format(), tmp.data(), m.cols(), m.row(row0 + r));
  }
}

inline void check_cols(const gguf::file& f, const gguf::tensor_info& t, block_format fmt, std::size_t cols) {
  if (t.ne[0] != cols) {
    throw error(error_category::model, f.source() + ": tensor '" + t.name + "' has " + std::to_string(t.ne[0]) +
                                           " columns, expected " + std::to_string(cols));
  }
  if (cols % traits(fmt).block_values != 0) {
    throw error(error_category::unsupported, f.source() + ": tensor '" + t.name + "' has " +
                                                 std::to_string(cols) + " columns, not a whole number of " +
                                                 std::string(to_string(fmt)) + " blocks");
  }
}

}  // namespace load_detail

// Rows of the named tensors (same cols) stacked into one matrix; every tensor is converted to the
// format of the first when theirs differ.
inline weight_matrix load_stacked_matrix(const gguf::file& f, const std::vector<std::string>& names,
                                         weight_format w, conversion_log& log) {
  const auto& first = f.tensor(names.front());
  const block_format fmt = choose_format(f, first, w, log);
  const auto cols = static_cast<std::size_t>(first.ne[0]);
  std::size_t rows = 0;
  for (const auto& n : names) {
    const auto& t = f.tensor(n);
    load_detail::check_cols(f, t, fmt, cols);
    rows += static_cast<std::size_t>(t.n_rows());
  }
  weight_matrix m(fmt, rows, cols);
  std::size_t row0 = 0;
  for (const auto& n : names) {
    const auto& t = f.tensor(n);
    if (n != names.front()) {
      conversion_log ignored;
      if (choose_format(f, t, w, ignored) != fmt) log.add(std::string(gguf::to_string(t.type)) + " -> " +
                                                          std::string(to_string(fmt)) + " (stacked with " +
                                                          std::string(gguf::to_string(first.type)) + ")");
    }
    load_detail::fill_rows(f, t, m, row0);
    row0 += static_cast<std::size_t>(t.n_rows());
  }
  return m;
}

inline weight_matrix load_matrix(const gguf::file& f, const std::string& name, weight_format w, conversion_log& log) {
  return load_stacked_matrix(f, std::vector<std::string>{name}, w, log);
}

// The named tensors stacked row-wise, each kept in its own format: consecutive tensors of the same
// format share one matrix (one product), a change of format starts a new part. Nothing is
// converted that would not be converted alone (a Q4_K_M file's Q4_K attn_q/attn_k and Q6_K
// attn_v become two parts).
inline weight_stack load_stack(const gguf::file& f, const std::vector<std::string>& names, weight_format w,
                               conversion_log& log) {
  weight_stack s;
  std::vector<std::string> run;
  std::optional<block_format> run_format;
  for (const auto& n : names) {
    conversion_log probe;
    const block_format fmt = choose_format(f, f.tensor(n), w, probe);
    if (run_format && fmt != *run_format) {
      s.parts.push_back(load_stacked_matrix(f, run, w, log));
      run.clear();
    }
    run.push_back(n);
    run_format = fmt;
  }
  if (!run.empty()) s.parts.push_back(load_stacked_matrix(f, run, w, log));
  return s;
}

}  // namespace specdec::cpu
