// Lossless greedy decoding for every storage setting of the CPU backend: under each --weights /
// --activations / --kv-type combination other than the default (which test_lossless_greedy covers
// on all 36 prompts), Token Recycling and Lookahead produce exactly the 32 tokens of plain greedy
// decoding (AR at batch 1) on the same setting, on one dev prompt per category, one request at a
// time and three at once in one decoder (rows of different requests share forwards). Speculation
// verifies against the model it runs on, so a lossy setting (int8 activations, a 16-bit KV cache)
// must still be lossless relative to its own AR: this holds only if a row's logits do not depend
// on the rest of the batch, which is what each setting's kernels promise.
#include "dev_prompts.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/drafters/token_recycling.hpp>
#include <specdec/verify/decoder.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include <map>

using namespace specdec;

TEST_CASE("Token Recycling and Lookahead equal plain greedy decoding under every weight, activation and KV format",
          "[verify][slow]") {
  const gguf::file f(SPECDEC_TEST_MODEL);
  std::vector<std::vector<token_id>> prompts;
  for (auto& p : specdec::test::first_prompt_per_category(f)) prompts.push_back(std::move(p.tokens));
  REQUIRE(prompts.size() == 6);

  struct setting {
    cpu::weight_format weights;
    cpu::activation_format activations;
    cpu::kv_format kv;
  };
  using cpu::activation_format;
  using cpu::kv_format;
  using cpu::weight_format;
  const setting settings[] = {
      {weight_format::fp32, activation_format::f32, kv_format::f32},
      {weight_format::bf16, activation_format::f32, kv_format::f32},
      {weight_format::q8, activation_format::f32, kv_format::f32},
      {weight_format::automatic, activation_format::int8, kv_format::f32},
      {weight_format::q8, activation_format::int8, kv_format::f32},
      {weight_format::automatic, activation_format::f32, kv_format::f16},
      {weight_format::automatic, activation_format::f32, kv_format::bf16},
  };
  for (const auto& s : settings) {
    INFO("--weights " << to_string(s.weights) << " --activations " << to_string(s.activations) << " --kv-type "
                      << to_string(s.kv));
    cpu::llama_cpu_options mo{2, 512, 64};
    mo.weights = s.weights;
    mo.activations = s.activations;
    mo.kv_type = s.kv;
    cpu::llama_cpu model(f, mo);
    greedy_rule rule;
    generate_options opt;
    opt.max_new_tokens = 32;
    null_drafter ar;
    token_recycling_drafter tr(model.n_vocab(), token_recycling_options{"tr-8", 8});
    lookahead_trie_drafter la(lookahead_options{});
    decode_stats tr_stats, la_stats;
    std::vector<std::vector<token_id>> wants;
    for (std::size_t p = 0; p < prompts.size(); ++p) {
      INFO("prompt " << p);
      opt.budget = 1;
      wants.push_back(generate(model, ar, rule, prompts[p], opt).tokens);
      REQUIRE(wants.back().size() == 32);
      opt.budget = 9;
      const auto got_tr = generate(model, tr, rule, prompts[p], opt);
      CHECK(got_tr.tokens == wants.back());
      opt.budget = 12;
      const auto got_la = generate(model, la, rule, prompts[p], opt);
      CHECK(got_la.tokens == wants.back());
      tr_stats.add(got_tr.stats);
      la_stats.add(got_la.stats);
    }
    // Both drafters accept drafted tokens, so the equality is not that of two AR runs.
    CHECK(tr_stats.mat() > 1.1);
    CHECK(la_stats.mat() > 1.05);

    // Three requests at once, joining one per step.
    auto batched = [&](auto& d, std::int32_t budget) {
      decoder<cpu::llama_cpu, std::decay_t<decltype(d)>, greedy_rule> dec(model, decoder_options{3, 64});
      std::size_t next = 0;
      std::vector<std::vector<token_id>> out(prompts.size());
      std::map<request_id, std::size_t> which;
      while (next < prompts.size() || !dec.idle()) {
        if (next < prompts.size() && dec.n_active() + dec.n_queued() < 3) {
          generate_options o = opt;
          o.budget = budget;
          which[dec.add(prompts[next], d, rule, o)] = next;
          ++next;
        }
        dec.step();
        for (auto& r : dec.take_finished()) out[which.at(r.id)] = r.tokens;
      }
      return out;
    };
    const auto tr_out = batched(tr, 9);
    const auto la_out = batched(la, 9);
    for (std::size_t p = 0; p < prompts.size(); ++p) {
      INFO("batch 3, prompt " << p);
      CHECK(tr_out[p] == wants[p]);
      CHECK(la_out[p] == wants[p]);
    }
    WARN("--weights " << to_string(s.weights) << " --activations " << to_string(s.activations) << " --kv-type "
                      << to_string(s.kv) << ": MAT token-recycling " << tr_stats.mat() << ", lookahead "
                      << la_stats.mat());
  }
}
