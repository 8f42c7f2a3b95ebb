// GGUF reader against a file written by the `gguf` Python package (tools/reference/gguf_fixtures.py):
// every metadata value type, nested arrays, tensor infos and alignment; typed access and its errors.
#include "test_support.hpp"

#include <specdec/model/gguf/reader.hpp>

#include <catch2/catch.hpp>

#include <cstring>

using specdec::error;
using specdec::error_category;
namespace gguf = specdec::gguf;

namespace {

gguf::file types_file() { return gguf::file(specdec::test::fixture("types.gguf")); }

std::vector<std::byte> file_bytes(const std::string& path) {
  const auto raw = specdec::test::read_bytes(path);
  std::vector<std::byte> out(raw.size());
  std::memcpy(out.data(), raw.data(), raw.size());
  return out;
}

}  // namespace

TEST_CASE("scalar metadata of every type reads back as the gguf package wrote it", "[gguf]") {
  const auto f = types_file();
  CHECK(f.version() == 3);
  CHECK(f.get<std::uint8_t>("test.u8") == 200);
  CHECK(f.get<std::int8_t>("test.i8") == -100);
  CHECK(f.get<std::uint16_t>("test.u16") == 60000);
  CHECK(f.get<std::int16_t>("test.i16") == -30000);
  CHECK(f.get<std::uint32_t>("test.u32") == 4000000000u);
  CHECK(f.get<std::int32_t>("test.i32") == -2000000000);
  CHECK(f.get<float>("test.f32") == 1.5f);
  CHECK(f.get<bool>("test.bool"));
  CHECK(f.get<std::string>("test.string") == "h\xC3\xA9llo, \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82");
  CHECK(f.get<std::uint64_t>("test.u64") == (std::uint64_t{1} << 63) + 5);
  CHECK(f.get<std::int64_t>("test.i64") == -(std::int64_t{1} << 62));
  CHECK(f.get<double>("test.f64") == 2.718281828459045);
  CHECK(f.find("test.u8")->type() == gguf::value_type::u8);
  CHECK(f.find("test.f64")->type() == gguf::value_type::f64);
  CHECK(f.get<std::string>("general.architecture") == "llama");
}

TEST_CASE("array metadata, including nested arrays", "[gguf]") {
  const auto f = types_file();
  CHECK(f.get_array<std::uint8_t>("test.arr_u8") == std::vector<std::uint8_t>{1, 2, 255});
  CHECK(f.get_array<std::int32_t>("test.arr_i32") == std::vector<std::int32_t>{-1, 0, 7});
  CHECK(f.get_array<float>("test.arr_f32") == std::vector<float>{0.5f, -0.25f});
  CHECK(f.get_array<bool>("test.arr_bool") == std::vector<bool>{true, false, true});
  CHECK(f.get_array<std::string>("test.arr_str") == std::vector<std::string>{"a", "", "\xC3\xBCn\xC3\xAF"});
  const auto* nested = f.find("test.nested");
  REQUIRE(nested != nullptr);
  const auto& outer = std::get<gguf::metadata_array>(nested->value);
  REQUIRE(outer.element_type == gguf::value_type::array);
  REQUIRE(outer.items.size() == 2);
  CHECK(gguf::metadata_array_as<std::int64_t>(outer.items[0], "test.nested[0]", "x") ==
        std::vector<std::int64_t>{1, 2});
  CHECK(gguf::metadata_array_as<std::int64_t>(outer.items[1], "test.nested[1]", "x") ==
        std::vector<std::int64_t>{3});
}

TEST_CASE("integer requests widen and narrow only when the value fits", "[gguf]") {
  const auto f = types_file();
  CHECK(f.get<std::int64_t>("test.u32") == 4000000000);
  CHECK(f.get<std::uint64_t>("test.u8") == 200);
  CHECK(f.get<double>("test.f32") == 1.5);
  CHECK_THROWS_MATCHES(f.get<std::int32_t>("test.u32"), error,
                       Catch::Matchers::Predicate<error>([](const error& e) {
                         return e.category() == error_category::type_mismatch &&
                                std::string(e.what()).find("test.u32") != std::string::npos;
                       }));
  CHECK_THROWS_AS(f.get<std::uint32_t>("test.i8"), error);  // negative into unsigned
}

TEST_CASE("missing keys and wrong types name the key", "[gguf]") {
  const auto f = types_file();
  try {
    (void)f.get<std::uint32_t>("llama.block_count");
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.category() == error_category::missing_key);
    CHECK_THAT(e.what(), Catch::Contains("llama.block_count") && Catch::Contains("types.gguf"));
  }
  try {
    (void)f.get<std::uint32_t>("test.string");
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.category() == error_category::type_mismatch);
    CHECK_THAT(e.what(), Catch::Contains("test.string") && Catch::Contains("string"));
  }
  CHECK_THROWS_AS(f.get_array<std::string>("test.arr_i32"), error);
  CHECK_THROWS_AS(f.get_array<std::int32_t>("test.u8"), error);
  CHECK(f.get_or<std::uint32_t>("no.such.key", 7) == 7);
  CHECK_FALSE(f.get_optional<std::string>("no.such.key").has_value());
}

TEST_CASE("tensor infos: names, shapes, types, aligned data inside the file", "[gguf]") {
  const auto f = types_file();
  const auto expect = specdec::test::read_json(specdec::test::fixture("types.json"));
  CHECK(f.tensors().size() == expect["tensors"].size());
  for (const auto& [name, info] : expect["tensors"].items()) {
    const auto& t = f.tensor(name);
    CHECK(std::string(gguf::to_string(t.type)) == info["type"].get<std::string>());
    CHECK(t.n_dims == info["ne"].size());
    for (std::size_t d = 0; d < t.n_dims; ++d) CHECK(t.ne[d] == info["ne"][d].get<std::uint64_t>());
    CHECK(static_cast<std::uint64_t>(t.data - f.tensors().front().data + static_cast<std::ptrdiff_t>(f.tensors().front().offset)) % f.alignment() == 0);
    CHECK(t.offset + t.n_bytes + f.data_offset() <= f.file_size());
  }
  CHECK(f.find_tensor("nope") == nullptr);
  CHECK_THROWS_AS(f.tensor("nope"), error);
}

TEST_CASE("version 2 files (same little-endian layout) parse; from_bytes matches the mapped file", "[gguf]") {
  auto bytes = file_bytes(specdec::test::fixture("types.gguf"));
  const auto v3 = gguf::file::from_bytes(bytes, "types-v3");
  CHECK(v3.metadata().size() == types_file().metadata().size());
  bytes[4] = std::byte{2};
  const auto v2 = gguf::file::from_bytes(bytes, "types-v2");
  CHECK(v2.version() == 2);
  CHECK(v2.get<std::uint64_t>("test.u64") == (std::uint64_t{1} << 63) + 5);
  CHECK(v2.tensors().size() == v3.tensors().size());
}

TEST_CASE("the default model's header", "[gguf]") {
  const gguf::file f(SPECDEC_TEST_MODEL);
  CHECK(f.get<std::string>("general.architecture") == "llama");
  CHECK(f.get<std::string>("tokenizer.ggml.model") == "gpt2");
  CHECK(f.get_array<std::string>("tokenizer.ggml.tokens").size() == 49152);
  CHECK(f.tensors().size() == 272);
  CHECK(f.tensor("token_embd.weight").type == gguf::ggml_type::q8_0);
  CHECK(f.tensor("blk.0.attn_q.weight").type == gguf::ggml_type::q4_1);
}
