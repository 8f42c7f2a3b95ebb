// Token choice from logits: greedy (temperature 0) or sampling with temperature, top-k and top-p.
// The same code serves plain decoding and the speculative acceptance rules, so both draw from the
// exact same distribution. Ties in greedy choice go to the lowest token id.
#pragma once

#include <specdec/core/types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace specdec {

struct sampling_params {
  float temperature = 0.0f;  // <= 0: greedy
  std::int32_t top_k = 0;    // 0: off
  float top_p = 1.0f;        // 1: off

  [[nodiscard]] bool greedy() const noexcept { return temperature <= 0.0f; }

  void validate() const {
    if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
      throw error(error_category::invalid_argument, "temperature must be a finite number >= 0");
    }
    if (top_k < 0) throw error(error_category::invalid_argument, "top-k must be >= 0");
    if (!(top_p > 0.0f && top_p <= 1.0f)) throw error(error_category::invalid_argument, "top-p must be in (0, 1]");
  }
};

// A distribution over a subset of the vocabulary; probs sum to 1. distribution() sorts it by
// descending probability when top-k or top-p cuts it, and leaves it in vocabulary order otherwise.
struct token_distribution {
  std::vector<token_id> ids;
  std::vector<float> probs;

  [[nodiscard]] float prob(token_id t) const noexcept {
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] == t) return probs[i];
    }
    return 0.0f;
  }
};

inline token_id argmax(std::span<const float> logits) noexcept {
  return static_cast<token_id>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Softmax of logits / temperature restricted by top-k then top-p (the smallest prefix of the sorted
// tokens whose mass reaches top_p). Requires a sampling (non-greedy) configuration. Without top-k
// and top-p nothing is sorted: the order of the ids does not change the distribution, and sorting
// a 152k-token vocabulary cost more than a small model's forward (~10 ms a token).
inline token_distribution distribution(std::span<const float> logits, const sampling_params& p) {
  const auto n = static_cast<std::int32_t>(logits.size());
  std::vector<token_id> order(static_cast<std::size_t>(n));
  for (std::int32_t i = 0; i < n; ++i) order[static_cast<std::size_t>(i)] = i;
  const std::int32_t k = p.top_k > 0 ? std::min(p.top_k, n) : n;
  auto by_logit = [&](token_id a, token_id b) {
    const float la = logits[static_cast<std::size_t>(a)], lb = logits[static_cast<std::size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  double max_logit = 0;
  if (k < n || p.top_p < 1.0f) {
    std::partial_sort(order.begin(), order.begin() + k, order.end(), by_logit);
    order.resize(static_cast<std::size_t>(k));
    max_logit = logits[static_cast<std::size_t>(order[0])];
  } else {
    max_logit = logits[static_cast<std::size_t>(argmax(logits))];
  }

  token_distribution d;
  std::vector<double> w(order.size());
  double total = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    w[i] = std::exp((static_cast<double>(logits[static_cast<std::size_t>(order[i])]) - max_logit) / p.temperature);
    total += w[i];
  }
  double mass = 0;
  d.ids.reserve(order.size());
  d.probs.reserve(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    d.ids.push_back(order[i]);
    d.probs.push_back(static_cast<float>(w[i] / total));
    mass += w[i] / total;
    if (p.top_p < 1.0f && mass >= p.top_p) break;
  }
  float kept = 0;
  for (float x : d.probs) kept += x;
  for (float& x : d.probs) x /= kept;
  return d;
}

// Draws from d with one uniform number from rng.
template <class Rng>
token_id sample(const token_distribution& d, Rng& rng) {
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  const float u = uniform(rng);
  float acc = 0;
  for (std::size_t i = 0; i < d.ids.size(); ++i) {
    acc += d.probs[i];
    if (u < acc) return d.ids[i];
  }
  return d.ids.back();
}

// Greedy or sampled choice of the next token.
template <class Rng>
token_id choose(std::span<const float> logits, const sampling_params& p, Rng& rng) {
  return p.greedy() ? argmax(logits) : sample(distribution(logits, p), rng);
}

}  // namespace specdec
