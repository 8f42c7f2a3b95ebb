// KV cache of the CPU backend: per layer and kv head, K and V rows for n_ctx slots.
//   k, v: [n_layers, n_head_kv, n_ctx, head_dim]
// Slots [0, n_past) hold committed positions. A forward step of n tokens writes its K/V into slots
// [n_past, n_past + n) (row i of the step -> slot n_past + i); commit(rows) then moves the kept rows
// to slots n_past, n_past + 1, ... in the given order, and the rest is overwritten by the next step.
#pragma once

#include <specdec/error.hpp>

#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace specdec::cpu {

class kv_cache {
 public:
  kv_cache() = default;
  kv_cache(std::int32_t n_layers, std::int32_t n_head_kv, std::int32_t n_ctx, std::int32_t head_dim)
      : n_ctx_(n_ctx), head_dim_(head_dim) {
    const std::array<std::size_t, 4> shape{static_cast<std::size_t>(n_layers), static_cast<std::size_t>(n_head_kv),
                                           static_cast<std::size_t>(n_ctx), static_cast<std::size_t>(head_dim)};
    k_ = xt::zeros<float>(shape);
    v_ = xt::zeros<float>(shape);
  }

  [[nodiscard]] std::int32_t n_ctx() const noexcept { return n_ctx_; }

  // Row of slot `slot` for (layer, kv head): head_dim floats.
  [[nodiscard]] float* k(std::int32_t layer, std::int32_t head, std::int32_t slot) noexcept {
    return &k_(layer, head, slot, 0);
  }
  [[nodiscard]] float* v(std::int32_t layer, std::int32_t head, std::int32_t slot) noexcept {
    return &v_(layer, head, slot, 0);
  }
  [[nodiscard]] const float* k(std::int32_t layer, std::int32_t head, std::int32_t slot) const noexcept {
    return &k_(layer, head, slot, 0);
  }
  [[nodiscard]] const float* v(std::int32_t layer, std::int32_t head, std::int32_t slot) const noexcept {
    return &v_(layer, head, slot, 0);
  }

  // Moves step rows `rows` (slot n_past + rows[k]) to slots n_past + k for every layer and head.
  void gather(std::int32_t n_past, std::span<const std::int32_t> rows) {
    const bool increasing = std::is_sorted(rows.begin(), rows.end()) &&
                            std::adjacent_find(rows.begin(), rows.end()) == rows.end();
    const std::size_t row_bytes = static_cast<std::size_t>(head_dim_) * sizeof(float);
    for (auto* t : {&k_, &v_}) {
      for (std::size_t l = 0; l < t->shape(0); ++l) {
        for (std::size_t h = 0; h < t->shape(1); ++h) {
          float* base = &(*t)(l, h, 0, 0);
          if (increasing) {  // rows[k] >= k: sources are never overwritten before they are read
            for (std::size_t k = 0; k < rows.size(); ++k) {
              const auto src = static_cast<std::size_t>(n_past + rows[k]), dst = static_cast<std::size_t>(n_past) + k;
              if (src != dst) std::memcpy(base + dst * head_dim_, base + src * head_dim_, row_bytes);
            }
          } else {
            scratch_.resize(rows.size() * static_cast<std::size_t>(head_dim_));
            for (std::size_t k = 0; k < rows.size(); ++k) {
              std::memcpy(scratch_.data() + k * head_dim_, base + static_cast<std::size_t>(n_past + rows[k]) * head_dim_,
                          row_bytes);
            }
            std::memcpy(base + static_cast<std::size_t>(n_past) * head_dim_, scratch_.data(), rows.size() * row_bytes);
          }
        }
      }
    }
  }

 private:
  std::int32_t n_ctx_ = 0;
  std::int32_t head_dim_ = 0;
  xt::xtensor<float, 4> k_;
  xt::xtensor<float, 4> v_;
  std::vector<float> scratch_;
};

}  // namespace specdec::cpu
