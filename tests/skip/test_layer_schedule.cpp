// layer_schedule: exact layer sets of the linear schedule (computed by hand in the comments),
// monotonicity, calibrated skip orders, explicit plans, the theoretical speedup, bad options.
#include <specdec/skip/layer_schedule.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

using namespace specdec;
using namespace specdec::skip;
using layers = std::vector<std::int32_t>;

namespace {

layers at(const layer_schedule& s, std::int64_t t) {
  const auto v = s.layers_at(t);
  return {v.begin(), v.end()};
}

schedule_options options(std::int32_t n, std::int32_t max, std::int32_t min, std::int32_t length, std::int32_t warmup) {
  schedule_options o;
  o.n_layers = n;
  o.max_layers = max;
  o.min_layers = min;
  o.length = length;
  o.warmup_layers = warmup;
  return o;
}

// Message of the specdec::error `f` throws (fails the test if it does not throw one).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    CHECK(e.category() == error_category::invalid_argument);
    return e.what();
  }
  FAIL("no specdec::error thrown");
  return {};
}

}  // namespace

TEST_CASE("linear schedule, paper's order: exact layer sets", "[skip]") {
  // n 8, warm-up 1, 8 -> 4 layers over 4 tokens: counts 8, 7, 6, 5, then 4; the skipped block
  // starts right after layer 0.
  const layer_schedule s(options(8, 8, 4, 4, 1));
  CHECK(at(s, 0) == layers{0, 1, 2, 3, 4, 5, 6, 7});
  CHECK(at(s, 1) == layers{0, 2, 3, 4, 5, 6, 7});
  CHECK(at(s, 2) == layers{0, 3, 4, 5, 6, 7});
  CHECK(at(s, 3) == layers{0, 4, 5, 6, 7});
  CHECK(at(s, 4) == layers{0, 5, 6, 7});
  CHECK(at(s, 1000) == layers{0, 5, 6, 7});
  CHECK(s.phases().size() == 5);

  // n 30, warm-up 2, 24 -> 12 over 10 tokens: count(t) = 24 - floor(12 t / 10).
  const layer_schedule d(options(30, 24, 12, 10, 2));
  layers want = {0, 1};
  for (int l = 8; l < 30; ++l) want.push_back(l);  // t = 0: 24 active, 6 skipped: 2..7
  CHECK(at(d, 0) == want);
  want = {0, 1};
  for (int l = 14; l < 30; ++l) want.push_back(l);  // t = 5: 24 - 6 = 18 active, 12 skipped: 2..13
  CHECK(at(d, 5) == want);
  CHECK(d.n_active(9) == 14);  // 24 - floor(108 / 10)
  CHECK(d.n_active(10) == 12);
  want = {0, 1};
  for (int l = 20; l < 30; ++l) want.push_back(l);  // t >= 10: 12 active, 18 skipped: 2..19
  CHECK(at(d, 11) == want);
}

TEST_CASE("a calibrated skip order drops its layers first", "[skip]") {
  auto o = options(6, 6, 3, 3, 1);
  o.skip_order = {5, 3, 1, 2, 4};
  const layer_schedule s(o);
  CHECK(at(s, 0) == layers{0, 1, 2, 3, 4, 5});
  CHECK(at(s, 1) == layers{0, 1, 2, 3, 4});
  CHECK(at(s, 2) == layers{0, 1, 2, 4});
  CHECK(at(s, 3) == layers{0, 2, 4});
  CHECK(at(s, 50) == layers{0, 2, 4});
}

TEST_CASE("every schedule is monotone: the set at t + 1 is a subset of the set at t", "[skip]") {
  std::vector<schedule_options> all = {options(30, 30, 10, 100, 1), options(30, 20, 20, 7, 3), options(5, 5, 1, 1, 0),
                                       options(12, 11, 4, 13, 2)};
  auto shuffled = options(12, 12, 3, 9, 2);
  shuffled.skip_order = {7, 2, 11, 3, 9, 4, 10, 5, 6, 8};
  all.push_back(shuffled);
  for (const auto& o : all) {
    const layer_schedule s(o);
    for (std::int64_t t = 0; t < 200; ++t) {
      const auto now = at(s, t), next = at(s, t + 1);
      CHECK(std::includes(now.begin(), now.end(), next.begin(), next.end()));
      CHECK(static_cast<std::int32_t>(now.size()) == layer_schedule::linear_count(o, t));
      for (std::int32_t l = 0; l < o.warmup_layers; ++l) CHECK(std::binary_search(now.begin(), now.end(), l));
    }
  }
}

TEST_CASE("an explicit plan that would run a skipped layer again is refused, naming the phase", "[skip]") {
  std::vector<schedule_phase> ok = {{0, {0, 1, 2, 3}}, {4, {0, 2, 3}}, {9, {0, 3}}};
  const layer_schedule s(4, ok);
  CHECK(at(s, 3) == layers{0, 1, 2, 3});
  CHECK(at(s, 4) == layers{0, 2, 3});
  CHECK(at(s, 8) == layers{0, 2, 3});
  CHECK(at(s, 9) == layers{0, 3});

  std::vector<schedule_phase> bad = {{0, {0, 1, 2, 3}}, {4, {0, 2, 3}}, {9, {0, 1, 3}}};
  const std::string m = error_of([&] { layer_schedule(4, bad); });
  CHECK_THAT(m, Catch::Contains("phase 2 (from t = 9)") && Catch::Contains("runs layer 1"));
  CHECK_THAT(error_of([] { layer_schedule(4, {{1, {0}}}); }), Catch::Contains("index 0"));
  CHECK_THAT(error_of([] { layer_schedule(4, {{0, {0, 1}}, {0, {0}}}); }), Catch::Contains("phase 1"));
  CHECK_THAT(error_of([] { layer_schedule(4, {{0, {2, 1}}}); }), Catch::Contains("ascending"));
  CHECK_THAT(error_of([] { layer_schedule(4, {{0, {0, 4}}}); }), Catch::Contains("ascending"));
}

TEST_CASE("theoretical speedup, by hand", "[skip]") {
  const layer_schedule s(options(8, 8, 4, 4, 1));
  // 8 tokens: 8 + 7 + 6 + 5 + 4 + 4 + 4 + 4 = 42 layers instead of 64.
  CHECK(s.theoretical_speedup(8) == Approx(64.0 / 42.0));
  CHECK(s.theoretical_speedup(2) == Approx(16.0 / 15.0));
  CHECK(s.theoretical_speedup(1) == Approx(1.0));
  // Long generations approach n / min.
  CHECK(s.theoretical_speedup(100000) == Approx(2.0).epsilon(1e-3));
  CHECK(layer_schedule::full(30).theoretical_speedup(128) == Approx(1.0));
  CHECK_THAT(error_of([&] { (void)s.theoretical_speedup(0); }), Catch::Contains("n_tokens"));
}

TEST_CASE("bad schedule options are clear errors", "[skip]") {
  CHECK_THAT(error_of([] { layer_schedule(options(8, 6, 7, 4, 1)); }), Catch::Contains("min_layers 7, max_layers 6"));
  CHECK_THAT(error_of([] { layer_schedule(options(8, 9, 4, 4, 1)); }), Catch::Contains("max_layers 9, n_layers 8"));
  CHECK_THAT(error_of([] { layer_schedule(options(8, 8, 0, 4, 0)); }), Catch::Contains("1 <= min_layers"));
  CHECK_THAT(error_of([] { layer_schedule(options(8, 8, 4, 4, 4)); }), Catch::Contains("warmup_layers 4"));
  CHECK_THAT(error_of([] { layer_schedule(options(8, 8, 4, 0, 1)); }), Catch::Contains("length 0"));
  CHECK_THAT(error_of([] { layer_schedule(options(0, 0, 0, 4, 0)); }), Catch::Contains("n_layers 0"));
  auto o = options(6, 6, 3, 3, 1);
  o.skip_order = {5, 3, 5};
  CHECK_THAT(error_of([&] { layer_schedule{o}; }), Catch::Contains("layer 5 twice"));
  o.skip_order = {5, 0, 1};
  CHECK_THAT(error_of([&] { layer_schedule{o}; }), Catch::Contains("layer 0, outside the skippable layers [1, 6)"));
  o.skip_order = {5, 6, 1};
  CHECK_THAT(error_of([&] { layer_schedule{o}; }), Catch::Contains("layer 6"));
  o.skip_order = {5, 3};
  CHECK_THAT(error_of([&] { layer_schedule{o}; }), Catch::Contains("lists 2 layers") && Catch::Contains("needs 3"));
}
