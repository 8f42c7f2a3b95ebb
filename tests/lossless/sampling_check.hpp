// Test helper for the lossless-sampling tests: the tiny random Llama and the exact distribution of its
// first three sampled tokens, both made by tools/reference/sampling_fixtures.py (the ctest fixture
// make_sampling_fixtures, which runs first); the empirical distribution from speculative generation on
// the real CPU backend; and a chi-square goodness-of-fit test between them.
#pragma once

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/core/sequence_view.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/sampling.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace specdec::test {

inline std::string sampling_fixture(const std::string& rel) {
  return std::string(SPECDEC_TEST_FIXTURES) + "/sampling/" + rel;
}

// The model the reference distributions were computed on (vocabulary 8, 2 layers, 16-dim embeddings,
// 2 query heads sharing 1 kv head, random weights from a fixed NumPy seed), run by the CPU backend.
inline cpu::llama_cpu tiny_llama() {
  return cpu::llama_cpu(gguf::file(sampling_fixture("tiny_llama.gguf")), cpu::llama_cpu_options{1, 256, 64});
}

// One sampling setting of distributions.json: its parameters and the float64 reference
// P(t1, t2, t3 | prompt), flattened [V * V * V] with index (t1 * V + t2) * V + t3.
struct reference_setting {
  std::string name;
  sampling_params params;
  double min_cut_margin = INFINITY;  // smallest distance of a probability to a top-k / top-p cut
  std::vector<double> probs;
};

struct sampling_reference {
  std::vector<token_id> prompt;
  std::int32_t n_vocab = 0;
  double min_margin_required = 0;
  std::vector<reference_setting> settings;

  [[nodiscard]] const reference_setting& get(const std::string& name) const {
    for (const auto& s : settings) {
      if (s.name == name) return s;
    }
    throw std::runtime_error("distributions.json has no setting '" + name + "'");
  }
};

inline const sampling_reference& reference() {
  static const sampling_reference ref = [] {
    const std::string path = sampling_fixture("distributions.json");
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path + " (made by the make_sampling_fixtures test)");
    const auto j = nlohmann::json::parse(in);
    sampling_reference r;
    r.prompt = j.at("prompt").get<std::vector<token_id>>();
    r.n_vocab = j.at("n_vocab").get<std::int32_t>();
    r.min_margin_required = j.at("min_margin_required").get<double>();
    for (const auto& s : j.at("settings")) {
      reference_setting rs;
      rs.name = s.at("name").get<std::string>();
      rs.params = sampling_params{s.at("temperature").get<float>(), s.at("top_k").get<std::int32_t>(),
                                  s.at("top_p").get<float>()};
      if (!s.at("min_cut_margin").is_null()) rs.min_cut_margin = s.at("min_cut_margin").get<double>();
      rs.probs = s.at("probs").get<std::vector<double>>();
      r.settings.push_back(std::move(rs));
    }
    return r;
  }();
  return ref;
}

inline std::vector<float> dense(const token_distribution& d, std::int32_t n_vocab) {
  std::vector<float> p(static_cast<std::size_t>(n_vocab), 0.0f);
  for (std::size_t i = 0; i < d.ids.size(); ++i) p[static_cast<std::size_t>(d.ids[i])] = d.probs[i];
  return p;
}

// P(t1, t2, t3 | prompt) as the C++ sampler computes it (distribution() over the backend's float32
// logits, one chain forward per context), flattened like the reference. Not the ground truth of the
// chi-square tests (that is the Python reference); compared against it cell by cell.
inline std::vector<double> backend_three_token_distribution(cpu::llama_cpu& model, const std::vector<token_id>& prompt,
                                                            const sampling_params& sp) {
  sequence_view<cpu::llama_cpu> m(model);
  const std::int32_t v = m.n_vocab();
  auto next = [&](const std::vector<token_id>& ctx) {
    m.reset();
    const auto l = m.forward(step_batch::chain(ctx, 0));
    return dense(distribution(l.row(l.n_rows - 1), sp), v);
  };
  std::vector<double> p(static_cast<std::size_t>(v * v * v), 0.0);
  const auto p1 = next(prompt);
  for (token_id a = 0; a < v; ++a) {
    if (p1[static_cast<std::size_t>(a)] == 0) continue;
    auto ctx = prompt;
    ctx.push_back(a);
    const auto p2 = next(ctx);
    for (token_id b = 0; b < v; ++b) {
      if (p2[static_cast<std::size_t>(b)] == 0) continue;
      auto ctx2 = ctx;
      ctx2.push_back(b);
      const auto p3 = next(ctx2);
      for (token_id c = 0; c < v; ++c) {
        p[static_cast<std::size_t>((a * v + b) * v + c)] = static_cast<double>(p1[static_cast<std::size_t>(a)]) *
                                                           p2[static_cast<std::size_t>(b)] * p3[static_cast<std::size_t>(c)];
      }
    }
  }
  return p;
}

struct chi_square_result {
  double statistic = 0;
  int dof = 0;
  double p_value = 0;
};

// Pearson's chi-square of counts against expected probabilities; cells with expected count < 5 are
// pooled into one. The p-value uses the Wilson-Hilferty normal approximation of the chi-square
// distribution, accurate to a few percent of p for the tens to hundreds of degrees of freedom here.
// A count in a cell of probability 0 is an impossible outcome: p = 0.
inline chi_square_result chi_square(const std::vector<std::int64_t>& counts, const std::vector<double>& probs) {
  std::int64_t n = 0;
  for (auto c : counts) n += c;
  double stat = 0, pooled_e = 0, pooled_o = 0;
  int cells = 0;
  bool impossible = false;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0) {
      impossible = impossible || counts[i] != 0;
      continue;
    }
    const double e = probs[i] * static_cast<double>(n);
    if (e < 5) {
      pooled_e += e;
      pooled_o += static_cast<double>(counts[i]);
      continue;
    }
    stat += (static_cast<double>(counts[i]) - e) * (static_cast<double>(counts[i]) - e) / e;
    ++cells;
  }
  if (pooled_e > 0) {
    stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / std::max(pooled_e, 1e-9);
    ++cells;
  }
  chi_square_result r;
  r.statistic = stat;
  r.dof = cells - 1;
  const double k = r.dof;
  const double z = (std::cbrt(stat / k) - (1 - 2 / (9 * k))) / std::sqrt(2 / (9 * k));
  r.p_value = impossible ? 0.0 : 0.5 * std::erfc(z / std::sqrt(2.0));
  return r;
}

// Generates `n_samples` three-token continuations with `drafter` (its learned state carries over from
// sample to sample, as in a server) and returns the counts per (t1, t2, t3) and the loop's counters.
template <class Drafter>
std::vector<std::int64_t> sample_three_tokens(cpu::llama_cpu& m, Drafter& d, const std::vector<token_id>& prompt,
                                              const sampling_params& sp, std::int32_t budget, int n_samples,
                                              decode_stats& stats) {
  const std::int32_t v = m.n_vocab();
  std::vector<std::int64_t> counts(static_cast<std::size_t>(v * v * v), 0);
  sampling_rule rule{sp};
  generate_options opt;
  opt.max_new_tokens = 3;
  opt.budget = budget;
  for (int s = 0; s < n_samples; ++s) {
    opt.seed = 1000003ull * static_cast<std::uint64_t>(s) + 17;
    const auto r = generate(m, d, rule, prompt, opt);
    const auto& t = r.tokens;
    ++counts[static_cast<std::size_t>((t[0] * v + t[1]) * v + t[2])];
    stats.add(r.stats);
  }
  return counts;
}

// Proposes every token at depth 1 and every pair at depth 2 (8 + 64 nodes for vocabulary 8), so each
// sample walks two levels of the tree: the rule's descent is exercised on every draw.
struct full_tree_drafter {
  std::int32_t n_vocab = 8;
  void begin(request_id, std::span<const token_id>) {}
  draft_tree draft(request_id, const draft_request& r) const {
    draft_tree t = draft_tree::root_only(r.context.back());
    for (token_id a = 0; a < n_vocab && t.size() < r.budget; ++a) {
      const auto node = t.add(0, a);
      for (token_id b = 0; b < n_vocab && t.size() < r.budget; ++b) t.add(node, b);
    }
    return t;
  }
  void observe(request_id, const step_outcome&) {}
  void end(request_id) {}
};

}  // namespace specdec::test
