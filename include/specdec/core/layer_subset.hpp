// layer_subset: a layered model seen through a fixed subset of its layers, as a sequence_model of its
// own: every forward runs only those layers (embedding, final norm and head always run). This is the
// draft model of self-speculation (DySpec --draft-layers): no second model, the target's own early
// layers propose. Its sequences are sequences of the wrapped model, so they count against its
// max_sequences(), and since they only ever run the subset, their K/V is complete for every layer
// they run (no layer is read that a row skipped).
#pragma once

#include <specdec/concepts/sequence_model.hpp>
#include <specdec/error.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace specdec {

// layers: non-empty, ascending, distinct, each in [0, n_layers). Throws invalid_argument naming the problem.
inline void check_layer_subset(std::span<const std::int32_t> layers, std::int32_t n_layers) {
  if (layers.empty()) throw error(error_category::invalid_argument, "layer subset: no layers given");
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto l = layers[i];
    if (l < 0 || l >= n_layers) {
      throw error(error_category::invalid_argument, "layer subset: layer " + std::to_string(l) + " outside [0, " +
                                                        std::to_string(n_layers) + ")");
    }
    if (i > 0 && l <= layers[i - 1]) {
      throw error(error_category::invalid_argument, "layer subset: layers must be ascending and distinct");
    }
  }
}

template <layered_sequence_model Model>
class layer_subset {
 public:
  // layers: ascending, distinct, each in [0, n_layers). Throws invalid_argument naming the problem.
  layer_subset(Model& m, std::vector<std::int32_t> layers) : m_(m), layers_(std::move(layers)) {
    check_layer_subset(layers_, m.n_layers());
  }

  [[nodiscard]] std::int32_t n_vocab() const { return m_.n_vocab(); }
  [[nodiscard]] std::int32_t n_ctx() const { return m_.n_ctx(); }
  [[nodiscard]] std::int32_t max_sequences() const { return m_.max_sequences(); }
  [[nodiscard]] std::span<const std::int32_t> layers() const noexcept { return layers_; }
  seq_id create_sequence() { return m_.create_sequence(); }
  void free_sequence(seq_id s) { m_.free_sequence(s); }
  [[nodiscard]] std::int32_t n_past(seq_id s) const { return m_.n_past(s); }
  [[nodiscard]] std::int32_t n_pending(seq_id s) const { return m_.n_pending(s); }
  batch_logits forward(const forward_batch& b) { return m_.forward(b, layers_); }
  void commit(seq_id s, std::span<const std::int32_t> rows) { m_.commit(s, rows); }
  void truncate(seq_id s, std::int32_t n) { m_.truncate(s, n); }

 private:
  Model& m_;
  std::vector<std::int32_t> layers_;
};

// "0-7" / "0,1,2,10-12" -> ascending layer list; "first:N" is 0..N-1. Throws invalid_argument.
inline std::vector<std::int32_t> parse_layer_list(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return error(error_category::invalid_argument, "layer list '" + text + "': " + why);
  };
  auto number = [&](const std::string& s) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 6) throw bad("'" + s + "' is not a layer number");
    return static_cast<std::int32_t>(std::stol(s));
  };
  std::vector<std::int32_t> out;
  if (text.rfind("first:", 0) == 0) {
    const auto n = number(text.substr(6));
    if (n < 1) throw bad("first:N needs N >= 1");
    for (std::int32_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const std::string part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto dash = part.find('-');
    if (dash == std::string::npos) {
      out.push_back(number(part));
    } else {
      const auto a = number(part.substr(0, dash)), b = number(part.substr(dash + 1));
      if (b < a) throw bad("range " + part + " runs backwards");
      for (std::int32_t i = a; i <= b; ++i) out.push_back(i);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i] <= out[i - 1]) throw bad("layers must be ascending and distinct");
  }
  return out;
}

}  // namespace specdec
