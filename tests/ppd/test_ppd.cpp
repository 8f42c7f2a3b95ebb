// Parallel prompt decoding on the real default model with the committed, trained artifact
// (data/ppd/SmolLM2-135M-Instruct.Q4_1.ppd, tools/ppd/train.sh):
//  * the training forward (tools/ppd/model.py, PyTorch float32) and the C++ backend give the same
//    logits for a prompt followed by prompt-token rows (the fixture make_ppd_fixture writes the
//    PyTorch side; here the same rows run through llama_cpu);
//  * greedy PPD decoding equals plain greedy decoding token for token on a prompt per category, at
//    several budgets, and the trained prompt tokens are really accepted;
//  * the loader refuses damaged or foreign files with an error naming the file and the problem.
#include "../cpu/model_fixture.hpp"
#include "../gguf/gguf_builder.hpp"
#include "../gguf/test_support.hpp"
#include "../lossless/dev_prompts.hpp"
#include "../numerics.hpp"

#include <specdec/drafters/ppd.hpp>
#include <specdec/drafters/ppd_file.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <iterator>

using namespace specdec;
using specdec::test::relative_error;

namespace {

const std::string artifact_path = SPECDEC_PPD_ARTIFACT;

// float32 on both sides, summing in different orders: measured worst 4.2e-6 on the prompt's token
// rows and 7.2e-7 on the prompt-token rows (AVX-512 host); the bound leaves a 5x margin.
constexpr double max_rel = 2e-5;

// MAT the committed artifact must reach on the test's prompts (6 x 48 tokens, greedy), half of the
// measured gain over 1 at each budget: measured 1.27 / 1.46 / 1.65 / 1.73 at 4 / 10 / 24 / 60 rows.
// Budget 2 (the root and one prompt row) holds no candidate.
double min_mat(std::int32_t budget) {
  return budget >= 60 ? 1.36 : budget >= 24 ? 1.32 : budget >= 10 ? 1.23 : budget >= 4 ? 1.13 : 1.0;
}

std::vector<std::byte> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(c.size());
  std::memcpy(out.data(), c.data(), c.size());
  return out;
}

}  // namespace

TEST_CASE("the committed artifact loads and matches the default model", "[ppd]") {
  const gguf::file model(SPECDEC_TEST_MODEL);
  const auto a = load_ppd(artifact_path, &model);
  CHECK(a.n_prompt_tokens == 3);
  CHECK(a.ensemble == 1);
  CHECK(a.n_embd == 576);
  CHECK(a.n_vocab == 49152);
  CHECK(a.top_k == 10);
  CHECK(a.bytes() < 1 << 20);  // the whole artifact in memory: vectors and trees
  // The held-out accuracies are probabilities, falling with the offset at rank 0.
  for (const float x : a.accuracy) CHECK((x >= 0.0f && x <= 1.0f));
  CHECK(a.accuracy[0] > a.accuracy[static_cast<std::size_t>(a.top_k)]);
  for (std::int32_t s = 0; s <= a.n_prompt_tokens; ++s) CHECK(a.tree_for(s, 64) != nullptr);
}

TEST_CASE("the PPD loader refuses damaged and foreign files, naming the problem", "[ppd]") {
  const auto good = file_bytes(artifact_path);
  REQUIRE(!good.empty());
  const auto load = [](std::vector<std::byte> b) { return load_ppd(gguf::file::from_bytes(std::move(b), "x.ppd")); };
  REQUIRE_NOTHROW(load(good));

  SECTION("a flipped bit in the prompt vectors fails the checksum") {
    const gguf::file f = gguf::file::from_bytes(good, "x.ppd");
    const auto& t = f.tensor("ppd.prompt_embd");
    const auto offset = f.data_offset() + t.offset + 4 * 100 + 1;
    auto bad = good;
    bad[offset] ^= std::byte{0x10};
    CHECK_THROWS_WITH(load(bad), Catch::Contains("x.ppd") && Catch::Contains("ppd.checksum"));
  }
  SECTION("every truncation is an error, never a crash") {
    for (std::size_t n = 0; n < good.size(); n += 1 + good.size() / 257) {
      std::vector<std::byte> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
      CHECK_THROWS_AS(load(cut), error);
    }
  }
  SECTION("a model GGUF is not an artifact") {
    CHECK_THROWS_WITH(load_ppd(SPECDEC_TEST_MODEL), Catch::Contains("not 'specdec-ppd'"));
  }
  SECTION("an artifact for another model is refused") {
    // A model whose token embeddings have the right shape but other values.
    specdec::test::gguf_builder b;
    b.add_string("general.architecture", "llama");
    b.add_f32_tensor("token_embd.weight", {576, 49152}, 0.5f);
    const gguf::file other = gguf::file::from_bytes(b.bytes(), "other.gguf");
    CHECK_THROWS_WITH(load_ppd(artifact_path, &other), Catch::Contains("token_embd_fnv1a64") && Catch::Contains("other.gguf"));
    specdec::test::gguf_builder c;
    c.add_string("general.architecture", "llama");
    c.add_f32_tensor("token_embd.weight", {64, 49152}, 0.5f);
    const gguf::file narrow = gguf::file::from_bytes(c.bytes(), "narrow.gguf");
    CHECK_THROWS_WITH(load_ppd(artifact_path, &narrow), Catch::Contains("n_embd 576") && Catch::Contains("has 64"));
  }
}

TEST_CASE("the training forward (PyTorch) and the C++ backend agree on prompt-token rows", "[ppd][reference]") {
  const auto j = specdec::test::read_json(std::string(SPECDEC_PPD_FIXTURES) + "/ppd_agreement.json");
  const auto dir = std::string(SPECDEC_PPD_FIXTURES) + "/";
  const auto tokens = j["tokens"].get<std::vector<token_id>>();
  const auto positions = j["positions"].get<std::vector<std::int32_t>>();
  const auto parents = j["parents"].get<std::vector<std::int32_t>>();
  const auto n_vocab = j["n_vocab"].get<std::size_t>();
  const auto embeddings = specdec::test::read_f32(dir + j["embeddings_file"].get<std::string>());
  const auto want = specdec::test::read_f32(dir + j["logits_file"].get<std::string>());
  const std::size_t n_prompt = positions.size();
  REQUIRE(parents.size() == n_prompt);
  REQUIRE(n_prompt >= 3);

  auto& m = specdec::test::fp32_model();
  REQUIRE(embeddings.size() == n_prompt * static_cast<std::size_t>(m.n_embd()));
  const seq_id s = m.create_sequence();
  sequence_step st = sequence_step::chain(s, tokens, 0);
  for (std::size_t i = 0; i < n_prompt; ++i) {
    st.tokens.push_back(embedding_row);
    st.positions.push_back(positions[i]);
    st.parents.push_back(parents[i]);
  }
  st.embeddings = embeddings;
  forward_batch b;
  b.steps.push_back(st);
  const auto got = m.forward(b).rows;
  const std::size_t rows = tokens.size() + n_prompt;
  REQUIRE(static_cast<std::size_t>(got.n_rows) == rows);
  REQUIRE(want.size() == rows * n_vocab);
  double worst_prompt = 0, worst_token = 0;
  for (std::size_t r = 0; r < rows; ++r) {
    const auto g = got.row(static_cast<std::int32_t>(r));
    const std::span<const float> w(want.data() + r * n_vocab, n_vocab);
    const double e = relative_error(g, w);
    (r < tokens.size() ? worst_token : worst_prompt) = std::max(r < tokens.size() ? worst_token : worst_prompt, e);
    if (r >= tokens.size()) CHECK(specdec::test::argmax(g) == specdec::test::argmax(w));
  }
  INFO("relative error: token rows " << worst_token << ", prompt-token rows " << worst_prompt);
  CHECK(worst_token < max_rel);
  CHECK(worst_prompt < max_rel);
  m.free_sequence(s);
}

TEST_CASE("greedy PPD decoding equals plain greedy decoding on a prompt per category", "[ppd][slow]") {
  const gguf::file f(SPECDEC_TEST_MODEL);
  auto& model = specdec::test::default_model();
  auto a = std::make_shared<const ppd_artifact>(load_ppd(artifact_path, &f));
  std::vector<std::vector<token_id>> prompts;
  for (auto& p : specdec::test::first_prompt_per_category(f)) prompts.push_back(std::move(p.tokens));
  REQUIRE(prompts.size() >= 5);

  greedy_rule rule;
  generate_options opt;
  opt.max_new_tokens = 48;
  null_drafter ar;
  std::vector<std::vector<token_id>> wants;
  for (const auto& p : prompts) wants.push_back(generate(model, ar, rule, p, opt).tokens);

  for (const std::int32_t budget : {2, 4, 10, 24, 60}) {
    ppd_drafter d(a);
    decode_stats st;
    opt.budget = budget;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      INFO("budget " << budget << ", prompt " << i);
      const auto got = generate(model, d, rule, prompts[i], opt);
      CHECK(got.tokens == wants[i]);
      st.add(got.stats);
    }
    INFO("budget " << budget << ": MAT " << st.mat());
    CHECK(st.n_extra_rows > 0);
    CHECK(st.mat() >= min_mat(budget));
  }
}
