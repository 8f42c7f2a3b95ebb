// Numerical comparisons shared by the tests that check logits against a reference.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

namespace specdec::test {

// ||got - want|| / ||want|| over one row (L2, in double).
inline double relative_error(std::span<const float> got, std::span<const float> want) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

}  // namespace specdec::test
