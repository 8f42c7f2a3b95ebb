// The forward pass for each --weights value against the float64 NumPy reference
// (tools/reference/llama_ref.py) run on the same weights: the file's own tensors dequantized
// (fp32 and auto, which holds them in their GGUF formats), or rebuilt by the gguf package's
// quantizers the way the C++ conversion builds them (q8, bf16). Logits of the first 32 tokens of
// the first reference prompt, one call from an empty cache; the bound is on the relative error
// ||got - want|| / ||want|| of each row, and the top token:
//   fp32, bf16,  median 5e-5, worst 1e-4: fp32 arithmetic on exactly the reference's weights.
//   auto and q8  Measured (AVX2): median 0.9-1.5e-6, worst 4.1e-6 (bf16) to 1.1e-5 (q8); the bounds
//   with f32     leave 10x for other ISAs' orders. auto with f32 activations must moreover give the
//   activations  fp32 path's logits bit for bit.
//   auto, q8     int8 activations (per 32 values, step max|x| / 127). SmolLM2's residual stream has
//                outlier channels; a 32-value block holding one quantizes its neighbours coarsely, and
//                rounding flips there make the logits sensitive even to the fp32 rounding of the
//                code around the products (two builds of the same source differ by ~1 % at a row).
//                Measured: median 0.03-0.05, worst 0.13-0.25 over 32 rows, 30-31 of 32 top tokens
//                equal. Bounds: median 0.08, worst 0.4, top token equal at >= 7/8 of the rows —
//                what a wrong block, scale or nibble order (errors of order 1) cannot meet.
//   auto, f32,   --kv-type f16 / bf16: each cached K/V value rounded to 11 / 8 significant bits
//   16-bit KV    (relative error <= 2^-11 = 4.9e-4 / 2^-8 = 3.9e-3 per value). Measured (AVX-512):
//                f16 median 5.7e-4, worst 4.8e-3; bf16 median 4.2e-3, worst 1.2e-2; 32 of 32 top
//                tokens equal. Bounds ~3.5x the measured: f16 2e-3 / 1.5e-2, bf16 1.5e-2 / 4e-2.
#include "model_fixture.hpp"
#include "../gguf/test_support.hpp"

#include "../numerics.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

using specdec::step_batch;
using specdec::token_id;

using specdec::test::relative_error;

namespace {

}  // namespace

TEST_CASE("forward logits per --weights value match the reference on the same weights", "[cpu][slow]") {
  using specdec::cpu::weight_format;
  const auto ref = specdec::test::read_json(specdec::test::fixture("forward/forward_reference.json"));
  const auto n_vocab = ref["n_vocab"].get<std::size_t>();
  const auto& first = ref["prompts"][0];
  REQUIRE(ref.contains("weights"));
  const std::size_t n = ref["weights"]["q8"]["n_tokens"].get<std::size_t>();
  const auto full = first["full_prompt_tokens"].get<std::vector<token_id>>();
  const std::vector<token_id> tokens(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));

  using specdec::cpu::activation_format;
  using specdec::cpu::kv_format;
  struct format_case {
    weight_format weights;
    activation_format activations;
    std::string logits_file;
    double median, worst;
    kv_format kv = kv_format::f32;
  };
  const std::string file_logits = first["logits_file"].get<std::string>();
  const std::string q8_logits = ref["weights"]["q8"]["logits_file"].get<std::string>();
  const format_case cases[] = {
      {weight_format::fp32, activation_format::f32, file_logits, 5e-5, 1e-4},
      {weight_format::bf16, activation_format::f32, ref["weights"]["bf16"]["logits_file"].get<std::string>(), 5e-5, 1e-4},
      {weight_format::automatic, activation_format::f32, file_logits, 5e-5, 1e-4},
      {weight_format::q8, activation_format::f32, q8_logits, 5e-5, 1e-4},
      {weight_format::automatic, activation_format::int8, file_logits, 0.08, 0.4},
      {weight_format::q8, activation_format::int8, q8_logits, 0.08, 0.4},
      {weight_format::automatic, activation_format::f32, file_logits, 2e-3, 1.5e-2, kv_format::f16},
      {weight_format::automatic, activation_format::f32, file_logits, 1.5e-2, 4e-2, kv_format::bf16},
  };
  std::vector<float> fp32_logits;  // the fp32 path's own output, for the bit-for-bit check below
  for (const auto& c : cases) {
    INFO("--weights " << to_string(c.weights) << " --activations " << to_string(c.activations) << " --kv-type "
                      << to_string(c.kv));
    const auto want = specdec::test::read_f32(specdec::test::fixture(c.logits_file));
    REQUIRE(want.size() >= n * n_vocab);
    specdec::cpu::llama_cpu_options opt{2, 256, 64};
    opt.weights = c.weights;
    opt.activations = c.activations;
    opt.kv_type = c.kv;
    specdec::cpu::llama_cpu model(SPECDEC_TEST_MODEL, opt);
    specdec::sequence_view<specdec::cpu::llama_cpu> m(model);
    const auto l = m.forward(step_batch::chain(tokens, 0));
    const std::span<const float> all(l.data, static_cast<std::size_t>(l.n_rows) * n_vocab);
    if (c.weights == weight_format::fp32) fp32_logits.assign(all.begin(), all.end());
    // The file's own blocks widened in registers (fgemm.hpp) against the same blocks dequantized
    // at load by gguf/dequantize.hpp: the same values, the same sums, so the same bits.
    if (c.weights == weight_format::automatic && c.activations == activation_format::f32 && c.kv == kv_format::f32) {
      REQUIRE(fp32_logits.size() == all.size());
      CHECK(std::equal(all.begin(), all.end(), fp32_logits.begin()));
    }
    std::vector<double> errors;
    std::size_t same_top = 0;
    for (std::int32_t i = 0; i < l.n_rows; ++i) {
      const std::span<const float> w(want.data() + static_cast<std::size_t>(i) * n_vocab, n_vocab);
      errors.push_back(relative_error(l.row(i), w));
      same_top += specdec::test::argmax(l.row(i)) == specdec::test::argmax(w) ? 1 : 0;
    }
    std::sort(errors.begin(), errors.end());
    const double median = errors[errors.size() / 2], worst = errors.back();
    CHECK(worst < c.worst);
    CHECK(median < c.median);
    CHECK(same_top >= errors.size() * 7 / 8);
    // A 16-bit cache really rounds: its error is well above the fp32 path's (~1e-6).
    if (c.kv != kv_format::f32) CHECK(median > 1e-4);
    WARN("--weights " << to_string(c.weights) << " --activations " << to_string(c.activations) << " --kv-type "
                      << to_string(c.kv) << ": relative error over " << l.n_rows << " positions: median "
                      << median << " (bound " << c.median << "), worst " << worst << " (bound " << c.worst
                      << "); same top token at " << same_top << "; " << model.weight_bytes() / 1e6 << " MB of weights");
  }
}
