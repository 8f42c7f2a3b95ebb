// gguf::file: parses a GGUF (v2/v3) header, keeps metadata and tensor infos, and points into the
// memory-mapped tensor data. Every size, count and offset is checked against the file before use,
// so a truncated or hostile file ends in a specdec::error naming the file and the problem, never in
// a crash, a hang or a huge allocation.
//
//   [magic u32][version u32][n_tensors u64][n_kv u64]
//   [kv: key string, type u32, value] * n_kv
//   [tensor info: name string, n_dims u32, ne u64 * n_dims, type u32, offset u64] * n_tensors
//   [padding to alignment][tensor data ...]     (offsets are relative to the data section)
#pragma once

#include <specdec/error.hpp>
#include <specdec/model/gguf/format.hpp>
#include <specdec/model/gguf/mapped_file.hpp>
#include <specdec/model/gguf/metadata.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace specdec::gguf {

struct tensor_info {
  std::string name;
  ggml_type type = ggml_type::f32;
  std::uint32_t n_dims = 0;
  std::array<std::uint64_t, 4> ne{1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  std::uint64_t offset = 0;                      // relative to the start of the data section
  std::uint64_t n_elements = 0;
  std::uint64_t n_bytes = 0;
  const std::byte* data = nullptr;  // into the mapping; valid while the owning file lives

  [[nodiscard]] std::uint64_t n_rows() const noexcept { return n_elements / ne[0]; }
};

class file {
 public:
  static constexpr std::uint32_t max_array_depth = 8;
  static constexpr std::uint32_t max_dims = 4;

  // Maps and parses `path`.
  explicit file(const std::string& path) : source_(path), map_(path) { parse(map_.bytes()); }

  // Parses a copy of `bytes` (used by tests and the fuzzer); `name` is used in error messages.
  static file from_bytes(std::vector<std::byte> bytes, std::string name) {
    return file(std::move(bytes), std::move(name));
  }

  file(file&&) noexcept = default;
  file& operator=(file&&) noexcept = default;
  file(const file&) = delete;
  file& operator=(const file&) = delete;

  [[nodiscard]] const std::string& source() const noexcept { return source_; }
  [[nodiscard]] std::uint32_t version() const noexcept { return version_; }
  [[nodiscard]] std::uint32_t alignment() const noexcept { return alignment_; }
  [[nodiscard]] std::uint64_t data_offset() const noexcept { return data_offset_; }
  [[nodiscard]] std::uint64_t file_size() const noexcept { return bytes_.size(); }

  // ---- metadata -------------------------------------------------------------------------------
  [[nodiscard]] const std::map<std::string, metadata_value, std::less<>>& metadata() const noexcept {
    return metadata_;
  }
  [[nodiscard]] const metadata_value* find(std::string_view key) const {
    const auto it = metadata_.find(key);
    return it == metadata_.end() ? nullptr : &it->second;
  }
  [[nodiscard]] bool contains(std::string_view key) const { return find(key) != nullptr; }

  template <class T>
  [[nodiscard]] T get(std::string_view key) const {
    return metadata_as<T>(require(key), key, source_);
  }
  template <class T>
  [[nodiscard]] std::optional<T> get_optional(std::string_view key) const {
    const metadata_value* v = find(key);
    if (v == nullptr) return std::nullopt;
    return metadata_as<T>(*v, key, source_);
  }
  template <class T>
  [[nodiscard]] T get_or(std::string_view key, T fallback) const {
    return get_optional<T>(key).value_or(std::move(fallback));
  }
  template <class T>
  [[nodiscard]] std::vector<T> get_array(std::string_view key) const {
    return metadata_array_as<T>(require(key), key, source_);
  }

  // ---- tensors --------------------------------------------------------------------------------
  [[nodiscard]] const std::vector<tensor_info>& tensors() const noexcept { return tensors_; }
  [[nodiscard]] const tensor_info* find_tensor(std::string_view name) const {
    const auto it = tensor_index_.find(std::string(name));
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
  }
  [[nodiscard]] const tensor_info& tensor(std::string_view name) const {
    const tensor_info* t = find_tensor(name);
    if (t == nullptr) {
      throw error(error_category::model, source_ + ": tensor '" + std::string(name) + "' is missing");
    }
    return *t;
  }

 private:
  file(std::vector<std::byte> owned, std::string name) : source_(std::move(name)), owned_(std::move(owned)) {
    parse(std::span<const std::byte>(owned_));
  }

  const metadata_value& require(std::string_view key) const {
    const metadata_value* v = find(key);
    if (v == nullptr) {
      throw error(error_category::missing_key,
                  source_ + ": required metadata key '" + std::string(key) + "' is missing");
    }
    return *v;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw error(error_category::format, source_ + ": " + what);
  }

  // ---- bounded cursor ---------------------------------------------------------------------------
  [[nodiscard]] std::uint64_t remaining() const noexcept { return bytes_.size() - pos_; }

  void need(std::uint64_t n, const char* what) const {
    if (n > remaining()) {
      fail(std::string("truncated while reading ") + what + " at byte " + std::to_string(pos_) +
           " (need " + std::to_string(n) + ", have " + std::to_string(remaining()) + ")");
    }
  }

  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T x;
    std::memcpy(&x, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }

  std::string read_string(const char* what) {
    const auto n = read<std::uint64_t>(what);
    if (n > remaining()) {
      fail(std::string("string length ") + std::to_string(n) + " of " + what + " at byte " +
           std::to_string(pos_ - 8) + " runs past the end of the file");
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<std::size_t>(n));
    pos_ += n;
    return s;
  }

  metadata_value read_value(value_type t, std::uint32_t depth, const std::string& key) {
    metadata_value v;
    switch (t) {
      case value_type::u8: v.value = read<std::uint8_t>("a u8 value"); break;
      case value_type::i8: v.value = read<std::int8_t>("an i8 value"); break;
      case value_type::u16: v.value = read<std::uint16_t>("a u16 value"); break;
      case value_type::i16: v.value = read<std::int16_t>("an i16 value"); break;
      case value_type::u32: v.value = read<std::uint32_t>("a u32 value"); break;
      case value_type::i32: v.value = read<std::int32_t>("an i32 value"); break;
      case value_type::f32: v.value = read<float>("an f32 value"); break;
      case value_type::u64: v.value = read<std::uint64_t>("a u64 value"); break;
      case value_type::i64: v.value = read<std::int64_t>("an i64 value"); break;
      case value_type::f64: v.value = read<double>("an f64 value"); break;
      case value_type::boolean: {
        const auto b = read<std::uint8_t>("a bool value");
        if (b > 1) fail("metadata key '" + key + "': bool value " + std::to_string(b) + " is not 0 or 1");
        v.value = b == 1;
        break;
      }
      case value_type::string: v.value = read_string("a string value"); break;
      case value_type::array: {
        if (depth >= max_array_depth) fail("metadata key '" + key + "': arrays nested too deeply");
        metadata_array a;
        const auto raw_type = read<std::uint32_t>("an array element type");
        a.element_type = static_cast<value_type>(raw_type);
        if (!is_known(a.element_type)) {
          fail("metadata key '" + key + "': unknown array element type " + std::to_string(raw_type));
        }
        const auto n = read<std::uint64_t>("an array length");
        // Every element takes at least this many bytes, which bounds n by the bytes left.
        const std::uint64_t min_size = a.element_type == value_type::string  ? 8
                                       : a.element_type == value_type::array ? 12
                                                                             : scalar_size(a.element_type);
        if (n > remaining() / min_size) {
          fail("metadata key '" + key + "': array length " + std::to_string(n) +
               " does not fit in the rest of the file");
        }
        a.items.reserve(static_cast<std::size_t>(n));
        for (std::uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(a.element_type, depth + 1, key));
        v.value = std::move(a);
        break;
      }
      default: fail("metadata key '" + key + "': unknown value type " + std::to_string(static_cast<std::uint32_t>(t)));
    }
    return v;
  }

  void parse(std::span<const std::byte> bytes) {
    bytes_ = bytes;
    pos_ = 0;
    if (bytes_.size() < 24) fail("too small to be a GGUF file (" + std::to_string(bytes_.size()) + " bytes)");
    if (read<std::uint32_t>("the magic") != magic) fail("not a GGUF file (bad magic)");
    version_ = read<std::uint32_t>("the version");
    if (version_ != 2 && version_ != 3) {
      if ((version_ & 0xFFFFu) == 0 && version_ != 0) {
        throw error(error_category::unsupported, source_ + ": big-endian GGUF files are not supported");
      }
      throw error(error_category::unsupported,
                  source_ + ": GGUF version " + std::to_string(version_) + " is not supported (2 and 3 are)");
    }
    const auto n_tensors = read<std::uint64_t>("the tensor count");
    const auto n_kv = read<std::uint64_t>("the metadata count");
    // Smallest possible kv: key length (8) + type (4) + 1-byte value; smallest tensor info: 8+4+8+4+8.
    if (n_kv > remaining() / 13) fail("metadata count " + std::to_string(n_kv) + " is absurd for the file size");
    if (n_tensors > remaining() / 32) {
      fail("tensor count " + std::to_string(n_tensors) + " is absurd for the file size");
    }

    for (std::uint64_t i = 0; i < n_kv; ++i) {
      std::string key = read_string("a metadata key");
      const auto raw_type = read<std::uint32_t>("a metadata value type");
      const auto t = static_cast<value_type>(raw_type);
      if (!is_known(t)) fail("metadata key '" + key + "': unknown value type " + std::to_string(raw_type));
      metadata_value v = read_value(t, 0, key);
      if (!metadata_.emplace(key, std::move(v)).second) fail("metadata key '" + key + "' appears twice");
    }

    alignment_ = default_alignment;
    if (const metadata_value* a = find("general.alignment")) {
      const auto al = metadata_as<std::uint32_t>(*a, "general.alignment", source_);
      if (al == 0 || (al & (al - 1)) != 0) {
        fail("general.alignment = " + std::to_string(al) + " is not a power of two");
      }
      alignment_ = al;
    }

    tensors_.reserve(static_cast<std::size_t>(n_tensors));
    for (std::uint64_t i = 0; i < n_tensors; ++i) tensors_.push_back(read_tensor_info());

    data_offset_ = (pos_ + alignment_ - 1) / alignment_ * alignment_;
    if (n_tensors > 0 && data_offset_ > bytes_.size()) fail("the tensor data section is missing (file truncated)");
    check_tensor_layout();
  }

  tensor_info read_tensor_info() {
    tensor_info t;
    t.name = read_string("a tensor name");
    const std::string where = "tensor '" + t.name + "'";
    if (t.name.empty()) fail("a tensor has an empty name");
    t.n_dims = read<std::uint32_t>("a tensor's dimension count");
    if (t.n_dims == 0 || t.n_dims > max_dims) {
      fail(where + ": " + std::to_string(t.n_dims) + " dimensions (1 to 4 are valid)");
    }
    t.n_elements = 1;
    for (std::uint32_t d = 0; d < t.n_dims; ++d) {
      t.ne[d] = read<std::uint64_t>("a tensor dimension");
      if (t.ne[d] == 0) fail(where + ": dimension " + std::to_string(d) + " is 0");
      if (t.ne[d] > (std::uint64_t{1} << 62) / t.n_elements) fail(where + ": element count overflows");
      t.n_elements *= t.ne[d];
    }
    const auto raw_type = read<std::uint32_t>("a tensor type");
    t.type = static_cast<ggml_type>(raw_type);
    const auto tr = traits(t.type);
    if (!tr) {
      throw error(error_category::unsupported,
                  source_ + ": " + where + " has unknown ggml type " + std::to_string(raw_type));
    }
    if (t.ne[0] % tr->block_size != 0) {
      fail(where + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
           std::string(tr->name) + " block size " + std::to_string(tr->block_size));
    }
    t.n_bytes = t.n_elements / tr->block_size * tr->type_size;
    t.offset = read<std::uint64_t>("a tensor offset");
    if (t.offset % alignment_ != 0) {
      fail(where + ": data offset " + std::to_string(t.offset) + " is not aligned to " + std::to_string(alignment_));
    }
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) fail(where + " appears twice");
    return t;
  }

  void check_tensor_layout() {
    const std::uint64_t data_size = bytes_.size() > data_offset_ ? bytes_.size() - data_offset_ : 0;
    std::vector<const tensor_info*> by_offset;
    by_offset.reserve(tensors_.size());
    for (auto& t : tensors_) {
      if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
        fail("tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", " +
             std::to_string(t.offset + t.n_bytes) + ") lies outside the file's data section (" +
             std::to_string(data_size) + " bytes)");
      }
      t.data = bytes_.data() + data_offset_ + t.offset;
      by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const tensor_info* a, const tensor_info* b) { return a->offset < b->offset; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      const tensor_info& prev = *by_offset[i - 1];
      if (by_offset[i]->offset < prev.offset + prev.n_bytes) {
        fail("tensors '" + prev.name + "' and '" + by_offset[i]->name + "' overlap");
      }
    }
  }

  std::string source_;
  mapped_file map_;
  std::vector<std::byte> owned_;
  std::span<const std::byte> bytes_;
  std::size_t pos_ = 0;
  std::uint32_t version_ = 0;
  std::uint32_t alignment_ = default_alignment;
  std::uint64_t data_offset_ = 0;
  std::map<std::string, metadata_value, std::less<>> metadata_;
  std::vector<tensor_info> tensors_;
  std::unordered_map<std::string, std::size_t> tensor_index_;
};

}  // namespace specdec::gguf
