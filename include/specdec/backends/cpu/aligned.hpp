// Cache-line aligned storage for the CPU backend's activation and scratch buffers.
// std::allocator (malloc) aligns to 16 bytes, so half of a 32-byte AVX2 load from such a buffer
// straddles two cache lines when the row stride is a multiple of 16 floats; the split loads cost
// fgemm's 8-token block ~20 % on Zen 3 (one core, a scratch harness; docs/benchmarks.md).
// Alignment never changes a result: the same instructions run on the same values.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace specdec::cpu {

inline constexpr std::size_t buffer_alignment = 64;

template <class T>
struct aligned_allocator {
  using value_type = T;
  aligned_allocator() noexcept = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U>&) noexcept {}
  template <class U>
  struct rebind {
    using other = aligned_allocator<U>;
  };

  [[nodiscard]] T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{buffer_alignment}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{buffer_alignment}); }

  template <class U>
  bool operator==(const aligned_allocator<U>&) const noexcept { return true; }
};

template <class T>
using aligned_vector = std::vector<T, aligned_allocator<T>>;

}  // namespace specdec::cpu
