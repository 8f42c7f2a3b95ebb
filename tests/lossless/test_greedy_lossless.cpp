// Lossless greedy decoding on the real model: for every prompt of data/prompts/dev.jsonl (chat
// template applied), Token Recycling and Lookahead produce exactly the 64 tokens of plain greedy
// decoding. Drafter state persists from prompt to prompt, as in a server.
#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/drafters/token_recycling.hpp>
#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

using namespace specdec;

TEST_CASE("Token Recycling and Lookahead equal plain greedy decoding on every dev prompt", "[verify][slow]") {
  const gguf::file f(SPECDEC_TEST_MODEL);
  tokenizer tok = tokenizer_from_gguf(f);
  const auto tmpl = chat_template::detect(f.get<std::string>("tokenizer.chat_template"));
  cpu::llama_cpu model(f, cpu::llama_cpu_options{2, 1024, 64});

  null_drafter ar;
  token_recycling_drafter tr(model.n_vocab(), token_recycling_options{"tr-24", 8});
  lookahead_trie_drafter la(lookahead_options{});
  greedy_rule rule;
  generate_options opt;
  opt.max_new_tokens = 64;

  std::ifstream in(SPECDEC_DEV_PROMPTS);
  REQUIRE(in);
  std::string line;
  int n_prompts = 0;
  decode_stats tr_stats, la_stats;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const std::string id = j["id"].get<std::string>();
    const std::vector<chat_message> messages = {{"user", j["turns"][0].get<std::string>()}};
    const auto prompt = tok.encode(tmpl.apply(messages, true), {.parse_special = true});
    INFO("prompt " << id);
    opt.budget = 1;
    const auto want = generate(model, ar, rule, prompt, opt).tokens;
    REQUIRE(want.size() == 64);
    opt.budget = 25;
    const auto got_tr = generate(model, tr, rule, prompt, opt);
    CHECK(got_tr.tokens == want);
    opt.budget = 33;
    const auto got_la = generate(model, la, rule, prompt, opt);
    CHECK(got_la.tokens == want);
    tr_stats.add(got_tr.stats);
    la_stats.add(got_la.stats);
    ++n_prompts;
  }
  CHECK(n_prompts == 36);
  // The drafters really draft: both accept tokens (MAT above 1), so equality is not trivial.
  CHECK(tr_stats.mat() > 1.3);
  CHECK(la_stats.mat() > 1.1);
  WARN("MAT token-recycling " << tr_stats.mat() << ", lookahead " << la_stats.mat());
}
