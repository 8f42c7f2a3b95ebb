// Lossless greedy decoding with a draft model on the real model: self-speculation (the draft is the
// target on a subset of its layers, core/layer_subset.hpp) produces exactly the 40 tokens of plain
// greedy decoding on one dev prompt of every category (chat template applied), for every tree shape
// of model_drafter (DySpec by heap and by level, chain SpS, fixed k-ary tree) with the calibrated
// subset (data/calibration's skip order, its first 6 layers dropped), and for DySpec by level with
// the first 24 layers. Drafts are sampled at the draft temperature 0.6 (the paper's setting), so the
// trees differ from step to step and from the target's argmax. A draft with a restricted head (the
// 8,192 most frequent tokens, core/restricted_head.hpp) on the calibrated subset, likewise.
#include "dev_prompts.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/core/layer_subset.hpp>
#include <specdec/core/restricted_head.hpp>
#include <specdec/drafters/model_drafter.hpp>
#include <specdec/skip/skip_plan.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

using namespace specdec;

TEST_CASE("draft-model trees (self-speculation) equal plain greedy decoding on a prompt per category", "[verify][slow]") {
  const gguf::file f(SPECDEC_TEST_MODEL);
  cpu::llama_cpu model(f, cpu::llama_cpu_options{2, 1024, 64});

  std::vector<std::vector<token_id>> prompts;
  std::vector<std::string> ids;
  for (auto& p : specdec::test::first_prompt_per_category(f)) {
    ids.push_back(p.id);
    prompts.push_back(std::move(p.tokens));
  }
  REQUIRE(prompts.size() >= 5);

  greedy_rule rule;
  generate_options opt;
  opt.max_new_tokens = 40;
  null_drafter ar;
  std::vector<std::vector<token_id>> wants;
  for (const auto& p : prompts) {
    wants.push_back(generate(model, ar, rule, p, opt).tokens);
    REQUIRE(wants.back().size() == 40);
  }

  const auto plan = skip::read_skip_plan(
      (std::filesystem::path(SPECDEC_DEV_PROMPTS).parent_path().parent_path() / "calibration" /
       "SmolLM2-135M-Instruct.Q4_1.skip-plan").string());
  REQUIRE(plan.n_layers == model.n_layers());
  std::vector<std::int32_t> calibrated;
  const auto order = plan.order_for_warmup(1);
  for (std::int32_t l = 0; l < model.n_layers(); ++l) {
    if (std::find(order.begin(), order.begin() + 6, l) == order.begin() + 6) calibrated.push_back(l);
  }
  REQUIRE(calibrated.size() == 24);
  const std::vector<std::pair<std::string, std::vector<std::int32_t>>> subsets = {
      {"first 24 layers", parse_layer_list("first:24")}, {"calibrated, 6 skipped", calibrated}};

  struct shape_case {
    draft_shape shape;
    std::int32_t budget;
  };
  for (const auto& [subset_name, layers] : subsets) {
    layer_subset<cpu::llama_cpu> draft(model, layers);
    std::vector<shape_case> cases = {{draft_shape::dyspec_level, 10}};
    if (subset_name != "first 24 layers") {
      cases.insert(cases.end(), {{draft_shape::dyspec, 6}, {draft_shape::chain, 5}, {draft_shape::kary, 10}});
    }
    for (const auto sc : cases) {
      model_drafter_options o;
      o.shape = sc.shape;
      o.branching = {3, 2, 1};
      model_drafter<layer_subset<cpu::llama_cpu>> d(draft, o);
      decode_stats st;
      opt.budget = sc.budget;
      for (std::size_t i = 0; i < prompts.size(); ++i) {
        INFO(subset_name << ", " << to_string(sc.shape) << ", prompt " << ids[i]);
        const auto got = generate(model, d, rule, prompts[i], opt);
        CHECK(got.tokens == wants[i]);
        st.add(got.stats);
      }
      // Drafts are accepted, so the equality is not trivial (the cache follows accepted paths).
      INFO(subset_name << ", " << to_string(sc.shape));
      CHECK(st.mat() > 1.2);
      WARN(subset_name << ", " << to_string(sc.shape) << " budget " << sc.budget << ": MAT " << st.mat());
    }
  }

  // A restricted draft head (the 8,192 most frequent tokens and the end tokens) on the calibrated
  // subset: the draft can only propose those, the output is still plain greedy decoding's.
  restricted_head<cpu::llama_cpu> draft(model, frequent_tokens(8192, model.n_vocab(), std::vector<token_id>{2}), calibrated);
  model_drafter_options o;
  o.shape = draft_shape::dyspec_level;
  model_drafter<restricted_head<cpu::llama_cpu>> d(draft, o);
  decode_stats st;
  opt.budget = 10;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    INFO("restricted head, prompt " << ids[i]);
    const auto got = generate(model, d, rule, prompts[i], opt);
    CHECK(got.tokens == wants[i]);
    st.add(got.stats);
  }
  CHECK(st.mat() > 1.2);
  WARN("restricted head (8192 tokens), calibrated subset, dyspec-level budget 10: MAT " << st.mat());
}
