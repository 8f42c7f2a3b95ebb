// The decode loop on a mock model: greedy output equals plain greedy decoding for any drafter, the
// counters add up, the accepted path is committed, and every stop condition and bad option behaves.
#include "../mocks/mock_model.hpp"

#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

using namespace specdec;
using specdec::test::mock_model;
using specdec::test::oracle_drafter;

TEST_CASE("mocks satisfy the concepts", "[verify]") {
  STATIC_REQUIRE(layered_forward_step<mock_model>);
  STATIC_REQUIRE(drafter<oracle_drafter>);
  STATIC_REQUIRE(drafter<null_drafter>);
  STATIC_REQUIRE(acceptance_rule<greedy_rule>);
}

TEST_CASE("autoregressive loop equals plain greedy decoding, one token per step", "[verify]") {
  mock_model m;
  null_drafter d;
  greedy_rule rule;
  const std::vector<token_id> prompt = {3, 7, 1};
  generate_options opt;
  opt.max_new_tokens = 20;
  const auto r = generate(m, d, rule, prompt, opt);
  CHECK(r.tokens == m.greedy(prompt, 20));
  CHECK(r.reason == stop_reason::length);
  CHECK(r.stats.steps == 20);
  CHECK(r.stats.n_drafted == 0);
  CHECK(m.n_tokens_forwarded == 2 + 20);  // prefill of 2 prompt tokens, then one per step
}

TEST_CASE("a perfect drafter is accepted in full and the counters add up", "[verify]") {
  mock_model m;
  oracle_drafter d(m, 4);  // 4 right tokens and 4 wrong siblings per step: 9 nodes
  greedy_rule rule;
  const std::vector<token_id> prompt = {5, 2};
  generate_options opt;
  opt.max_new_tokens = 25;
  opt.budget = 9;
  const auto r = generate(m, d, rule, prompt, opt);
  CHECK(r.tokens == m.greedy(prompt, 25));
  CHECK(r.stats.steps == 5);  // 5 tokens per step
  CHECK(r.stats.n_drafted == 5 * 8);
  CHECK(r.stats.n_accept == 5 * 4);
  CHECK(r.stats.mat() == 5.0);
  CHECK(r.stats.accept_rate() == Approx(0.5));
  REQUIRE(r.stats.accepted_by_depth.size() == 5);
  CHECK(r.stats.accepted_by_depth[4] == 5);
  CHECK(r.stats.drafted_by_depth[1] == 10);
  CHECK(d.n_begin == 1);
  CHECK(d.n_end == 1);
  CHECK(d.n_observe == 5);
  CHECK(d.observed_new == 25);
  CHECK(d.last_context_size == 27);
  // Committed: the prompt, then each step's root + accepted drafts; the last bonus token is the root.
  std::vector<token_id> expect(prompt);
  expect.insert(expect.end(), r.tokens.begin(), r.tokens.end() - 1);
  CHECK(m.committed_before_reset() == expect);  // the sequence is freed (reset) when the request ends
}

TEST_CASE("budget limits the tree; output is the same for every budget", "[verify]") {
  const std::vector<token_id> prompt = {9, 9, 4};
  std::vector<token_id> first;
  for (std::int32_t budget : {1, 2, 3, 5, 8, 17}) {
    mock_model m;
    oracle_drafter d(m, 6);
    greedy_rule rule;
    generate_options opt;
    opt.max_new_tokens = 30;
    opt.budget = budget;
    const auto r = generate(m, d, rule, prompt, opt);
    INFO("budget " << budget);
    if (first.empty()) first = r.tokens;
    CHECK(r.tokens == first);
    CHECK(m.n_forwards == r.stats.steps + 1);  // + the prefill forward
    CHECK(r.stats.n_drafted <= r.stats.steps * (budget - 1));
  }
}

TEST_CASE("end tokens, stop strings, callbacks and limits stop the loop", "[verify]") {
  const std::vector<token_id> prompt = {1, 2};
  mock_model probe;
  const auto plain = probe.greedy(prompt, 40);
  {
    mock_model m;
    oracle_drafter d(m, 3);
    greedy_rule rule;
    generate_options opt;
    opt.max_new_tokens = 40;
    opt.budget = 7;
    opt.end_tokens = {plain[10]};
    const auto r = generate(m, d, rule, prompt, opt);
    const auto first_end = std::find(plain.begin(), plain.end(), plain[10]) - plain.begin();
    CHECK(r.reason == stop_reason::end_token);
    CHECK(r.tokens == std::vector<token_id>(plain.begin(), plain.begin() + first_end));
  }
  {
    mock_model m;
    oracle_drafter d(m, 3);
    greedy_rule rule;
    generate_options opt;
    opt.max_new_tokens = 40;
    opt.budget = 7;
    opt.detokenize = [](token_id t) { return "<" + std::to_string(t) + ">"; };
    opt.stop_strings = {"<" + std::to_string(plain[12]) + "><" + std::to_string(plain[13]) + ">"};
    const auto r = generate(m, d, rule, prompt, opt);
    CHECK(r.reason == stop_reason::stop_string);
    REQUIRE(r.tokens.size() >= 2);
    CHECK(r.tokens.size() <= 14);
    CHECK(std::equal(r.tokens.begin(), r.tokens.end(), plain.begin()));
  }
  {
    mock_model m;
    oracle_drafter d(m, 3);
    greedy_rule rule;
    generate_options opt;
    opt.max_new_tokens = 40;
    opt.budget = 7;
    std::vector<token_id> streamed;
    opt.on_tokens = [&](std::span<const token_id> t) {
      streamed.insert(streamed.end(), t.begin(), t.end());
      return streamed.size() < 9;
    };
    const auto r = generate(m, d, rule, prompt, opt);
    CHECK(r.reason == stop_reason::callback);
    CHECK(streamed == r.tokens);
    CHECK(r.tokens.size() >= 9);
  }
  {
    mock_model m(16, 12);  // prompt 2 + at most 10 more cache entries
    oracle_drafter d(m, 3);
    greedy_rule rule;
    generate_options opt;
    opt.max_new_tokens = 40;
    opt.budget = 7;
    const auto r = generate(m, d, rule, prompt, opt);
    CHECK(r.reason == stop_reason::context);
    CHECK(std::equal(r.tokens.begin(), r.tokens.end(), plain.begin()));
    CHECK(m.committed_before_reset().size() <= 12);
  }
}

TEST_CASE("bad options are clear errors", "[verify]") {
  mock_model m(16, 64);
  null_drafter d;
  greedy_rule rule;
  const std::vector<token_id> prompt = {1};
  generate_options opt;
  opt.budget = 0;
  CHECK_THROWS_WITH(generate(m, d, rule, prompt, opt), Catch::Contains("budget 0"));
  opt.budget = 65;
  CHECK_THROWS_WITH(generate(m, d, rule, prompt, opt), Catch::Contains("budget 65"));
  opt.budget = 1;
  opt.max_new_tokens = 0;
  CHECK_THROWS_AS(generate(m, d, rule, prompt, opt), error);
  opt.max_new_tokens = 4;
  CHECK_THROWS_AS(generate(m, d, rule, std::vector<token_id>{}, opt), error);
  opt.stop_strings = {"x"};
  CHECK_THROWS_WITH(generate(m, d, rule, prompt, opt), Catch::Contains("detokenize"));
  const std::vector<token_id> too_long(64, 1);
  opt.stop_strings.clear();
  CHECK_THROWS_AS(generate(m, d, rule, too_long, opt), error);
}
