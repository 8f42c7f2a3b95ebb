// specdec::error: the one exception type of the library.
// Set-up and I/O failures (bad file, unsupported model, bad option) throw it with a category and a
// message that names the file, tensor, key or flag at fault. The per-token path never throws; it
// validates at entry and uses SPECDEC_ASSERT (debug builds only) afterwards.
#pragma once

#include <cassert>
#include <stdexcept>
#include <string>
#include <string_view>

namespace specdec {

enum class error_category {
  io,                // a file cannot be opened, mapped or read
  format,            // a file is malformed (bad magic, truncated, out-of-range offsets, ...)
  unsupported,       // well-formed input that this build does not handle (a version, a type, an arch)
  missing_key,       // a required metadata key is absent
  type_mismatch,     // a metadata key holds a value of the wrong type
  invalid_argument,  // a caller-provided option or value is out of range
  model,             // a model's tensors or hyper-parameters are inconsistent
  capacity,          // a fixed capacity (context length, cache size) would be exceeded
};

constexpr std::string_view to_string(error_category c) noexcept {
  switch (c) {
    case error_category::io: return "io";
    case error_category::format: return "format";
    case error_category::unsupported: return "unsupported";
    case error_category::missing_key: return "missing key";
    case error_category::type_mismatch: return "type mismatch";
    case error_category::invalid_argument: return "invalid argument";
    case error_category::model: return "model";
    case error_category::capacity: return "capacity";
  }
  return "unknown";
}

class error : public std::runtime_error {
 public:
  error(error_category category, const std::string& message)
      : std::runtime_error(message), category_(category) {}

  [[nodiscard]] error_category category() const noexcept { return category_; }

 private:
  error_category category_;
};

}  // namespace specdec

// Checks an invariant that validation at entry already guarantees; compiled out under NDEBUG.
#define SPECDEC_ASSERT(cond) assert(cond)
