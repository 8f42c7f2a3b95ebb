// skip_decode on the real default model (30 layers): with nothing skipped it is the model, bit for
// bit; with skipping, the per_set policy decodes a batch of requests of different ages exactly as
// each request alone (the CPU kernels are batch-invariant), and skipping changes the logits.
#include "../cpu/model_fixture.hpp"

#include <specdec/skip/skip_decode.hpp>
#include <specdec/verify/decoder.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include <numeric>
#include <vector>

using namespace specdec;
using namespace specdec::skip;
using specdec::test::bitwise_equal;
using specdec::test::copy_row;
using specdec::test::default_model;

namespace {

const std::vector<token_id> prompt_a = {1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198};
const std::vector<token_id> prompt_b = {1, 4093, 198, 19842, 1326, 253, 1346, 2, 198, 1, 520, 9531, 198};

schedule_options skipping(std::int32_t n_layers) {
  schedule_options o;
  o.n_layers = n_layers;
  o.max_layers = n_layers;
  o.min_layers = 20;
  o.length = 12;
  o.warmup_layers = 1;
  return o;
}

std::vector<token_id> solo(skip_decode<cpu::llama_cpu>& sd, const std::vector<token_id>& prompt, int n) {
  null_drafter d;
  greedy_rule rule;
  generate_options go;
  go.max_new_tokens = n;
  return generate(sd, d, rule, prompt, go).tokens;
}

}  // namespace

TEST_CASE("with min = max = n_layers the wrapper is the model, bit for bit", "[skip]") {
  auto& model = default_model();
  const std::int32_t n = model.n_layers();
  REQUIRE(n == 30);
  schedule_options o;
  o.n_layers = n;
  o.max_layers = o.min_layers = n;
  skip_decode<cpu::llama_cpu> sd(model, layer_schedule(o));

  null_drafter d;
  greedy_rule rule;
  generate_options go;
  go.max_new_tokens = 24;
  const auto plain = generate(model, d, rule, prompt_a, go);
  const auto wrapped = generate(sd, d, rule, prompt_a, go);
  CHECK(wrapped.tokens == plain.tokens);
  CHECK(sd.counters().mean_decode_layers() == Approx(30.0));

  // Logits of a prefill and a decode step, each run directly and through the wrapper.
  const seq_id a = model.create_sequence();
  const seq_id b = sd.create_sequence();
  std::vector<std::int32_t> rows(prompt_a.size());
  std::iota(rows.begin(), rows.end(), 0);
  const auto ra = copy_row(model.forward(forward_batch{{sequence_step::chain(a, prompt_a, 0, logits_request::last)}}).rows, 0);
  const auto rb = copy_row(sd.forward(forward_batch{{sequence_step::chain(b, prompt_a, 0, logits_request::last)}}).rows, 0);
  CHECK(bitwise_equal(ra, rb));
  model.commit(a, rows);
  sd.commit(b, rows);
  const std::vector<token_id> next = {specdec::test::argmax(ra)};
  const auto da = copy_row(model.forward(forward_batch{{sequence_step::chain(a, next, 16)}}).rows, 0);
  const auto db = copy_row(sd.forward(forward_batch{{sequence_step::chain(b, next, 16)}}).rows, 0);
  CHECK(bitwise_equal(da, db));
  model.free_sequence(a);
  sd.free_sequence(b);
}

TEST_CASE("skipping changes the logits, and counts the layers it ran", "[skip]") {
  auto& model = default_model();
  skip_decode<cpu::llama_cpu> full(model, layer_schedule::full(30));
  skip_decode<cpu::llama_cpu> skipped(model, layer_schedule(skipping(30)));
  const auto plain = solo(full, prompt_a, 16);
  const auto skip = solo(skipped, prompt_a, 16);
  CHECK(skip.size() == 16);
  // 30 - floor(10 t / 12) for t < 12: 30 30 29 28 27 26 25 25 24 23 22 21 (310), then 20 x 4.
  CHECK(skipped.counters().decode_layer_rows == 310 + 80);
  CHECK(skipped.counters().prefill_layer_rows == 30 * 15);
  // Dropping up to 10 of 30 layers from a model never trained for it: the output changes.
  CHECK(skip != plain);
}

TEST_CASE("per_set policy: a batch of requests of different ages decodes as each one alone", "[skip]") {
  auto& model = default_model();
  skip_decode<cpu::llama_cpu> sd(model, layer_schedule(skipping(30)), skip_decode_options{false, batch_policy::per_set});
  const auto alone_a = solo(sd, prompt_a, 12);
  const auto alone_b = solo(sd, prompt_b, 12);

  null_drafter d;
  // Prefill 4 tokens per step: the 13-token prompt starts decoding one step before the 16-token one.
  decoder<skip_decode<cpu::llama_cpu>, null_drafter, greedy_rule> dec(sd, decoder_options{2, 4});
  request_options ro;
  ro.max_new_tokens = 12;
  const auto ia = dec.add(prompt_a, d, greedy_rule{}, ro);
  dec.add(prompt_b, d, greedy_rule{}, ro);
  sd.reset_counters();
  dec.run();
  for (const auto& r : dec.take_finished()) CHECK(r.tokens == (r.id == ia ? alone_a : alone_b));
  CHECK(sd.counters().backend_forwards > sd.counters().forwards);
}
