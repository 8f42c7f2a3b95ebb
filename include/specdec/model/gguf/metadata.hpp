// GGUF metadata values (every type of the format, nested arrays included) and typed access.
// Integer requests accept any integer value type whose value fits the requested C++ type, and
// floating requests accept f32 or f64, because converters disagree on widths (u32 vs u64 counts).
// Everything else is a type_mismatch error naming the key.
#pragma once

#include <specdec/error.hpp>
#include <specdec/model/gguf/format.hpp>

#include <concepts>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace specdec::gguf {

struct metadata_value;

// An array: every item has the same type (element_type); items may themselves be arrays.
struct metadata_array {
  value_type element_type = value_type::u8;
  std::vector<metadata_value> items;
};

struct metadata_value {
  using storage = std::variant<std::uint8_t, std::int8_t, std::uint16_t, std::int16_t, std::uint32_t,
                               std::int32_t, float, bool, std::string, metadata_array, std::uint64_t,
                               std::int64_t, double>;
  // The variant's index equals the GGUF value_type code.
  storage value;

  [[nodiscard]] value_type type() const noexcept { return static_cast<value_type>(value.index()); }
};

namespace detail {

template <class T>
inline constexpr bool is_plain_integer = std::is_integral_v<T> && !std::is_same_v<T, bool>;

template <class T>
constexpr std::string_view requested_name() {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, std::string>) return "string";
  else if constexpr (std::is_floating_point_v<T>) return "floating-point number";
  else if constexpr (std::is_signed_v<T>) return "signed integer";
  else return "unsigned integer";
}

// Converts a scalar to T; returns false (and leaves out untouched) when the type or range is wrong.
template <class T>
bool convert_scalar(const metadata_value& v, T& out) {
  return std::visit(
      [&out](const auto& x) -> bool {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if constexpr (std::is_same_v<X, std::string>) {
            out = x;
            return true;
          }
          return false;
        } else if constexpr (std::is_same_v<T, bool>) {
          if constexpr (std::is_same_v<X, bool>) {
            out = x;
            return true;
          }
          return false;
        } else if constexpr (std::is_floating_point_v<T>) {
          if constexpr (std::is_same_v<X, float> || std::is_same_v<X, double>) {
            out = static_cast<T>(x);
            return true;
          }
          return false;
        } else if constexpr (is_plain_integer<T>) {
          if constexpr (is_plain_integer<X>) {
            if (!std::in_range<T>(x)) return false;
            out = static_cast<T>(x);
            return true;
          }
          return false;
        } else {
          static_assert(sizeof(T) == 0, "unsupported metadata request type");
          return false;
        }
      },
      v.value);
}

inline std::string describe(const metadata_value& v) {
  if (v.type() == value_type::array) {
    const auto& a = std::get<metadata_array>(v.value);
    return "array of " + std::to_string(a.items.size()) + " " + std::string(to_string(a.element_type));
  }
  return std::string(to_string(v.type()));
}

}  // namespace detail

// Reads a scalar of type T from v; throws type_mismatch naming `key` and `source` on failure.
template <class T>
T metadata_as(const metadata_value& v, std::string_view key, std::string_view source) {
  T out{};
  if (!detail::convert_scalar<T>(v, out)) {
    throw error(error_category::type_mismatch,
                std::string(source) + ": metadata key '" + std::string(key) + "' holds " +
                    detail::describe(v) + ", expected " + std::string(detail::requested_name<T>()) +
                    (v.type() != value_type::array && detail::is_plain_integer<T> ? " in range" : ""));
  }
  return out;
}

// Reads an array whose items all convert to T.
template <class T>
std::vector<T> metadata_array_as(const metadata_value& v, std::string_view key, std::string_view source) {
  if (v.type() != value_type::array) {
    throw error(error_category::type_mismatch, std::string(source) + ": metadata key '" +
                                                   std::string(key) + "' holds " + detail::describe(v) +
                                                   ", expected an array");
  }
  const auto& a = std::get<metadata_array>(v.value);
  std::vector<T> out;
  out.reserve(a.items.size());
  for (std::size_t i = 0; i < a.items.size(); ++i) {
    T x{};
    if (!detail::convert_scalar<T>(a.items[i], x)) {
      throw error(error_category::type_mismatch,
                  std::string(source) + ": metadata key '" + std::string(key) + "' item " +
                      std::to_string(i) + " holds " + detail::describe(a.items[i]) + ", expected " +
                      std::string(detail::requested_name<T>()));
    }
    out.push_back(std::move(x));
  }
  return out;
}

}  // namespace specdec::gguf
