// layer_schedule: which transformer layers a token runs, as a function of its generation index t
// (tokens generated since prefill), for SkipDecode (arXiv 2307.02628).
//
// The number of active layers decays linearly from max_layers at t = 0 to min_layers at t = length
// and stays there. The lowest `warmup_layers` always run. Which layers make way is a *skip order*:
// the paper skips the lowest layers after the warm-up (order w, w+1, w+2, ...); a calibrated order
// (skip/skip_plan.hpp) drops the layers a measurement says matter least first.
//
//   n = 8, warmup 1, max 8, min 4, length 4, paper's order      layer 0 1 2 3 4 5 6 7
//     t = 0   8 active                                                 x x x x x x x x
//     t = 1   7 active   layer 1 skipped                               x . x x x x x x
//     t = 2   6 active                                                 x . . x x x x x
//     t = 3   5 active                                                 x . . . x x x x
//     t >= 4  4 active                                                 x . . . . x x x
//
// The set of active layers never grows with t (asserted at construction, the error names the step):
// a layer skipped for token t left no K/V there, so a later token running it would read missing K/V.
#pragma once

#include <specdec/error.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace specdec::skip {

struct schedule_options {
  std::int32_t n_layers = 0;       // the model's depth
  std::int32_t max_layers = 0;     // active layers at t = 0
  std::int32_t min_layers = 0;     // active layers from t = length on
  std::int32_t length = 128;       // tokens over which the count decays (the paper: a typical length)
  std::int32_t warmup_layers = 1;  // the lowest layers, never skipped
  // The layers in the order they are dropped; empty = the paper's choice (warmup_layers,
  // warmup_layers + 1, ...). It must list at least n_layers - min_layers distinct layers, none of
  // them a warm-up layer.
  std::vector<std::int32_t> skip_order;

  void validate() const {
    const auto fail = [](const std::string& m) { throw error(error_category::invalid_argument, "layer schedule: " + m); };
    if (n_layers < 1) fail("n_layers " + std::to_string(n_layers) + " must be >= 1");
    if (min_layers < 1 || min_layers > max_layers || max_layers > n_layers) {
      fail("need 1 <= min_layers <= max_layers <= n_layers, got min_layers " + std::to_string(min_layers) +
           ", max_layers " + std::to_string(max_layers) + ", n_layers " + std::to_string(n_layers));
    }
    if (warmup_layers < 0 || warmup_layers >= min_layers) {
      fail("warmup_layers " + std::to_string(warmup_layers) + " must be in [0, min_layers = " +
           std::to_string(min_layers) + ")");
    }
    if (length < 1) fail("length " + std::to_string(length) + " must be >= 1");
    std::vector<bool> seen(static_cast<std::size_t>(n_layers), false);
    for (const std::int32_t l : skip_order) {
      if (l < warmup_layers || l >= n_layers) {
        fail("skip order names layer " + std::to_string(l) + ", outside the skippable layers [" +
             std::to_string(warmup_layers) + ", " + std::to_string(n_layers) + ")");
      }
      if (seen[static_cast<std::size_t>(l)]) fail("skip order names layer " + std::to_string(l) + " twice");
      seen[static_cast<std::size_t>(l)] = true;
    }
    const std::int32_t needed = n_layers - min_layers;
    if (!skip_order.empty() && static_cast<std::int32_t>(skip_order.size()) < needed) {
      fail("skip order lists " + std::to_string(skip_order.size()) + " layers but min_layers " +
           std::to_string(min_layers) + " of " + std::to_string(n_layers) + " needs " + std::to_string(needed));
    }
  }
};

// Active layers from generation index `from` on (until the next phase).
struct schedule_phase {
  std::int64_t from = 0;
  std::vector<std::int32_t> layers;  // ascending
};

class layer_schedule {
 public:
  layer_schedule() = default;

  // The linear schedule of `o` (validated).
  explicit layer_schedule(const schedule_options& o) {
    o.validate();
    std::vector<std::int32_t> order = o.skip_order;
    if (order.empty()) {
      order.resize(static_cast<std::size_t>(o.n_layers - o.warmup_layers));
      std::iota(order.begin(), order.end(), o.warmup_layers);
    }
    std::vector<schedule_phase> phases;
    for (std::int64_t t = 0; t <= o.length; ++t) {
      const std::int32_t n_active = linear_count(o, t);
      if (!phases.empty() && static_cast<std::int32_t>(phases.back().layers.size()) == n_active) continue;
      std::vector<bool> skipped(static_cast<std::size_t>(o.n_layers), false);
      for (std::int32_t k = 0; k < o.n_layers - n_active; ++k) skipped[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = true;
      schedule_phase p;
      p.from = t;
      for (std::int32_t l = 0; l < o.n_layers; ++l) {
        if (!skipped[static_cast<std::size_t>(l)]) p.layers.push_back(l);
      }
      phases.push_back(std::move(p));
    }
    init(o.n_layers, std::move(phases));
  }

  // An explicit plan: phases with increasing `from`, the first at 0, each layer set a subset of the
  // one before. Throws invalid_argument naming the phase (and the layer) that breaks this.
  layer_schedule(std::int32_t n_layers, std::vector<schedule_phase> phases) { init(n_layers, std::move(phases)); }

  // Every layer at every step.
  static layer_schedule full(std::int32_t n_layers) {
    schedule_options o;
    o.n_layers = n_layers;
    o.max_layers = o.min_layers = n_layers;
    o.warmup_layers = 0;
    o.length = 1;
    return layer_schedule(o);
  }

  [[nodiscard]] std::int32_t n_layers() const noexcept { return n_layers_; }
  [[nodiscard]] const std::vector<schedule_phase>& phases() const noexcept { return phases_; }

  // The active layers (ascending) at generation index t >= 0.
  [[nodiscard]] std::span<const std::int32_t> layers_at(std::int64_t t) const noexcept {
    std::size_t k = phases_.size() - 1;
    while (k > 0 && phases_[k].from > t) --k;
    return phases_[k].layers;
  }
  [[nodiscard]] std::int32_t n_active(std::int64_t t) const noexcept {
    return static_cast<std::int32_t>(layers_at(t).size());
  }

  // Full layers per token / scheduled layers per token, averaged over tokens t = 0 .. n_tokens - 1.
  // It counts transformer layers only: embedding, final norm and the head run for every token, so a
  // measured speedup is lower (how much lower depends on the head's share of the compute).
  [[nodiscard]] double theoretical_speedup(std::int64_t n_tokens) const {
    if (n_tokens < 1) {
      throw error(error_category::invalid_argument,
                  "layer schedule: theoretical_speedup needs n_tokens >= 1, got " + std::to_string(n_tokens));
    }
    std::int64_t scheduled = 0;
    for (std::int64_t t = 0; t < n_tokens; ++t) scheduled += n_active(t);
    return static_cast<double>(n_layers_) * static_cast<double>(n_tokens) / static_cast<double>(scheduled);
  }

  // The linear count max - floor((max - min) * t / length) for t < length, min afterwards.
  static std::int32_t linear_count(const schedule_options& o, std::int64_t t) noexcept {
    if (t >= o.length) return o.min_layers;
    return o.max_layers - static_cast<std::int32_t>(static_cast<std::int64_t>(o.max_layers - o.min_layers) * t / o.length);
  }

 private:
  void init(std::int32_t n_layers, std::vector<schedule_phase> phases) {
    const auto fail = [](const std::string& m) { throw error(error_category::invalid_argument, "layer schedule: " + m); };
    if (n_layers < 1) fail("n_layers " + std::to_string(n_layers) + " must be >= 1");
    if (phases.empty() || phases.front().from != 0) fail("the first phase must start at generation index 0");
    for (std::size_t k = 0; k < phases.size(); ++k) {
      const auto& p = phases[k];
      const std::string name = "phase " + std::to_string(k) + " (from t = " + std::to_string(p.from) + ")";
      if (k > 0 && p.from <= phases[k - 1].from) fail(name + " does not start after the phase before");
      if (p.layers.empty()) fail(name + " runs no layer");
      for (std::size_t i = 0; i < p.layers.size(); ++i) {
        if (p.layers[i] < 0 || p.layers[i] >= n_layers || (i > 0 && p.layers[i] <= p.layers[i - 1])) {
          fail(name + ": layers must be ascending indices in [0, " + std::to_string(n_layers) + ")");
        }
      }
      if (k > 0) {
        const auto& before = phases[k - 1].layers;
        for (const std::int32_t l : p.layers) {
          if (!std::binary_search(before.begin(), before.end(), l)) {
            fail(name + " runs layer " + std::to_string(l) + ", skipped from t = " + std::to_string(phases[k - 1].from) +
                 " on: a layer once skipped must stay skipped (its K/V was never written)");
          }
        }
      }
    }
    n_layers_ = n_layers;
    phases_ = std::move(phases);
  }

  std::int32_t n_layers_ = 0;
  std::vector<schedule_phase> phases_{schedule_phase{0, {}}};
};

}  // namespace specdec::skip
