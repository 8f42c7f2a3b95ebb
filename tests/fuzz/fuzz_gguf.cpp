// libFuzzer target for the GGUF reader: parse arbitrary bytes, then touch what a loader would
// (metadata accessors, config, dequantization of every tensor, the PPD artifact checks). Only specdec::error may escape
// the parser; ASan/UBSan catch the rest. Built by scripts/fuzz.sh with clang.
#include <specdec/drafters/ppd_file.hpp>
#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/model/llama_config.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace gguf = specdec::gguf;
  std::vector<std::byte> bytes(size);
  if (size > 0) std::memcpy(bytes.data(), data, size);
  try {
    const auto f = gguf::file::from_bytes(std::move(bytes), "fuzz.gguf");
    for (const auto& [key, value] : f.metadata()) {
      (void)f.get_optional<std::string>(key).has_value();
    }
    (void)specdec::read_llama_config(f);
  } catch (const specdec::error&) {
  }
  try {
    std::vector<std::byte> again(size);
    if (size > 0) std::memcpy(again.data(), data, size);
    (void)specdec::load_ppd(gguf::file::from_bytes(std::move(again), "fuzz.ppd"));
  } catch (const specdec::error&) {
  }
  try {
    std::vector<std::byte> again(size);
    if (size > 0) std::memcpy(again.data(), data, size);
    const auto f = gguf::file::from_bytes(std::move(again), "fuzz.gguf");
    std::vector<float> out;
    for (const auto& t : f.tensors()) {
      if (!gguf::can_dequantize(t.type) || t.n_elements > (1u << 20)) continue;
      out.resize(static_cast<std::size_t>(t.n_elements));
      gguf::dequantize(f, t, out.data());
    }
  } catch (const specdec::error&) {
  }
  return 0;
}
