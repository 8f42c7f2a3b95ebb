// Test helper: writes small GGUF images byte by byte, so tests can build valid files and then
// break them in one precise way (a count, a length, an offset, a type).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace specdec::test {

class gguf_builder {
 public:
  struct tensor {
    std::string name;
    std::vector<std::uint64_t> ne;
    std::uint32_t type;
    std::uint64_t offset;
  };

  std::uint32_t version = 3;
  std::uint32_t alignment = 32;
  std::vector<tensor> tensors;
  std::vector<std::byte> kv;  // pre-encoded key/value pairs
  std::uint64_t n_kv = 0;
  std::vector<std::byte> data;  // tensor data section

  template <class T>
  static void put(std::vector<std::byte>& out, T v) {
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out.insert(out.end(), p, p + sizeof(T));
  }
  static void put_string(std::vector<std::byte>& out, const std::string& s) {
    put<std::uint64_t>(out, s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
  }

  void add_u32(const std::string& key, std::uint32_t v) {
    put_string(kv, key);
    put<std::uint32_t>(kv, 4);
    put<std::uint32_t>(kv, v);
    ++n_kv;
  }
  void add_f32(const std::string& key, float v) {
    put_string(kv, key);
    put<std::uint32_t>(kv, 6);
    put<float>(kv, v);
    ++n_kv;
  }
  void add_string(const std::string& key, const std::string& v) {
    put_string(kv, key);
    put<std::uint32_t>(kv, 8);
    put_string(kv, v);
    ++n_kv;
  }

  // Adds an F32 tensor of the given shape, data filled with `fill`, placed after the previous one.
  void add_f32_tensor(const std::string& name, std::vector<std::uint64_t> ne, float fill = 0.0f) {
    std::uint64_t n = 1;
    for (auto d : ne) n *= d;
    while (data.size() % alignment != 0) data.push_back(std::byte{0});
    tensors.push_back({name, std::move(ne), 0, data.size()});
    for (std::uint64_t i = 0; i < n; ++i) put<float>(data, fill);
  }

  [[nodiscard]] std::vector<std::byte> header() const {
    std::vector<std::byte> out;
    put<std::uint32_t>(out, 0x46554747);
    put<std::uint32_t>(out, version);
    put<std::uint64_t>(out, tensors.size());
    put<std::uint64_t>(out, n_kv);
    out.insert(out.end(), kv.begin(), kv.end());
    for (const auto& t : tensors) {
      put_string(out, t.name);
      put<std::uint32_t>(out, static_cast<std::uint32_t>(t.ne.size()));
      for (auto d : t.ne) put<std::uint64_t>(out, d);
      put<std::uint32_t>(out, t.type);
      put<std::uint64_t>(out, t.offset);
    }
    return out;
  }

  [[nodiscard]] std::vector<std::byte> bytes() const {
    std::vector<std::byte> out = header();
    while (out.size() % alignment != 0) out.push_back(std::byte{0});
    out.insert(out.end(), data.begin(), data.end());
    return out;
  }
};

}  // namespace specdec::test
