// CPU backend with fp32 weights (--weights fp32) against the independent NumPy reference
// (tools/reference/llama_ref.py): logits of every position of the first 64 prompt tokens within
// relative error 2e-5, identical 32-token greedy continuations, and a layer-subset run against the
// reference with the same layers skipped (bound 1e-4, see below).
#include "model_fixture.hpp"
#include "../gguf/test_support.hpp"

#include "../numerics.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>

using specdec::step_batch;
using specdec::token_id;
using specdec::test::fp32_model;

using specdec::test::relative_error;

namespace {

// fp32 weights and activations against a float64 forward: measured worst 4.0e-6 over every position
// of 4 prompts (30 layers of fp32 rounding); the bound leaves a 5x margin.
constexpr double max_relative_error = 2e-5;
// With layers skipped the residual stream reaches the head in a regime the model was not trained for
// and the fp32 rounding grows: measured worst 1.30e-5 on an AVX2+FMA host and 2.30e-5 on the CI host
// (its wider vector path sums in another order). The bound leaves a 4x margin over the worst.
constexpr double max_relative_error_skipped = 1e-4;

std::vector<token_id> greedy(std::span<const token_id> prompt, int n_new,
                             std::span<const std::int32_t> layers = {}) {
  specdec::sequence_view<specdec::cpu::llama_cpu> m(fp32_model());
  m.reset();
  std::vector<token_id> out;
  auto l = layers.empty() ? m.prefill(prompt) : m.forward(step_batch::chain(prompt, 0), layers);
  if (!layers.empty()) {
    std::vector<std::int32_t> rows(prompt.size());
    std::iota(rows.begin(), rows.end(), 0);
    token_id t = specdec::test::argmax(l.row(l.n_rows - 1));
    m.commit(rows);
    out.push_back(t);
  } else {
    out.push_back(specdec::test::argmax(l.row(0)));
  }
  while (static_cast<int>(out.size()) < n_new) {
    const auto b = step_batch::chain(std::vector<token_id>{out.back()}, m.n_past());
    l = layers.empty() ? m.forward(b) : m.forward(b, layers);
    m.commit(std::vector<std::int32_t>{0});
    out.push_back(specdec::test::argmax(l.row(0)));
  }
  return out;
}

}  // namespace

TEST_CASE("logits match the NumPy reference and greedy continuations are identical", "[cpu][slow]") {
  const auto ref = specdec::test::read_json(specdec::test::fixture("forward/forward_reference.json"));
  const auto n_vocab = ref["n_vocab"].get<std::size_t>();
  REQUIRE(ref["prompts"].size() >= 3);
  specdec::sequence_view<specdec::cpu::llama_cpu> m(fp32_model());
  for (const auto& p : ref["prompts"]) {
    INFO("prompt " << p["id"].get<std::string>());
    const auto tokens = p["tokens"].get<std::vector<token_id>>();
    const auto want = specdec::test::read_f32(specdec::test::fixture(p["logits_file"].get<std::string>()));
    REQUIRE(want.size() == tokens.size() * n_vocab);
    m.reset();
    const auto l = m.forward(step_batch::chain(tokens, 0));
    double worst = 0;
    for (std::int32_t i = 0; i < l.n_rows; ++i) {
      const std::span<const float> w(want.data() + static_cast<std::size_t>(i) * n_vocab, n_vocab);
      worst = std::max(worst, relative_error(l.row(i), w));
    }
    CHECK(worst < max_relative_error);
    WARN("worst relative error over " << l.n_rows << " positions: " << worst);

    const auto full = p["full_prompt_tokens"].get<std::vector<token_id>>();
    const auto want_greedy = p["greedy"].get<std::vector<token_id>>();
    CHECK(greedy(full, static_cast<int>(want_greedy.size())) == want_greedy);
  }
}

TEST_CASE("a layer subset matches the reference run with the same layers skipped", "[cpu][slow]") {
  const auto ref = specdec::test::read_json(specdec::test::fixture("forward/forward_reference.json"));
  const auto& s = ref["skip"];
  const auto n_vocab = ref["n_vocab"].get<std::size_t>();
  const auto layers = s["layers"].get<std::vector<std::int32_t>>();
  const auto tokens = s["tokens"].get<std::vector<token_id>>();
  const auto want = specdec::test::read_f32(specdec::test::fixture(s["logits_file"].get<std::string>()));
  specdec::sequence_view<specdec::cpu::llama_cpu> m(fp32_model());
  m.reset();
  const auto l = m.forward(step_batch::chain(tokens, 0), layers);
  double worst = 0;
  for (std::int32_t i = 0; i < l.n_rows; ++i) {
    worst = std::max(worst, relative_error(l.row(i), {want.data() + static_cast<std::size_t>(i) * n_vocab, n_vocab}));
  }
  CHECK(worst < max_relative_error_skipped);
  WARN("worst relative error over " << l.n_rows << " positions with layers skipped: " << worst);
  const auto want_greedy = s["greedy"].get<std::vector<token_id>>();
  CHECK(greedy(s["full_prompt_tokens"].get<std::vector<token_id>>(), static_cast<int>(want_greedy.size()), layers) ==
        want_greedy);
}
