// The steppable decoder on a mock with the full boundary: many requests share each forward, join
// and leave between steps, each equals plain greedy decoding of its own prompt whatever drafter or
// budget its neighbours use; cancel, capacity and bad options behave.
#include "../mocks/mock_batch_model.hpp"

#include <specdec/drafters/any_drafter.hpp>
#include <specdec/verify/decoder.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include <map>

using namespace specdec;
using specdec::test::mock_batch_model;
using specdec::test::oracle_drafter;

TEST_CASE("the batch mock satisfies the boundary", "[verify]") {
  STATIC_REQUIRE(sequence_model<mock_batch_model>);
}

TEST_CASE("requests joining at different steps each equal their own greedy decoding", "[verify]") {
  mock_batch_model m(3);
  any_drafter erased_ar(null_drafter{});
  decoder<mock_batch_model, any_drafter, greedy_rule> dec(m);
  CHECK(dec.max_active() == 3);
  any_drafter erased_oracle(oracle_drafter(m.table(), 2));
  std::map<request_id, std::vector<token_id>> prompts;
  std::map<request_id, std::int32_t> lengths;
  std::int32_t steps = 0, total_steps = 0;
  for (int k = 0; k < 7; ++k) {
    const std::vector<token_id> p = {static_cast<token_id>(k + 1), static_cast<token_id>((3 * k) % 16), 5};
    request_options o;
    o.max_new_tokens = 10 + 3 * k;
    o.budget = k % 2 == 0 ? 1 : 7;
    const auto id = dec.add(p, k % 2 == 0 ? erased_ar : erased_oracle, greedy_rule{}, o);
    prompts[id] = p;
    lengths[id] = o.max_new_tokens;
    if (k % 2 == 1) {  // let some steps pass between joins
      dec.step();
      ++steps;
    }
  }
  std::vector<request_result> done;
  while (dec.step()) {
    ++steps;
    for (auto& r : dec.take_finished()) done.push_back(std::move(r));
  }
  for (auto& r : dec.take_finished()) done.push_back(std::move(r));
  REQUIRE(done.size() == 7);
  for (const auto& r : done) {
    INFO("request " << r.id);
    CHECK(r.tokens == m.table().greedy(prompts.at(r.id), lengths.at(r.id)));
    CHECK(r.reason == stop_reason::length);
    total_steps += static_cast<std::int32_t>(r.stats.steps);
  }
  CHECK(m.most_steps_in_a_forward == 3);  // forwards really were shared
  CHECK(total_steps > steps);
  CHECK(dec.idle());
}

TEST_CASE("a drafter sees each request's own outcomes, keyed by request id", "[verify]") {
  struct recording {
    std::map<request_id, std::int64_t> begun, observed, ended;
    void begin(request_id id, std::span<const token_id>) { ++begun[id]; }
    draft_tree draft(request_id, const draft_request& r) { return draft_tree::root_only(r.context.back()); }
    void observe(request_id id, const step_outcome& o) { observed[id] += static_cast<std::int64_t>(o.new_tokens.size()); }
    void end(request_id id) { ++ended[id]; }
  } rec;
  mock_batch_model m(2);
  decoder<mock_batch_model, recording, greedy_rule> dec(m);
  request_options o;
  o.max_new_tokens = 4;
  const auto a = dec.add(std::vector<token_id>{1, 2}, rec, greedy_rule{}, o);
  o.max_new_tokens = 9;
  const auto b = dec.add(std::vector<token_id>{3}, rec, greedy_rule{}, o);
  dec.run();
  CHECK(rec.begun[a] == 1);
  CHECK(rec.ended[b] == 1);
  CHECK(rec.observed[a] == 4);
  CHECK(rec.observed[b] == 9);
}

TEST_CASE("cancel ends one request and leaves the others as they were", "[verify]") {
  mock_batch_model m(4);
  null_drafter ar;
  decoder<mock_batch_model, null_drafter, greedy_rule> dec(m);
  request_options o;
  o.max_new_tokens = 20;
  const std::vector<token_id> p1 = {4, 4}, p2 = {9, 1};
  const auto keep = dec.add(p1, ar, greedy_rule{}, o);
  const auto drop = dec.add(p2, ar, greedy_rule{}, o);
  const auto queued = dec.add(p2, ar, greedy_rule{}, o);
  dec.step();
  dec.step();
  dec.cancel(drop);
  dec.cancel(queued);
  dec.run();
  auto done = dec.take_finished();
  REQUIRE(done.size() == 3);
  for (const auto& r : done) {
    if (r.id == keep) {
      CHECK(r.tokens == m.table().greedy(p1, 20));
    } else {
      CHECK(r.reason == stop_reason::cancelled);
      CHECK(r.tokens.size() < 20);
    }
  }
}

TEST_CASE("the decoder never opens more sequences than the model holds, and checks options", "[verify]") {
  mock_batch_model m(2, 16, 32);
  null_drafter ar;
  decoder<mock_batch_model, null_drafter, greedy_rule> dec(m, decoder_options{8, 4});
  CHECK(dec.max_active() == 2);
  request_options o;
  o.max_new_tokens = 5;
  for (int k = 0; k < 5; ++k) dec.add(std::vector<token_id>(10, static_cast<token_id>(k)), ar, greedy_rule{}, o);
  dec.run();
  CHECK(m.most_steps_in_a_forward == 2);
  CHECK(dec.take_finished().size() == 5);
  o.budget = 0;
  CHECK_THROWS_WITH(dec.add(std::vector<token_id>{1}, ar, greedy_rule{}, o), Catch::Contains("budget 0"));
  o.budget = 1;
  CHECK_THROWS_AS(dec.add(std::vector<token_id>(32, 1), ar, greedy_rule{}, o), error);
  CHECK_THROWS_AS((decoder<mock_batch_model, null_drafter, greedy_rule>(m, decoder_options{0, 0})), error);
}
