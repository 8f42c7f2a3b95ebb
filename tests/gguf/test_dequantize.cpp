// Dequantization of every supported type against gguf.quants.dequantize (random blocks), the real
// model's tensors against the same package, and the fp16 conversion against the compiler's _Float16.
#include "test_support.hpp"

#include <specdec/model/gguf/dequantize.hpp>

#include <catch2/catch.hpp>

#include <bit>
#include <cmath>

namespace gguf = specdec::gguf;

namespace {

// Relative agreement with a floor for values near zero; the Python reference may round
// intermediate products differently (d*scale*q versus (d*scale)*q), never by more than a few ulp.
bool close(float got, float want) {
  return std::fabs(got - want) <= 1e-6f * std::max(1.0f, std::fabs(want));
}

}  // namespace

TEST_CASE("every supported type matches the gguf package on random blocks", "[gguf]") {
  const gguf::file f(specdec::test::fixture("types.gguf"));
  const char* names[] = {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K"};
  for (const char* name : names) {
    INFO("type " << name);
    const auto& t = f.tensor(std::string("t.") + name);
    CHECK(std::string(gguf::to_string(t.type)) == name);
    const auto want = specdec::test::read_f32(specdec::test::fixture(std::string("types/") + name + ".f32"));
    const auto got = gguf::dequantize(f, t);
    REQUIRE(got.size() == want.size());
    std::size_t bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) bad += close(got[i], want[i]) ? 0 : 1;
    CHECK(bad == 0);
  }
}

TEST_CASE("the default model's tensors match the gguf package", "[gguf]") {
  const gguf::file f(SPECDEC_TEST_MODEL);
  const auto expect = specdec::test::read_json(specdec::test::fixture("model_tensors.json"));
  REQUIRE(expect.size() == 5);
  for (const auto& [name, info] : expect.items()) {
    INFO("tensor " << name);
    const auto& t = f.tensor(name);
    CHECK(std::string(gguf::to_string(t.type)) == info["type"].get<std::string>());
    const auto got = gguf::dequantize(f, t);
    const auto& first = info["first"];
    for (std::size_t i = 0; i < first.size(); ++i) REQUIRE(close(got[i], first[i].get<float>()));
    double sum = 0, abs_sum = 0;
    for (float x : got) {
      sum += x;
      abs_sum += std::fabs(x);
    }
    CHECK(abs_sum == Approx(info["abs_sum"].get<double>()).epsilon(1e-9));
    CHECK(sum == Approx(info["sum"].get<double>()).margin(1e-6 * abs_sum));
  }
}

TEST_CASE("fp16 conversion is exact for all 65536 bit patterns", "[gguf]") {
#if defined(__FLT16_MAX__)
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float want = static_cast<float>(std::bit_cast<_Float16>(static_cast<std::uint16_t>(h)));
    const float got = gguf::fp16_to_fp32(static_cast<std::uint16_t>(h));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(got));
    } else {
      REQUIRE(std::bit_cast<std::uint32_t>(got) == std::bit_cast<std::uint32_t>(want));
    }
  }
#else
  // Without _Float16, check the landmarks: 1, -2, the smallest subnormal, infinity.
  CHECK(gguf::fp16_to_fp32(0x3C00) == 1.0f);
  CHECK(gguf::fp16_to_fp32(0xC000) == -2.0f);
  CHECK(gguf::fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(std::isinf(gguf::fp16_to_fp32(0x7C00)));
#endif
}

TEST_CASE("types that parse but cannot be converted give an unsupported error naming the tensor", "[gguf]") {
  CHECK_FALSE(gguf::can_dequantize(gguf::ggml_type::iq2_xxs));
  CHECK(gguf::can_dequantize(gguf::ggml_type::q6_k));
  float out[256];
  CHECK_FALSE(gguf::dequantize_row(gguf::ggml_type::q2_k, nullptr, out, 256));
}
