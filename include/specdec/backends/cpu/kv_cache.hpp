// Paged KV cache of the CPU backend: every sequence owns a list of pages, allocated when it grows and
// recycled when it shrinks or is freed, so memory follows the tokens actually held, not
// max_sequences x n_ctx.
//   page:   K [n_layers, n_head_kv, page_slots, head_dim] followed by V of the same shape, stored as
//           fp32, fp16 or bf16 (kv_format; the 16-bit formats round each value to nearest even when
//           it is written and widen it exactly when attention reads it)
//   slot s of a sequence lives in page table[s / page_slots] at offset s % page_slots
// Slots [0, n_past) hold committed positions; pending row j (run since the last commit) lives in
// slot n_past + j. commit(rows) moves the kept pending rows to slots n_past, n_past + 1, ...: the rows
// of a root-to-node path increase, so rows[k] >= k and a forward copy never overwrites a source
// before reading it.
// Memory per cached token: 2 x n_layers x n_head_kv x head_dim x 4 bytes in fp32, 2 in fp16 / bf16
// (SmolLM2-135M: 46 / 23 KB; one 64-slot page 2.9 / 1.5 MB).
#pragma once

#include <specdec/backends/cpu/half.hpp>
#include <specdec/error.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace specdec::cpu {

// Element type of the cached K and V (--kv-type).
enum class kv_format : std::uint8_t { f32, f16, bf16 };

constexpr std::string_view to_string(kv_format f) noexcept {
  switch (f) {
    case kv_format::f32: return "f32";
    case kv_format::f16: return "f16";
    case kv_format::bf16: return "bf16";
  }
  return "?";
}
constexpr std::size_t element_bytes(kv_format f) noexcept { return f == kv_format::f32 ? 4 : 2; }

// Parses a --kv-type value; `flag` names the option in the error.
inline kv_format parse_kv_format(std::string_view s, std::string_view flag = "--kv-type") {
  for (auto f : {kv_format::f32, kv_format::f16, kv_format::bf16}) {
    if (s == to_string(f)) return f;
  }
  throw error(error_category::invalid_argument,
              std::string(flag) + ": '" + std::string(s) + "' is not one of f32, f16, bf16");
}

// The format of each C++ element type (float, fp16_bits, bf16_bits).
template <class T>
inline constexpr kv_format kv_format_of = std::is_same_v<T, float>       ? kv_format::f32
                                          : std::is_same_v<T, fp16_bits> ? kv_format::f16
                                                                         : kv_format::bf16;

// fn(T{}) with T the element type of format f: the one place a run-time format picks the code.
template <class Fn>
decltype(auto) visit_kv_element(kv_format f, Fn&& fn) {
  switch (f) {
    case kv_format::f16: return fn(fp16_bits{});
    case kv_format::bf16: return fn(bf16_bits{});
    case kv_format::f32: break;
  }
  return fn(float{});
}

class kv_cache {
 public:
  static constexpr std::int32_t page_slots = 64;

  kv_cache() = default;
  // max_slots: slots the pool may hold over all sequences (a multiple of page_slots is used).
  kv_cache(std::int32_t n_layers, std::int32_t n_head_kv, std::int32_t head_dim, std::int64_t max_slots,
           kv_format format = kv_format::f32)
      : n_layers_(n_layers), n_head_kv_(n_head_kv), head_dim_(head_dim),
        max_pages_((max_slots + page_slots - 1) / page_slots), format_(format) {}

  [[nodiscard]] kv_format format() const noexcept { return format_; }
  // Elements of one K (or V) row block for one (layer, head) inside a page.
  [[nodiscard]] std::size_t head_stride() const noexcept {
    return static_cast<std::size_t>(page_slots) * static_cast<std::size_t>(head_dim_);
  }
  [[nodiscard]] std::size_t page_elements() const noexcept {
    return 2 * static_cast<std::size_t>(n_layers_) * static_cast<std::size_t>(n_head_kv_) * head_stride();
  }
  [[nodiscard]] std::size_t page_bytes() const noexcept { return page_elements() * element_bytes(format_); }
  [[nodiscard]] std::size_t bytes_per_token() const noexcept { return page_bytes() / page_slots; }
  [[nodiscard]] std::size_t bytes_allocated() const noexcept { return pages_.size() * page_bytes(); }
  [[nodiscard]] std::int64_t pages_in_use() const noexcept {
    return static_cast<std::int64_t>(pages_.size() - free_.size());
  }
  [[nodiscard]] std::int64_t max_pages() const noexcept { return max_pages_; }

  // A sequence's page table.
  struct table {
    std::vector<std::int32_t> pages;
    [[nodiscard]] std::int32_t capacity() const noexcept {
      return static_cast<std::int32_t>(pages.size()) * page_slots;
    }
  };

  // Pages a table needs to hold `slots` slots, beyond those it has.
  [[nodiscard]] static std::int64_t pages_needed(const table& t, std::int64_t slots) noexcept {
    const std::int64_t want = (slots + page_slots - 1) / page_slots;
    return want > static_cast<std::int64_t>(t.pages.size()) ? want - static_cast<std::int64_t>(t.pages.size()) : 0;
  }
  [[nodiscard]] std::int64_t pages_available() const noexcept { return max_pages_ - pages_in_use(); }

  // Grows t to hold `slots` slots. The caller checked pages_available() first, so that a forward
  // fails before any state changes.
  void reserve(table& t, std::int64_t slots) {
    while (t.capacity() < slots) {
      SPECDEC_ASSERT(pages_available() > 0);
      if (!free_.empty()) {
        t.pages.push_back(free_.back());
        free_.pop_back();
      } else {
        pages_.emplace_back(allocate_page());
        t.pages.push_back(static_cast<std::int32_t>(pages_.size() - 1));
      }
    }
  }

  // Returns the pages past `slots` slots to the pool.
  void shrink(table& t, std::int64_t slots) {
    const auto keep = static_cast<std::size_t>((slots + page_slots - 1) / page_slots);
    while (t.pages.size() > keep) {
      free_.push_back(t.pages.back());
      t.pages.pop_back();
    }
  }

  // The K (V) row of a slot as T, whose kv_format_of must be format().
  template <class T>
  [[nodiscard]] const T* k(const table& t, std::int32_t layer, std::int32_t head, std::int32_t slot) const noexcept {
    return typed<T>(row(t, 0, layer, head, slot));
  }
  template <class T>
  [[nodiscard]] const T* v(const table& t, std::int32_t layer, std::int32_t head, std::int32_t slot) const noexcept {
    return typed<T>(row(t, 1, layer, head, slot));
  }

  // Writes a slot's K and V rows (head_dim floats each), rounded to the cache's format.
  void store(const table& t, std::int32_t layer, std::int32_t head, std::int32_t slot, const float* k,
             const float* v) const noexcept {
    const auto hd = static_cast<std::size_t>(head_dim_);
    visit_kv_element(format_, [&](auto tag) {
      using T = decltype(tag);
      store_as(k, typed<T>(row(t, 0, layer, head, slot)), hd);
      store_as(v, typed<T>(row(t, 1, layer, head, slot)), hd);
    });
  }
  // Sets a slot's K and V rows to zero (all-zero bits are +0 in every format).
  void clear(const table& t, std::int32_t layer, std::int32_t head, std::int32_t slot) const noexcept {
    const std::size_t bytes = static_cast<std::size_t>(head_dim_) * element_bytes(format_);
    std::memset(row(t, 0, layer, head, slot), 0, bytes);
    std::memset(row(t, 1, layer, head, slot), 0, bytes);
  }

  // Moves slots from + rows[k] to slots from + k, for every layer, head, K and V. rows increase.
  void gather(const table& t, std::int32_t from, std::span<const std::int32_t> rows) const {
    const std::size_t bytes = static_cast<std::size_t>(head_dim_) * element_bytes(format_);
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::int32_t src = from + rows[k], dst = from + static_cast<std::int32_t>(k);
      SPECDEC_ASSERT(src >= dst);
      if (src == dst) continue;
      for (int kv = 0; kv < 2; ++kv) {
        for (std::int32_t l = 0; l < n_layers_; ++l) {
          for (std::int32_t h = 0; h < n_head_kv_; ++h) std::memcpy(row(t, kv, l, h, dst), row(t, kv, l, h, src), bytes);
        }
      }
    }
  }

 private:
  struct free_deleter {
    void operator()(std::byte* p) const noexcept { std::free(p); }
  };
  using page_ptr = std::unique_ptr<std::byte[], free_deleter>;

  template <class T>
  [[nodiscard]] T* typed(std::byte* p) const noexcept {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, fp16_bits> || std::is_same_v<T, bf16_bits>,
                  "kv_cache rows are float, fp16_bits or bf16_bits");
    SPECDEC_ASSERT(kv_format_of<T> == format_);
    return reinterpret_cast<T*>(p);
  }

  [[nodiscard]] page_ptr allocate_page() const {
    const std::size_t bytes = (page_bytes() + 63) / 64 * 64;
    auto* p = static_cast<std::byte*>(std::aligned_alloc(64, bytes));
    if (p == nullptr) {
      throw error(error_category::capacity, "kv_cache: out of memory allocating a " + std::to_string(bytes) + "-byte page");
    }
    std::memset(p, 0, bytes);
    return page_ptr(p);
  }

  [[nodiscard]] std::byte* row(const table& t, int kv, std::int32_t layer, std::int32_t head, std::int32_t slot) const noexcept {
    std::byte* page = pages_[static_cast<std::size_t>(t.pages[static_cast<std::size_t>(slot / page_slots)])].get();
    const std::size_t block = (static_cast<std::size_t>(kv) * static_cast<std::size_t>(n_layers_) + static_cast<std::size_t>(layer)) *
                                  static_cast<std::size_t>(n_head_kv_) +
                              static_cast<std::size_t>(head);
    return page + (block * head_stride() + static_cast<std::size_t>(slot % page_slots) * static_cast<std::size_t>(head_dim_)) *
                      element_bytes(format_);
  }

  std::int32_t n_layers_ = 0, n_head_kv_ = 0, head_dim_ = 0;
  std::int64_t max_pages_ = 0;
  kv_format format_ = kv_format::f32;
  std::vector<page_ptr> pages_;
  std::vector<std::int32_t> free_;
};

}  // namespace specdec::cpu
