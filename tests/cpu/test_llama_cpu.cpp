// CPU backend properties that need no reference: tree steps equal their paths run alone (bit for
// bit), commit of a non-contiguous path equals a fresh run of that path, chunking does not change
// logits, the layer-list form with all layers equals the normal form, and bad calls are clean errors.
#include "model_fixture.hpp"

#include <specdec/concepts/forward_step.hpp>
#include <specdec/concepts/sequence_model.hpp>

#include <catch2/catch.hpp>

#include <numeric>
#include <random>

using specdec::error;
using specdec::error_category;
using specdec::step_batch;
using specdec::token_id;
using specdec::test::bitwise_equal;
using specdec::test::copy_row;
using specdec::test::default_model;

namespace {

const std::vector<token_id> prompt = {1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198};

std::vector<std::int32_t> iota_rows(std::size_t n) {
  std::vector<std::int32_t> r(n);
  std::iota(r.begin(), r.end(), 0);
  return r;
}

// Logits of the last token of prompt + path, computed as one plain sequence after prefill.
std::vector<float> path_logits(const std::vector<token_id>& path) {
  specdec::sequence_view<specdec::cpu::llama_cpu> m(default_model());
  m.reset();
  (void)m.prefill(prompt);
  const auto l = m.forward(step_batch::chain(path, m.n_past()));
  return copy_row(l, l.n_rows - 1);
}

}  // namespace

TEST_CASE("llama_cpu has every capability of the boundary; one sequence of it is a forward_step", "[cpu]") {
  STATIC_REQUIRE(specdec::layered_sequence_model<specdec::cpu::llama_cpu>);
  STATIC_REQUIRE(specdec::embedding_input_model<specdec::cpu::llama_cpu>);
  STATIC_REQUIRE(specdec::layered_forward_step<specdec::sequence_view<specdec::cpu::llama_cpu>>);
}

TEST_CASE("tree step logits equal each root-to-node path run as a plain sequence, bit for bit", "[cpu]") {
  specdec::sequence_view<specdec::cpu::llama_cpu> m(default_model());
  // A 14-node tree with several branches and depths up to 5.
  const std::vector<std::int32_t> parent = {-1, 0, 0, 1, 1, 2, 3, 3, 6, 0, 9, 10, 11, 5};
  std::mt19937 rng(42);
  std::vector<token_id> tokens(parent.size());
  for (auto& t : tokens) t = static_cast<token_id>(rng() % 49152);
  m.reset();
  (void)m.prefill(prompt);
  const auto tree = m.forward(step_batch::tree(tokens, parent, m.n_past()));
  std::vector<std::vector<float>> rows;
  for (std::int32_t i = 0; i < tree.n_rows; ++i) rows.push_back(copy_row(tree, i));

  for (std::size_t i = 0; i < parent.size(); ++i) {
    std::vector<token_id> path;
    for (auto j = static_cast<std::int32_t>(i); j >= 0; j = parent[static_cast<std::size_t>(j)]) {
      path.insert(path.begin(), tokens[static_cast<std::size_t>(j)]);
    }
    INFO("node " << i << ", depth " << path.size() - 1);
    CHECK(bitwise_equal(rows[i], path_logits(path)));
  }
}

TEST_CASE("commit of a non-contiguous accepted path equals a fresh run of that path", "[cpu]") {
  specdec::sequence_view<specdec::cpu::llama_cpu> m(default_model());
  const std::vector<std::int32_t> parent = {-1, 0, 0, 2, 2, 4};
  const std::vector<token_id> tokens = {504, 3575, 7042, 30, 282, 4649};
  m.reset();
  (void)m.prefill(prompt);
  (void)m.forward(step_batch::tree(tokens, parent, m.n_past()));
  const std::vector<std::int32_t> accepted = {0, 2, 4, 5};  // path 504 -> 7042 -> 282 -> 4649
  m.commit(accepted);
  CHECK(m.n_past() == static_cast<std::int32_t>(prompt.size() + accepted.size()));
  const token_id next = 314;
  const auto after = copy_row(m.forward(step_batch::chain(std::vector<token_id>{next}, m.n_past())), 0);

  m.reset();
  std::vector<token_id> fresh = prompt;
  for (auto r : accepted) fresh.push_back(tokens[static_cast<std::size_t>(r)]);
  fresh.push_back(next);
  const auto l = m.forward(step_batch::chain(fresh, 0));
  CHECK(bitwise_equal(after, copy_row(l, l.n_rows - 1)));
}

TEST_CASE("prefill chunking and token-by-token decoding give identical logits", "[cpu]") {
  specdec::sequence_view<specdec::cpu::llama_cpu> m(default_model());
  m.reset();
  const auto whole = copy_row(m.forward(step_batch::chain(prompt, 0)), static_cast<std::int32_t>(prompt.size()) - 1);
  m.reset();
  const auto chunked = copy_row(m.prefill(prompt), 0);  // chunks of 64: one chunk, head on last row only
  CHECK(bitwise_equal(whole, chunked));
  m.reset();
  std::vector<float> last;
  for (token_id t : prompt) {
    last = copy_row(m.forward(step_batch::chain(std::vector<token_id>{t}, m.n_past())), 0);
    m.commit(std::vector<std::int32_t>{0});
  }
  CHECK(bitwise_equal(whole, last));
}

TEST_CASE("the layer-list form with every layer equals the normal form", "[cpu]") {
  specdec::sequence_view<specdec::cpu::llama_cpu> m(default_model());
  m.reset();
  const auto b = step_batch::chain(prompt, 0);
  const auto normal = copy_row(m.forward(b), 5);
  const auto layers = iota_rows(static_cast<std::size_t>(m.n_layers()));
  const auto listed = copy_row(m.forward(b, layers), 5);
  CHECK(bitwise_equal(normal, listed));
  const std::vector<std::int32_t> subset = {0, 1, 2, 29};
  const auto partial = copy_row(m.forward(b, subset), 5);
  CHECK_FALSE(bitwise_equal(normal, partial));
}

TEST_CASE("bad calls are clean errors and leave the cache usable", "[cpu]") {
  specdec::sequence_view<specdec::cpu::llama_cpu> m(default_model());
  m.reset();
  (void)m.prefill(prompt);
  const auto n_past = m.n_past();
  CHECK_THROWS_MATCHES(m.forward(step_batch::chain(std::vector<token_id>{49152}, n_past)), error,
                       Catch::Matchers::Predicate<error>([](const error& e) {
                         return e.category() == error_category::invalid_argument;
                       }));
  const std::vector<std::int32_t> descending = {3, 2};
  CHECK_THROWS_AS(m.forward(step_batch::chain(std::vector<token_id>{5}, n_past), descending), error);
  (void)m.forward(step_batch::chain(std::vector<token_id>{5, 6}, n_past));
  CHECK_THROWS_AS(m.commit(std::vector<std::int32_t>{1}), error);     // position n_past + 1 at slot n_past
  CHECK_THROWS_AS(m.commit(std::vector<std::int32_t>{0, 1, 2}), error);  // more rows than the step
  CHECK(m.n_past() == n_past);
  std::vector<token_id> huge(2048, 5);
  try {
    (void)m.prefill(huge);
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.category() == error_category::capacity);
    CHECK_THAT(e.what(), Catch::Contains("n_ctx 2048"));
  }
  CHECK(m.n_past() == n_past);
  const auto ok = m.forward(step_batch::chain(std::vector<token_id>{5}, n_past));
  CHECK(ok.n_rows == 1);
}
