// skip_decode on a model that checks K/V soundness (kv_recording_model): every layer a row runs was
// written by every row it attends to, under both batch policies, with requests of different ages,
// tree steps with partial commits and truncation; each row runs the layers its schedule gives
// (recomputed here from the linear formula, not from layer_schedule); one layer list per forward.
#include "kv_recording_model.hpp"

#include <specdec/skip/skip_decode.hpp>
#include <specdec/verify/decoder.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <vector>

using namespace specdec;
using namespace specdec::skip;
using specdec::test::kv_recording_model;
using layers = std::vector<std::int32_t>;

namespace {

// 8 layers, warm-up 1, 8 -> 3 layers over 10 tokens.
constexpr std::int32_t n_layers = 8, warmup = 1, max_l = 8, min_l = 3, length = 10;

schedule_options test_options() {
  schedule_options o;
  o.n_layers = n_layers;
  o.max_layers = max_l;
  o.min_layers = min_l;
  o.length = length;
  o.warmup_layers = warmup;
  return o;
}

// The paper's set at generation index t, straight from its definition: the warm-up layers, then
// the top `count` - warmup layers, count = max - floor((max - min) t / length).
layers expected_set(std::int64_t t) {
  const std::int64_t count = t >= length ? min_l : max_l - (max_l - min_l) * t / length;
  layers out;
  for (std::int32_t l = 0; l < warmup; ++l) out.push_back(l);
  for (std::int32_t l = static_cast<std::int32_t>(n_layers - (count - warmup)); l < n_layers; ++l) out.push_back(l);
  return out;
}

layers all_layers() { return expected_set(0); }

layers intersect(const layers& a, const layers& b) {
  layers out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// Proposes a chain of `depth` wrong tokens on even calls and the root alone on odd ones, so deep tree
// steps (one set for all their rows) alternate with shallow ones and only roots are accepted.
struct alternating_drafter {
  const kv_recording_model* m = nullptr;
  std::int32_t depth = 3;
  std::int64_t calls = 0;
  void begin(request_id, std::span<const token_id>) {}
  draft_tree draft(request_id, const draft_request& r) {
    draft_tree t = draft_tree::root_only(r.context.back());
    if (calls++ % 2 == 0) {
      std::int32_t node = 0;
      token_id prev = r.context.back();
      for (std::int32_t d = 0; d < depth && t.size() < r.budget; ++d) {
        const token_id wrong = (m->next_token(prev) + 1) % m->n_vocab();
        node = t.add(node, wrong);
        prev = wrong;
      }
    }
    return t;
  }
  void observe(request_id, const step_outcome&) {}
  void end(request_id) {}
};

std::vector<token_id> greedy_chain(const kv_recording_model& m, token_id last, int n) {
  std::vector<token_id> out;
  for (int i = 0; i < n; ++i) out.push_back(last = m.next_token(last));
  return out;
}

}  // namespace

TEST_CASE("skip_decode satisfies the model boundary", "[skip]") {
  STATIC_REQUIRE(layered_sequence_model<kv_recording_model>);
  STATIC_REQUIRE(sequence_model<skip_decode<kv_recording_model>>);
  STATIC_REQUIRE(layered_sequence_model<skip_decode<kv_recording_model>>);
}

TEST_CASE("the K/V checker catches a layer run again after it was skipped", "[skip]") {
  // The failure skip_decode must prevent, done by hand on the mock.
  kv_recording_model m;
  const seq_id s = m.create_sequence();
  const std::vector<token_id> a = {1}, b = {2}, c = {3};
  const layers deep = all_layers(), shallow = {0, 6, 7};
  m.forward(forward_batch{{sequence_step::chain(s, a, 0)}}, deep);
  m.commit(s, std::vector<std::int32_t>{0});
  m.forward(forward_batch{{sequence_step::chain(s, b, 1)}}, shallow);
  m.commit(s, std::vector<std::int32_t>{0});
  CHECK_THROWS_AS(m.forward(forward_batch{{sequence_step::chain(s, c, 2)}}, deep), std::logic_error);
}

TEST_CASE("decode rows follow the schedule exactly; prefill runs every layer", "[skip]") {
  kv_recording_model m;
  skip_decode<kv_recording_model> sd(m, layer_schedule(test_options()));
  null_drafter d;
  decoder<skip_decode<kv_recording_model>, null_drafter, greedy_rule> dec(sd, decoder_options{1, 4});
  const std::vector<token_id> prompt = {4, 9, 2, 6, 1, 5};
  request_options ro;
  ro.max_new_tokens = 16;
  dec.add(prompt, d, greedy_rule{}, ro);
  dec.run();
  const auto done = dec.take_finished();
  REQUIRE(done.size() == 1);
  CHECK(done[0].tokens == greedy_chain(m, prompt.back(), 16));
  CHECK(m.n_reads_checked > 0);

  const std::int32_t prompt_length = static_cast<std::int32_t>(prompt.size()) - 1;  // the last token is the first root
  std::int64_t n_decode = 0, n_prefill = 0, layer_rows = 0;
  for (const auto& r : m.row_layers) {
    if (r.all_logits) {
      CHECK(r.layers == expected_set(r.position - prompt_length));
      ++n_decode;
      layer_rows += static_cast<std::int64_t>(r.layers.size());
    } else {
      CHECK(r.layers == all_layers());
      ++n_prefill;
    }
  }
  CHECK(n_prefill == prompt_length);
  CHECK(n_decode == 16);
  // counts 8 - floor(5 t / 10) for t < 10: 8 8 7 7 6 6 5 5 4 4 (60), then 3 x 6: 78 layers, 16 rows
  CHECK(layer_rows == 78);
  CHECK(sd.counters().decode_layer_rows == 78);
  CHECK(sd.counters().mean_decode_layers() == Approx(78.0 / 16.0));
  CHECK(sd.counters().backend_forwards == sd.counters().forwards);
}

TEST_CASE("skip_prefill runs the prompt on the t = 0 set", "[skip]") {
  kv_recording_model m;
  auto o = test_options();
  o.max_layers = 6;  // t = 0: layers 0, 3..7
  skip_decode<kv_recording_model> sd(m, layer_schedule(o), skip_decode_options{true, batch_policy::shallowest});
  const seq_id s = sd.create_sequence();
  const std::vector<token_id> prompt = {1, 2, 3};
  sd.forward(forward_batch{{sequence_step::chain(s, prompt, 0, logits_request::none)}});
  REQUIRE(m.forward_layers.size() == 1);
  CHECK(m.forward_layers[0] == layers{0, 3, 4, 5, 6, 7});
}

TEST_CASE("requests of different ages in one batch: both policies stay sound", "[skip]") {
  const auto policy = GENERATE(batch_policy::shallowest, batch_policy::per_set);
  kv_recording_model m(n_layers, 11, 512, 3);
  skip_decode<kv_recording_model> sd(m, layer_schedule(test_options()), skip_decode_options{false, policy});
  null_drafter d;
  decoder<skip_decode<kv_recording_model>, null_drafter, greedy_rule> dec(sd, decoder_options{3, 4});
  // Prompts of 2, 9 and 17 tokens finish prefill (4 per step) at different steps: different ages.
  const std::vector<std::vector<token_id>> prompts = {
      {3, 8}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6, 7}};
  // The oldest request leaves first, while the youngest still has layers its own schedule would run.
  const std::vector<std::int32_t> n_new = {5, 3, 14};
  for (std::size_t i = 0; i < 3; ++i) {
    request_options ro;
    ro.max_new_tokens = n_new[i];
    dec.add(prompts[i], d, greedy_rule{}, ro);
  }
  dec.run();  // kv_recording_model throws on any read of missing K/V
  auto done = dec.take_finished();
  REQUIRE(done.size() == 3);
  std::sort(done.begin(), done.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (std::size_t i = 0; i < 3; ++i) CHECK(done[i].tokens == greedy_chain(m, prompts[i].back(), n_new[i]));

  // Sequence s is request s (admitted in order into a fresh model).
  std::map<seq_id, layers> floor;  // per sequence: the intersection of every list its rows ran
  for (seq_id s = 0; s < 3; ++s) floor[s] = all_layers();
  std::int32_t n_narrowed = 0;  // decode rows that ran less than their own schedule
  for (std::size_t f = 0; f < m.forward_layers.size(); ++f) {
    layers want = all_layers();
    bool any_decode = false;
    for (const auto& r : m.row_layers) {
      if (r.forward != static_cast<std::int32_t>(f)) continue;
      CHECK(r.layers == m.forward_layers[f]);  // batch-uniform: one list per forward
      if (!r.all_logits) {
        CHECK(r.layers == all_layers());
        continue;
      }
      any_decode = true;
      const auto prompt_length = static_cast<std::int32_t>(prompts[static_cast<std::size_t>(r.seq)].size()) - 1;
      const layers own = expected_set(r.position - prompt_length);
      if (policy == batch_policy::per_set) {
        CHECK(r.layers == own);
      } else {
        want = intersect(want, intersect(own, floor[r.seq]));
        if (r.layers != own) ++n_narrowed;
      }
    }
    if (policy == batch_policy::shallowest && any_decode) CHECK(m.forward_layers[f] == want);
    for (const auto& r : m.row_layers) {
      if (r.forward == static_cast<std::int32_t>(f)) floor[r.seq] = intersect(floor[r.seq], r.layers);
    }
  }
  if (policy == batch_policy::shallowest) {
    CHECK(n_narrowed > 0);  // the youngest requests were skipped deeper than their own schedule
  } else {
    CHECK(sd.counters().backend_forwards > sd.counters().forwards);  // groups cost extra forwards
  }
}

TEST_CASE("tree steps of varying depth and partial commits stay sound", "[skip]") {
  kv_recording_model m;
  skip_decode<kv_recording_model> sd(m, layer_schedule(test_options()));
  alternating_drafter d{&m, 4};
  decoder<skip_decode<kv_recording_model>, alternating_drafter, greedy_rule> dec(sd, decoder_options{1, 8});
  const std::vector<token_id> prompt = {2, 7, 1};
  request_options ro;
  ro.max_new_tokens = 20;
  ro.budget = 5;
  dec.add(prompt, d, greedy_rule{}, ro);
  // A deep step runs its deepest row's (small) set; the root-only step after it must not go back to
  // its own larger set: its cache rows lack those layers.
  dec.run();
  const auto done = dec.take_finished();
  REQUIRE(done.size() == 1);
  CHECK(done[0].tokens == greedy_chain(m, prompt.back(), 20));
  for (std::size_t f = 1; f < m.forward_layers.size(); ++f) {
    const auto& now = m.forward_layers[f];
    const auto& before = m.forward_layers[f - 1];
    CHECK(std::includes(before.begin(), before.end(), now.begin(), now.end()));
  }
}

TEST_CASE("truncating back into the prompt restores full depth", "[skip]") {
  kv_recording_model m;
  skip_decode<kv_recording_model> sd(m, layer_schedule(test_options()));
  const seq_id s = sd.create_sequence();
  const std::vector<token_id> prompt = {1, 2, 3, 4};
  sd.forward(forward_batch{{sequence_step::chain(s, prompt, 0, logits_request::none)}});
  sd.commit(s, std::vector<std::int32_t>{0, 1, 2, 3});
  token_id last = 4;
  for (int i = 0; i < 6; ++i) {
    const std::vector<token_id> one = {last};
    sd.forward(forward_batch{{sequence_step::chain(s, one, sd.n_past(s))}});
    sd.commit(s, std::vector<std::int32_t>{0});
    last = m.next_token(last);
  }
  CHECK(sd.generation_index(s) == 6);
  CHECK(layers(sd.run_set(s).begin(), sd.run_set(s).end()) == expected_set(5));
  sd.truncate(s, 6);  // still inside the generation: the run set stays
  CHECK(layers(sd.run_set(s).begin(), sd.run_set(s).end()) == expected_set(5));
  sd.truncate(s, 4);
  CHECK(sd.generation_index(s) == 0);
  CHECK(layers(sd.run_set(s).begin(), sd.run_set(s).end()) == all_layers());
  const std::vector<token_id> one = {9};
  sd.forward(forward_batch{{sequence_step::chain(s, one, 4)}});
  CHECK(m.forward_layers.back() == all_layers());
}

TEST_CASE("skip_decode refuses a schedule for another depth and unknown sequences", "[skip]") {
  kv_recording_model m(6);
  try {
    skip_decode<kv_recording_model> sd(m, layer_schedule(test_options()));
    FAIL("no error");
  } catch (const error& e) {
    CHECK(e.category() == error_category::invalid_argument);
    CHECK_THAT(std::string(e.what()), Catch::Contains("8 layers but the model has 6"));
  }
  skip_decode<kv_recording_model> sd(m, layer_schedule::full(6));
  const seq_id other = m.create_sequence();  // not through the wrapper
  const std::vector<token_id> one = {1};
  CHECK_THROWS_WITH(sd.forward(forward_batch{{sequence_step::chain(other, one, 0)}}),
                    Catch::Contains("not created through this wrapper"));
}
