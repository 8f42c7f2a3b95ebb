// GGUF on-disk vocabulary: metadata value types, tensor (ggml) types and their block layouts.
// Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (versions 2 and 3 are read).
// Every ggml type id known at the time of writing is listed, so that a file using an exotic type
// still parses (its layout can be validated); dequantize.hpp says which types can be converted.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace specdec::gguf {

inline constexpr std::uint32_t magic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr std::uint32_t default_alignment = 32;

enum class value_type : std::uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

constexpr bool is_known(value_type t) noexcept { return static_cast<std::uint32_t>(t) <= 12; }

constexpr std::string_view to_string(value_type t) noexcept {
  switch (t) {
    case value_type::u8: return "u8";
    case value_type::i8: return "i8";
    case value_type::u16: return "u16";
    case value_type::i16: return "i16";
    case value_type::u32: return "u32";
    case value_type::i32: return "i32";
    case value_type::f32: return "f32";
    case value_type::boolean: return "bool";
    case value_type::string: return "string";
    case value_type::array: return "array";
    case value_type::u64: return "u64";
    case value_type::i64: return "i64";
    case value_type::f64: return "f64";
  }
  return "unknown";
}

// Size in bytes of a scalar value; 0 for string and array (variable size).
constexpr std::uint64_t scalar_size(value_type t) noexcept {
  switch (t) {
    case value_type::u8: case value_type::i8: case value_type::boolean: return 1;
    case value_type::u16: case value_type::i16: return 2;
    case value_type::u32: case value_type::i32: case value_type::f32: return 4;
    case value_type::u64: case value_type::i64: case value_type::f64: return 8;
    case value_type::string: case value_type::array: return 0;
  }
  return 0;
}

enum class ggml_type : std::uint32_t {
  f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
  q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13, q6_k = 14, q8_k = 15,
  iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22,
  iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30,
  tq1_0 = 34, tq2_0 = 35, mxfp4 = 39,
};

// A block of block_size consecutive values along the first dimension occupies type_size bytes.
struct type_traits {
  std::string_view name;
  std::uint32_t block_size;
  std::uint32_t type_size;
};

constexpr std::optional<type_traits> traits(ggml_type t) noexcept {
  switch (t) {
    case ggml_type::f32: return type_traits{"F32", 1, 4};
    case ggml_type::f16: return type_traits{"F16", 1, 2};
    case ggml_type::q4_0: return type_traits{"Q4_0", 32, 18};
    case ggml_type::q4_1: return type_traits{"Q4_1", 32, 20};
    case ggml_type::q5_0: return type_traits{"Q5_0", 32, 22};
    case ggml_type::q5_1: return type_traits{"Q5_1", 32, 24};
    case ggml_type::q8_0: return type_traits{"Q8_0", 32, 34};
    case ggml_type::q8_1: return type_traits{"Q8_1", 32, 36};
    case ggml_type::q2_k: return type_traits{"Q2_K", 256, 84};
    case ggml_type::q3_k: return type_traits{"Q3_K", 256, 110};
    case ggml_type::q4_k: return type_traits{"Q4_K", 256, 144};
    case ggml_type::q5_k: return type_traits{"Q5_K", 256, 176};
    case ggml_type::q6_k: return type_traits{"Q6_K", 256, 210};
    case ggml_type::q8_k: return type_traits{"Q8_K", 256, 292};
    case ggml_type::iq2_xxs: return type_traits{"IQ2_XXS", 256, 66};
    case ggml_type::iq2_xs: return type_traits{"IQ2_XS", 256, 74};
    case ggml_type::iq3_xxs: return type_traits{"IQ3_XXS", 256, 98};
    case ggml_type::iq1_s: return type_traits{"IQ1_S", 256, 50};
    case ggml_type::iq4_nl: return type_traits{"IQ4_NL", 32, 18};
    case ggml_type::iq3_s: return type_traits{"IQ3_S", 256, 110};
    case ggml_type::iq2_s: return type_traits{"IQ2_S", 256, 82};
    case ggml_type::iq4_xs: return type_traits{"IQ4_XS", 256, 136};
    case ggml_type::i8: return type_traits{"I8", 1, 1};
    case ggml_type::i16: return type_traits{"I16", 1, 2};
    case ggml_type::i32: return type_traits{"I32", 1, 4};
    case ggml_type::i64: return type_traits{"I64", 1, 8};
    case ggml_type::f64: return type_traits{"F64", 1, 8};
    case ggml_type::iq1_m: return type_traits{"IQ1_M", 256, 56};
    case ggml_type::bf16: return type_traits{"BF16", 1, 2};
    case ggml_type::tq1_0: return type_traits{"TQ1_0", 256, 54};
    case ggml_type::tq2_0: return type_traits{"TQ2_0", 256, 66};
    case ggml_type::mxfp4: return type_traits{"MXFP4", 32, 17};
  }
  return std::nullopt;
}

constexpr std::string_view to_string(ggml_type t) noexcept {
  const auto tr = traits(t);
  return tr ? tr->name : std::string_view{"unknown"};
}

}  // namespace specdec::gguf
