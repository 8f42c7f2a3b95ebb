// Lossless greedy decoding on the real model: for every prompt of data/prompts/dev.jsonl (chat
// template applied), Token Recycling and Lookahead produce exactly the 64 tokens of plain greedy
// decoding (AR at batch 1), one request at a time, and on every other prompt in a batch of 4
// where requests join at different steps as others finish (AR too). Drafter state persists from prompt to prompt, as in a
// server.
#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/drafters/token_recycling.hpp>
#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <specdec/verify/decoder.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

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
  std::vector<std::vector<token_id>> prompts, wants;
  std::vector<std::string> ids;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto j = nlohmann::json::parse(line);
    const std::string id = j["id"].get<std::string>();
    const std::vector<chat_message> messages = {{"user", j["turns"][0].get<std::string>()}};
    const auto prompt = tok.encode(tmpl.apply(messages, true), {.parse_special = true});
    INFO("prompt " << id);
    ids.push_back(id);
    prompts.push_back(prompt);
    opt.budget = 1;
    const auto want = generate(model, ar, rule, prompt, opt).tokens;
    REQUIRE(want.size() == 64);
    wants.push_back(want);
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

  // Batch of 4 over every other prompt (18, three of each category; CI time): one request joins per
  // step while fewer than 4 are open, so requests start at different steps and share forwards with
  // requests of other ages.
  std::vector<std::size_t> picked;
  for (std::size_t i = 0; i < prompts.size(); i += 2) picked.push_back(i);
  const std::size_t batched_prompts = picked.size();
  auto batched = [&](auto& d, std::int32_t budget) {
    decoder<cpu::llama_cpu, std::decay_t<decltype(d)>, greedy_rule> dec(model, decoder_options{4, 64});
    std::size_t next = 0;
    std::vector<std::vector<token_id>> out(batched_prompts);
    std::map<request_id, std::size_t> which;
    decode_stats st;
    while (next < batched_prompts || !dec.idle()) {
      if (next < batched_prompts && dec.n_active() + dec.n_queued() < 4) {
        generate_options o = opt;
        o.budget = budget;
        which[dec.add(prompts[picked[next]], d, rule, o)] = next;
        ++next;
      }
      dec.step();
      for (auto& r : dec.take_finished()) {
        out[which.at(r.id)] = r.tokens;
        st.add(r.stats);
      }
    }
    return std::pair{out, st};
  };
  null_drafter ar4;
  // Budgets of 9 nodes: 36 rows per forward at batch 4 (the batch-1 runs above use wide trees).
  token_recycling_drafter tr4(model.n_vocab(), token_recycling_options{"tr-8", 8});
  lookahead_trie_drafter la4(lookahead_options{});
  const auto [ar_out, ar_st] = batched(ar4, 1);
  const auto [tr_out, tr_st] = batched(tr4, 9);
  const auto [la_out, la_st] = batched(la4, 9);
  for (std::size_t i = 0; i < batched_prompts; ++i) {
    INFO("batch 4, prompt " << ids[picked[i]]);
    CHECK(ar_out[i] == wants[picked[i]]);
    CHECK(tr_out[i] == wants[picked[i]]);
    CHECK(la_out[i] == wants[picked[i]]);
  }
  CHECK(tr_st.mat() > 1.2);
  CHECK(la_st.mat() > 1.1);
  WARN("batch 4: MAT token-recycling " << tr_st.mat() << ", lookahead " << la_st.mat());
}
