// Malformed GGUF input: every failure is a specdec::error that names the file and the problem,
// never a crash, a hang or a huge allocation. Files are built byte by byte (gguf_builder.hpp).
#include "gguf_builder.hpp"

#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/reader.hpp>

#include <catch2/catch.hpp>

#include <limits>

using specdec::error;
using specdec::error_category;
using specdec::test::gguf_builder;
namespace gguf = specdec::gguf;

namespace {

gguf_builder valid() {
  gguf_builder b;
  b.add_string("general.architecture", "llama");
  b.add_u32("some.count", 3);
  b.add_f32_tensor("a", {8, 2}, 1.0f);
  b.add_f32_tensor("b", {4}, 2.0f);
  return b;
}

// Parses and returns the error; fails the test when parsing succeeds.
error parse_error(const std::vector<std::byte>& bytes) {
  try {
    (void)gguf::file::from_bytes(bytes, "bad.gguf");
  } catch (const error& e) {
    return e;
  }
  FAIL("parsing succeeded");
  return error(error_category::format, "");
}

void expect_error(const std::vector<std::byte>& bytes, error_category cat, const std::string& needle) {
  const error e = parse_error(bytes);
  INFO(e.what());
  CHECK(e.category() == cat);
  CHECK_THAT(e.what(), Catch::Contains("bad.gguf") && Catch::Contains(needle));
}

template <class T>
void poke(std::vector<std::byte>& bytes, std::size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof(T));
}

}  // namespace

TEST_CASE("a valid hand-built file parses", "[gguf]") {
  const auto f = gguf::file::from_bytes(valid().bytes(), "ok.gguf");
  CHECK(f.tensors().size() == 2);
  CHECK(gguf::dequantize(f, f.tensor("b")) == std::vector<float>{2, 2, 2, 2});
}

TEST_CASE("bad magic, versions and byte order", "[gguf]") {
  auto bytes = valid().bytes();
  bytes[0] = std::byte{'X'};
  expect_error(bytes, error_category::format, "bad magic");
  for (std::uint32_t v : {0u, 1u, 4u, 1000u}) {
    auto b = valid();
    b.version = v;
    expect_error(b.bytes(), error_category::unsupported, "version");
  }
  auto be = valid().bytes();
  poke<std::uint32_t>(be, 4, 0x03000000u);
  expect_error(be, error_category::unsupported, "big-endian");
}

TEST_CASE("every truncation of a valid file is a clean error", "[gguf]") {
  const auto bytes = valid().bytes();
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    std::vector<std::byte> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    INFO("length " << n);
    CHECK_THROWS_AS(gguf::file::from_bytes(cut, "cut.gguf"), error);
  }
}

TEST_CASE("absurd counts and lengths are rejected before allocating", "[gguf]") {
  auto bytes = valid().bytes();
  poke<std::uint64_t>(bytes, 8, std::uint64_t{1} << 60);
  expect_error(bytes, error_category::format, "tensor count");
  bytes = valid().bytes();
  poke<std::uint64_t>(bytes, 16, std::numeric_limits<std::uint64_t>::max());
  expect_error(bytes, error_category::format, "metadata count");
  bytes = valid().bytes();
  poke<std::uint64_t>(bytes, 24, std::uint64_t{1} << 62);  // length of the first key
  expect_error(bytes, error_category::format, "runs past the end");

  gguf_builder b;  // an array claiming 2^40 u32 items
  gguf_builder::put_string(b.kv, "big.array");
  gguf_builder::put<std::uint32_t>(b.kv, 9);
  gguf_builder::put<std::uint32_t>(b.kv, 4);
  gguf_builder::put<std::uint64_t>(b.kv, std::uint64_t{1} << 40);
  b.n_kv = 1;
  expect_error(b.bytes(), error_category::format, "big.array");
}

TEST_CASE("unknown value types, bad bools, deep nesting, duplicate keys", "[gguf]") {
  gguf_builder b;
  gguf_builder::put_string(b.kv, "k");
  gguf_builder::put<std::uint32_t>(b.kv, 13);
  gguf_builder::put<std::uint32_t>(b.kv, 0);
  b.n_kv = 1;
  expect_error(b.bytes(), error_category::format, "unknown value type");

  gguf_builder c;
  gguf_builder::put_string(c.kv, "flag");
  gguf_builder::put<std::uint32_t>(c.kv, 7);
  gguf_builder::put<std::uint8_t>(c.kv, 2);
  c.n_kv = 1;
  expect_error(c.bytes(), error_category::format, "bool");

  gguf_builder d;  // 20 levels of arrays, each holding one array
  gguf_builder::put_string(d.kv, "deep");
  gguf_builder::put<std::uint32_t>(d.kv, 9);
  for (int i = 0; i < 20; ++i) {
    gguf_builder::put<std::uint32_t>(d.kv, 9);
    gguf_builder::put<std::uint64_t>(d.kv, 1);
  }
  for (int i = 0; i < 64; ++i) gguf_builder::put<std::uint8_t>(d.kv, 0);
  d.n_kv = 1;
  expect_error(d.bytes(), error_category::format, "nested");

  auto e = valid();
  e.add_u32("some.count", 4);
  expect_error(e.bytes(), error_category::format, "twice");

  auto a = valid();
  a.add_u32("general.alignment", 24);
  expect_error(a.bytes(), error_category::format, "power of two");
}

TEST_CASE("tensor infos: dims, types, offsets, overlap, alignment", "[gguf]") {
  {
    auto b = valid();
    b.tensors[0].ne = {};
    expect_error(b.bytes(), error_category::format, "dimensions");
  }
  {
    auto b = valid();
    b.tensors[0].ne = {1, 1, 1, 1, 1};
    expect_error(b.bytes(), error_category::format, "dimensions");
  }
  {
    auto b = valid();
    b.tensors[0].ne = {8, 0};
    expect_error(b.bytes(), error_category::format, "dimension 1 is 0");
  }
  {
    auto b = valid();
    b.tensors[0].ne = {std::uint64_t{1} << 40, std::uint64_t{1} << 40};
    expect_error(b.bytes(), error_category::format, "overflows");
  }
  {
    auto b = valid();
    b.tensors[0].type = 99;
    expect_error(b.bytes(), error_category::unsupported, "unknown ggml type 99");
  }
  {
    auto b = valid();
    b.tensors[0].type = 2;  // Q4_0 needs rows that are a multiple of 32
    expect_error(b.bytes(), error_category::format, "block size");
  }
  {
    auto b = valid();
    b.tensors[1].offset = 1u << 20;
    expect_error(b.bytes(), error_category::format, "outside");
  }
  {
    auto b = valid();
    b.tensors[1].offset = 0;
    expect_error(b.bytes(), error_category::format, "overlap");
  }
  {
    auto b = valid();
    b.tensors[1].offset += 4;
    expect_error(b.bytes(), error_category::format, "not aligned");
  }
  {
    auto b = valid();
    b.tensors[1].name = "a";
    expect_error(b.bytes(), error_category::format, "twice");
  }
  {
    auto b = valid();  // header complete, data section missing entirely
    const auto h = b.header();
    CHECK_THROWS_AS(gguf::file::from_bytes(h, "bad.gguf"), error);
  }
}

TEST_CASE("a type that parses but cannot be dequantized names the tensor", "[gguf]") {
  gguf_builder b;
  b.tensors.push_back({"blk.0.q2k", {256}, 10, 0});  // Q2_K: 84 bytes per 256 values
  b.data.resize(96);
  const auto f = gguf::file::from_bytes(b.bytes(), "q2k.gguf");
  try {
    (void)gguf::dequantize(f, f.tensor("blk.0.q2k"));
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.category() == error_category::unsupported);
    CHECK_THAT(e.what(), Catch::Contains("blk.0.q2k") && Catch::Contains("Q2_K"));
  }
}

TEST_CASE("files that cannot be opened are io errors naming the path", "[gguf]") {
  try {
    gguf::file f("/nonexistent/model.gguf");
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.category() == error_category::io);
    CHECK_THAT(e.what(), Catch::Contains("/nonexistent/model.gguf"));
  }
  CHECK_THROWS_AS(gguf::file("/tmp"), error);
}
