// The version-2 boundary on the CPU backend, bit for bit: a tree grown over three forwards equals the
// same tree in one forward and each root-to-node path run alone; B sequences in one forward equal
// each run alone; committing a path whose rows come from three forwards equals a fresh run; an
// embedding row equals its token; rollback then re-decode equals never having decoded; the
// one-sequence adapter over a forward_step view gives the same logits; bad calls are clear errors.
// The tree, key-block, commit and rollback cases run with every KV element type (f32, fp16, bf16):
// a 16-bit cache rounds each K/V value once when it is written, the same for every row, so the
// batch-invariance promise holds for it too.
#include "model_fixture.hpp"

#include <specdec/core/single_sequence_adapter.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>
#include <random>

using namespace specdec;
using specdec::test::bitwise_equal;
using specdec::test::default_model;
using specdec::test::kv_model;

namespace {

const std::vector<token_id> prompt = {1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198};

std::vector<token_id> random_tokens(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<token_id> t(n);
  for (auto& x : t) x = static_cast<token_id>(rng() % 49152);
  return t;
}

std::vector<std::vector<float>> rows_of(const logits_view& l) {
  std::vector<std::vector<float>> out;
  for (std::int32_t i = 0; i < l.n_rows; ++i) out.push_back(specdec::test::copy_row(l, i));
  return out;
}

// A step of rows [from, to) of a tree given by tokens/parents (parents in pending-index space).
sequence_step part(seq_id s, const std::vector<token_id>& tokens, const std::vector<std::int32_t>& parents,
                   std::int32_t n_past, std::size_t from, std::size_t to) {
  sequence_step st;
  st.seq = s;
  std::vector<std::int32_t> depth(tokens.size(), 0);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    depth[i] = parents[i] < 0 ? 0 : depth[static_cast<std::size_t>(parents[i])] + 1;
  }
  for (std::size_t i = from; i < to; ++i) {
    st.tokens.push_back(tokens[i]);
    st.parents.push_back(parents[i]);
    st.positions.push_back(n_past + depth[i]);
  }
  return st;
}

logits_view run(cpu::llama_cpu& m, sequence_step st) {
  forward_batch b;
  b.steps.push_back(std::move(st));
  return m.forward(b).rows;
}

// Logits of the last row of prompt + path run as one plain sequence on a fresh sequence.
std::vector<float> alone(cpu::llama_cpu& m, const std::vector<token_id>& before, const std::vector<token_id>& path) {
  const seq_id s = m.create_sequence();
  (void)m.prefill(s, before);
  const auto l = run(m, sequence_step::chain(s, path, m.n_past(s)));
  auto out = specdec::test::copy_row(l, l.n_rows - 1);
  m.free_sequence(s);
  return out;
}

// The 12-node tree used below (depths up to 5) and its root-to-node paths.
const std::vector<std::int32_t> tree_parent = {-1, 0, 0, 1, 1, 2, 3, 3, 6, 0, 9, 8};

std::vector<token_id> path_to(const std::vector<token_id>& tokens, const std::vector<std::int32_t>& parent, std::size_t i) {
  std::vector<token_id> p;
  for (auto j = static_cast<std::int32_t>(i); j >= 0; j = parent[static_cast<std::size_t>(j)]) {
    p.insert(p.begin(), tokens[static_cast<std::size_t>(j)]);
  }
  return p;
}

}  // namespace

TEST_CASE("a tree grown over three forwards equals it in one forward and each path alone", "[cpu]") {
  const auto kv = GENERATE(cpu::kv_format::f32, cpu::kv_format::f16, cpu::kv_format::bf16);
  INFO("--kv-type " << to_string(kv));
  auto& m = kv_model(kv);
  const auto tokens = random_tokens(tree_parent.size(), 7);

  const seq_id one = m.create_sequence();
  (void)m.prefill(one, prompt);
  const auto whole = rows_of(run(m, part(one, tokens, tree_parent, m.n_past(one), 0, tokens.size())));

  const seq_id grown = m.create_sequence();
  (void)m.prefill(grown, prompt);
  std::vector<std::vector<float>> pieces;
  for (auto [from, to] : {std::pair<std::size_t, std::size_t>{0, 3}, {3, 8}, {8, 12}}) {
    const auto r = rows_of(run(m, part(grown, tokens, tree_parent, m.n_past(grown), from, to)));
    pieces.insert(pieces.end(), r.begin(), r.end());
    CHECK(m.n_pending(grown) == static_cast<std::int32_t>(to));
  }
  REQUIRE(pieces.size() == whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i) {
    INFO("node " << i);
    CHECK(bitwise_equal(pieces[i], whole[i]));
    CHECK(bitwise_equal(whole[i], alone(m, prompt, path_to(tokens, tree_parent, i))));
  }
  m.free_sequence(one);
  m.free_sequence(grown);
}

TEST_CASE("B sequences in one forward equal each sequence run alone", "[cpu]") {
  auto& m = default_model();
  // Every B from 1 to 8 in the release run; under sanitizers (-O1, ~20x slower) the ends and one
  // odd size in between, which still cover a partial row tile and a full one.
  const std::vector<std::int32_t> sizes =
      SPECDEC_TEST_SANITIZED ? std::vector<std::int32_t>{1, 3, 8} : std::vector<std::int32_t>{1, 2, 3, 4, 5, 6, 7, 8};
  for (const std::int32_t n_seq : sizes) {
    INFO("B = " << n_seq);
    std::vector<seq_id> seqs;
    std::vector<std::vector<token_id>> prompts, trees;
    std::vector<std::vector<std::int32_t>> parents;
    forward_batch batch;
    for (std::int32_t k = 0; k < n_seq; ++k) {
      const auto u = static_cast<unsigned>(k);
      prompts.push_back(random_tokens(3 + 5 * u, 100 + u));
      seqs.push_back(m.create_sequence());
      (void)m.prefill(seqs.back(), prompts.back());
      // Sequence k gets a tree of k % 4 + 1 nodes (a chain for odd k, a fan for even k); every
      // third sequence an empty step.
      const std::size_t n = k % 3 == 2 ? 0 : static_cast<std::size_t>(k % 4 + 1);
      trees.push_back(random_tokens(n, 200 + u));
      std::vector<std::int32_t> par(n);
      for (std::size_t i = 0; i < n; ++i) par[i] = i == 0 ? -1 : (k % 2 == 1 ? static_cast<std::int32_t>(i) - 1 : 0);
      parents.push_back(par);
      batch.steps.push_back(part(seqs.back(), trees.back(), par, m.n_past(seqs.back()), 0, n));
    }
    const auto out = m.forward(batch);
    for (std::int32_t k = 0; k < n_seq; ++k) {
      const auto ku = static_cast<std::size_t>(k);
      const auto got = rows_of(out.step(ku));
      REQUIRE(got.size() == trees[ku].size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("sequence " << k << ", node " << i);
        CHECK(bitwise_equal(got[i], alone(m, prompts[ku], path_to(trees[ku], parents[ku], i))));
      }
    }
    for (auto s : seqs) m.free_sequence(s);
  }
}

TEST_CASE("sequences whose caches span several attention key blocks, batched, equal each path alone", "[cpu]") {
  // Attention reads K/V in blocks of 64 keys shared by a task's rows and heads (attention.hpp):
  // caches just below, at and above one block and across several, with trees, in one forward.
  const auto kv = GENERATE(cpu::kv_format::f32, cpu::kv_format::f16, cpu::kv_format::bf16);
  INFO("--kv-type " << to_string(kv));
  auto& m = kv_model(kv);
  const std::vector<std::size_t> lengths = SPECDEC_TEST_SANITIZED ? std::vector<std::size_t>{70}
                                                                  : std::vector<std::size_t>{63, 64, 65, 150, 201};
  std::vector<seq_id> seqs;
  std::vector<std::vector<token_id>> prompts, trees;
  forward_batch batch;
  for (std::size_t k = 0; k < lengths.size(); ++k) {
    const auto u = static_cast<unsigned>(k);
    prompts.push_back(random_tokens(lengths[k], 300 + u));
    seqs.push_back(m.create_sequence());
    (void)m.prefill(seqs.back(), prompts.back());
    trees.push_back(random_tokens(tree_parent.size(), 400 + u));
    batch.steps.push_back(part(seqs.back(), trees.back(), tree_parent, m.n_past(seqs.back()), 0, tree_parent.size()));
  }
  const auto out = m.forward(batch);
  for (std::size_t k = 0; k < lengths.size(); ++k) {
    const auto got = rows_of(out.step(k));
    REQUIRE(got.size() == tree_parent.size());
    // Each path alone on one fresh sequence holding the prompt, rolled back after each path (the
    // prompt is prefilled once; rollback is exact, see "rollback then re-decode" below). Every
    // node under the release build; the deepest three under sanitizers.
    const seq_id single = m.create_sequence();
    (void)m.prefill(single, prompts[k]);
    const std::int32_t n_prompt = m.n_past(single);
    const std::size_t first = SPECDEC_TEST_SANITIZED ? got.size() - 3 : 0;
    for (std::size_t i = first; i < got.size(); ++i) {
      INFO("cache of " << lengths[k] << " tokens, node " << i);
      const auto l = run(m, sequence_step::chain(single, path_to(trees[k], tree_parent, i), n_prompt));
      CHECK(bitwise_equal(got[i], specdec::test::copy_row(l, l.n_rows - 1)));
      m.truncate(single, n_prompt);
    }
    m.free_sequence(single);
  }
  for (auto s : seqs) m.free_sequence(s);
}

TEST_CASE("committing a path whose rows come from three forwards, then continuing, equals a fresh run", "[cpu]") {
  const auto kv = GENERATE(cpu::kv_format::f32, cpu::kv_format::f16, cpu::kv_format::bf16);
  INFO("--kv-type " << to_string(kv));
  auto& m = kv_model(kv);
  const auto tokens = random_tokens(tree_parent.size(), 11);
  const seq_id s = m.create_sequence();
  (void)m.prefill(s, prompt);
  for (auto [from, to] : {std::pair<std::size_t, std::size_t>{0, 3}, {3, 8}, {8, 12}}) {
    (void)run(m, part(s, tokens, tree_parent, m.n_past(s), from, to));
  }
  // Path 0 -> 1 -> 3 -> 6 -> 8 -> 11: rows from the first, second and third forward.
  const std::vector<std::int32_t> path = {0, 1, 3, 6, 8, 11};
  m.commit(s, path);
  CHECK(m.n_past(s) == static_cast<std::int32_t>(prompt.size() + path.size()));
  CHECK(m.n_pending(s) == 0);
  const std::vector<token_id> next = {314, 260};
  const auto after = rows_of(run(m, sequence_step::chain(s, next, m.n_past(s))));

  std::vector<token_id> fresh = prompt;
  for (auto r : path) fresh.push_back(tokens[static_cast<std::size_t>(r)]);
  const seq_id f = m.create_sequence();
  const auto want = rows_of(run(m, sequence_step::chain(f, [&] {
    auto all = fresh;
    all.insert(all.end(), next.begin(), next.end());
    return all;
  }(), 0)));
  CHECK(bitwise_equal(after[0], want[want.size() - 2]));
  CHECK(bitwise_equal(after[1], want[want.size() - 1]));
  m.free_sequence(s);
  m.free_sequence(f);
}

TEST_CASE("a row whose input is a token's embedding vector equals the row with that token id", "[cpu]") {
  auto& m = default_model();
  const seq_id s = m.create_sequence();
  (void)m.prefill(s, prompt);
  const std::vector<token_id> tokens = {3575, 282, 4649};
  const auto by_id = rows_of(run(m, sequence_step::chain(s, tokens, m.n_past(s))));
  m.truncate(s, m.n_past(s));

  sequence_step st = sequence_step::chain(s, tokens, m.n_past(s));
  st.tokens[1] = embedding_row;  // the middle row as a vector
  st.embeddings.resize(static_cast<std::size_t>(m.n_embd()));
  m.token_embedding(tokens[1], st.embeddings);
  const auto by_vector = rows_of(run(m, st));
  REQUIRE(by_vector.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(bitwise_equal(by_id[i], by_vector[i]));
  m.free_sequence(s);
}

TEST_CASE("a tree's extra rows (prompt-token vectors) change no node's logits and equal their path alone", "[cpu]") {
  // PPD's verify step: every node may carry chains of embedding rows that are verified in the same
  // forward and never committed. Nodes must keep the logits they have without them (bit for bit:
  // greedy output must not move), and an extra row must get the logits of its own path.
  auto& m = default_model();
  const auto tokens = random_tokens(tree_parent.size(), 11);
  draft_tree t;
  t.tokens = tokens;
  t.parent = tree_parent;
  t.depth.assign(tokens.size(), 0);
  for (std::size_t i = 1; i < tokens.size(); ++i) t.depth[i] = t.depth[static_cast<std::size_t>(tree_parent[i])] + 1;
  REQUIRE_NOTHROW(t.validate());

  const seq_id s = m.create_sequence();
  (void)m.prefill(s, prompt);
  const auto plain = rows_of(run(m, sequence_step::tree(s, t, m.n_past(s))));
  m.truncate(s, m.n_past(s));

  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const auto n = static_cast<std::size_t>(m.n_embd());
  std::vector<std::vector<float>> vectors(3, std::vector<float>(n));
  for (auto& v : vectors) for (auto& x : v) x = normal(rng);
  // Node 0 gets a chain of three, node 4 a chain of two, node 11 (depth 5) one.
  std::vector<std::pair<std::int32_t, std::int32_t>> chains = {{0, 3}, {4, 2}, {11, 1}};
  for (const auto [node, len] : chains) {
    std::int32_t parent = node;
    for (std::int32_t i = 0; i < len; ++i) parent = t.add_extra(parent, vectors[static_cast<std::size_t>(i)]);
  }
  REQUIRE_NOTHROW(t.validate());
  const auto with_extra = rows_of(run(m, sequence_step::tree(s, t, m.n_past(s))));
  REQUIRE(with_extra.size() == tokens.size() + 6);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    INFO("node " << i);
    CHECK(bitwise_equal(with_extra[i], plain[i]));
  }

  // Each extra row against its path run alone: the node's path as tokens, then the vectors.
  std::size_t row = tokens.size();
  for (const auto [node, len] : chains) {
    const auto path = path_to(tokens, tree_parent, static_cast<std::size_t>(node));
    const seq_id a = m.create_sequence();
    (void)m.prefill(a, prompt);
    sequence_step st = sequence_step::chain(a, path, m.n_past(a));
    for (std::int32_t i = 0; i < len; ++i) {
      st.tokens.push_back(embedding_row);
      st.positions.push_back(st.positions.back() + 1);
      st.parents.push_back(st.size() - 2);
      st.embeddings.insert(st.embeddings.end(), vectors[static_cast<std::size_t>(i)].begin(), vectors[static_cast<std::size_t>(i)].end());
    }
    const auto alone_rows = rows_of(run(m, st));
    for (std::int32_t i = 0; i < len; ++i, ++row) {
      INFO("extra row " << row << " (node " << node << ", prompt token " << i << ")");
      CHECK(bitwise_equal(with_extra[row], alone_rows[path.size() + static_cast<std::size_t>(i)]));
    }
    m.free_sequence(a);
  }
  m.free_sequence(s);
}

TEST_CASE("rollback then re-decode equals never having decoded", "[cpu]") {
  const auto kv = GENERATE(cpu::kv_format::f32, cpu::kv_format::f16, cpu::kv_format::bf16);
  INFO("--kv-type " << to_string(kv));
  auto& m = kv_model(kv);
  const seq_id s = m.create_sequence();
  (void)m.prefill(s, prompt);
  const auto base = m.n_past(s);
  const std::vector<token_id> first = {520, 9531, 198, 30, 31, 32, 33, 34};  // 8 tokens, into a new page? no matter
  (void)run(m, sequence_step::chain(s, first, base));
  std::vector<std::int32_t> all(first.size());
  std::iota(all.begin(), all.end(), 0);
  m.commit(s, all);
  m.truncate(s, base + 2);  // keep 520 9531
  CHECK(m.n_past(s) == base + 2);
  const std::vector<token_id> other = {4093, 47};
  const auto after = rows_of(run(m, sequence_step::chain(s, other, m.n_past(s))));

  std::vector<token_id> never = prompt;
  never.push_back(520);
  never.push_back(9531);
  CHECK(bitwise_equal(after[0], alone(m, never, {4093})));
  CHECK(bitwise_equal(after[1], alone(m, never, {4093, 47})));
  m.free_sequence(s);
}

TEST_CASE("the one-sequence adapter over a forward_step view grows trees with the same logits", "[cpu]") {
  auto& m = default_model();
  const auto tokens = random_tokens(tree_parent.size(), 13);
  const seq_id native = m.create_sequence();
  (void)m.prefill(native, prompt);
  const auto want = rows_of(run(m, part(native, tokens, tree_parent, m.n_past(native), 0, tokens.size())));
  m.free_sequence(native);

  sequence_view<cpu::llama_cpu> view(m);
  single_sequence_adapter<sequence_view<cpu::llama_cpu>> a(view);
  STATIC_REQUIRE(layered_sequence_model<single_sequence_adapter<sequence_view<cpu::llama_cpu>>>);
  // The prompt goes through the adapter, like every step.
  const seq_id s = a.create_sequence();
  CHECK_THROWS_AS(a.create_sequence(), error);
  {
    forward_batch b;
    b.steps.push_back(sequence_step::chain(s, prompt, 0, logits_request::none));
    CHECK(a.forward(b).rows.n_rows == 0);
    std::vector<std::int32_t> rows(prompt.size());
    std::iota(rows.begin(), rows.end(), 0);
    a.commit(s, rows);
  }
  std::vector<std::vector<float>> got;
  for (auto [from, to] : {std::pair<std::size_t, std::size_t>{0, 3}, {3, 8}, {8, 12}}) {
    forward_batch b;
    b.steps.push_back(part(s, tokens, tree_parent, a.n_past(s), from, to));
    const auto r = rows_of(a.forward(b).rows);
    got.insert(got.end(), r.begin(), r.end());
  }
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < got.size(); ++i) CHECK(bitwise_equal(got[i], want[i]));
  // Commit a path across the three forwards, then truncate by replay.
  a.commit(s, std::vector<std::int32_t>{0, 1, 3, 6});
  CHECK(a.n_past(s) == static_cast<std::int32_t>(prompt.size()) + 4);
  a.truncate(s, static_cast<std::int32_t>(prompt.size()));
  forward_batch b;
  b.steps.push_back(part(s, tokens, tree_parent, a.n_past(s), 0, 1));
  CHECK(bitwise_equal(specdec::test::copy_row(a.forward(b).rows, 0), want[0]));
}

TEST_CASE("a restricted head gives the full head's logits of its tokens, bit for bit", "[cpu]") {
  // A draft's cheaper head (core/restricted_head.hpp): rows of the head matrix copied once. Column j
  // must be the full head's column tokens[j] for every row of a tree step, with every layer and with
  // a layer subset; an odd count and unordered ids exercise the product's row tails.
  auto& m = default_model();
  std::vector<token_id> ids = {49151, 0, 17, 2, 4093};
  for (token_id t = 100; t < 100 + 1001; ++t) ids.push_back(t);
  const auto h = m.make_head_subset(ids);
  const auto tokens = random_tokens(tree_parent.size(), 11);
  for (const auto& layers : {std::vector<std::int32_t>{}, std::vector<std::int32_t>{0, 1, 2, 5, 8, 13, 21, 29}}) {
    std::vector<std::int32_t> run_layers = layers;
    if (run_layers.empty()) {
      run_layers.resize(static_cast<std::size_t>(m.n_layers()));
      std::iota(run_layers.begin(), run_layers.end(), 0);
    }
    INFO(run_layers.size() << " layers");
    const seq_id full = m.create_sequence(), restricted = m.create_sequence();
    (void)m.prefill(full, prompt);
    (void)m.prefill(restricted, prompt);
    forward_batch a, b;
    a.steps.push_back(part(full, tokens, tree_parent, m.n_past(full), 0, tokens.size()));
    b.steps.push_back(part(restricted, tokens, tree_parent, m.n_past(restricted), 0, tokens.size()));
    const auto want = rows_of(m.forward(a, run_layers).rows);
    const auto got_view = m.forward(b, run_layers, h).rows;
    REQUIRE(got_view.n_vocab == static_cast<std::int32_t>(ids.size()));
    const auto got = rows_of(got_view);
    REQUIRE(got.size() == want.size());
    std::size_t differing = 0;
    for (std::size_t r = 0; r < got.size(); ++r) {
      for (std::size_t j = 0; j < ids.size(); ++j) {
        const float w = want[r][static_cast<std::size_t>(ids[j])];
        if (std::memcmp(&w, &got[r][j], sizeof(float)) != 0) ++differing;
      }
    }
    CHECK(differing == 0);
    m.free_sequence(full);
    m.free_sequence(restricted);
  }
  CHECK_THROWS_WITH(m.make_head_subset({}), Catch::Contains("no tokens"));
  CHECK_THROWS_WITH(m.make_head_subset({3, 49152}), Catch::Contains("token id 49152 outside the vocabulary"));
  CHECK_THROWS_WITH(m.make_head_subset({3, 5, 3}), Catch::Contains("token id 3 given twice"));
}

TEST_CASE("bad sequence calls are clear errors and change nothing", "[cpu]") {
  auto& m = default_model();
  const seq_id s = m.create_sequence();
  (void)m.prefill(s, prompt);
  const auto n = m.n_past(s);
  sequence_step bad = sequence_step::chain(s, std::vector<token_id>{5}, n);
  bad.parents[0] = 3;  // no pending row 3
  CHECK_THROWS_WITH(run(m, bad), Catch::Contains("parent 3"));
  CHECK_THROWS_WITH(run(m, sequence_step::chain(99, std::vector<token_id>{5}, 0)), Catch::Contains("sequence 99"));
  forward_batch twice;
  twice.steps.push_back(sequence_step::chain(s, std::vector<token_id>{5}, n));
  twice.steps.push_back(sequence_step::chain(s, std::vector<token_id>{6}, n));
  CHECK_THROWS_WITH(m.forward(twice), Catch::Contains("two steps"));
  sequence_step emb = sequence_step::chain(s, std::vector<token_id>{embedding_row}, n);
  CHECK_THROWS_WITH(run(m, emb), Catch::Contains("embeddings hold 0 floats"));
  CHECK(m.n_pending(s) == 0);
  (void)run(m, sequence_step::chain(s, std::vector<token_id>{5, 6, 7}, n));
  CHECK_THROWS_WITH(m.commit(s, std::vector<std::int32_t>{1}), Catch::Contains("root-to-node path"));
  CHECK_THROWS_WITH(m.commit(s, std::vector<std::int32_t>{0, 2}), Catch::Contains("root-to-node path"));
  CHECK_THROWS_WITH(m.commit(s, std::vector<std::int32_t>{0, 1, 2, 3}), Catch::Contains("not pending"));
  CHECK(m.n_pending(s) == 3);
  CHECK_THROWS_AS(m.truncate(s, n + 1), error);
  std::vector<token_id> huge(2048, 5);
  try {
    (void)run(m, sequence_step::chain(s, huge, n));
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.category() == error_category::capacity);
    CHECK_THAT(e.what(), Catch::Contains("n_ctx is 2048"));
  }
  CHECK(m.n_pending(s) == 3);
  m.commit(s, std::vector<std::int32_t>{0, 1});
  CHECK(m.n_past(s) == n + 2);
  m.free_sequence(s);
  CHECK_THROWS_AS(m.n_past(s), error);
}

TEST_CASE("the page pool follows the tokens held and has a cap", "[cpu]") {
  cpu::llama_cpu m(SPECDEC_TEST_MODEL, cpu::llama_cpu_options{1, 256, 64, 2, 192});
  CHECK(m.cache().bytes_allocated() == 0);
  const seq_id a = m.create_sequence();
  const seq_id b = m.create_sequence();
  CHECK_THROWS_WITH(m.create_sequence(), Catch::Contains("max_sequences"));
  (void)m.prefill(a, random_tokens(100, 1));  // 2 pages
  CHECK(m.cache().pages_in_use() == 2);
  CHECK(m.cache().bytes_allocated() == 2 * 64 * m.cache().bytes_per_token());
  // 192 slots = 3 pages: b cannot take 2 more.
  try {
    (void)m.prefill(b, random_tokens(100, 2));
    FAIL("no exception");
  } catch (const error& e) {
    CHECK(e.category() == error_category::capacity);
    CHECK_THAT(e.what(), Catch::Contains("kv_slots"));
  }
  CHECK(m.n_past(b) == 64);  // the first chunk fitted; the second did not, and changed nothing
  m.truncate(a, 10);
  CHECK(m.cache().pages_in_use() == 2);
  (void)m.prefill(b, random_tokens(36, 3));
  CHECK(m.n_past(b) == 100);
  m.free_sequence(a);
  m.free_sequence(b);
  CHECK(m.cache().pages_in_use() == 0);
}
