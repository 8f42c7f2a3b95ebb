// What specdec-eval measured and how it is reported: every prompt's decode_stats per method
// configuration (a method at one tree budget), aggregated per category and overall, and written as
// an aligned text table, Markdown or JSON.
//   tokens/s        generated tokens / decode seconds, summed over prompts (prefill excluded)
//   speedup         a configuration's tokens/s / AR's tokens/s over the same prompts
//   median speedup  median over prompts of the per-prompt speedup (robust to a noisy machine)
//   budget          the fixed tree budget, or "auto (mean M, mode B)": --budget auto's per-step choices
// Lossy methods (SkipDecode) are not checked for exactness; they report quality against AR instead:
//   agreement       share of AR's tokens that the method's output matches at the same position,
//                   over all of AR's tokens (greedy runs only)
//   first div       first position where the outputs differ; the full length when they are equal
//                   (mean and median over prompts; greedy runs only)
//   theoretical     n_layers * L / sum over t < L of the schedule's active layers at generation index
//                   t, L = the method's generated tokens (summed over prompts)
#pragma once

#include "prompts.hpp"

#include <specdec/core/decode_stats.hpp>
#include <specdec/core/sampling.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace specdec::eval {

// A lossy method's output on one prompt against AR's.
struct lossy_prompt {
  std::int64_t reference = 0;         // AR's tokens
  std::int64_t matched = 0;           // of them, equal to the method's token at the same position
  std::int64_t first_divergence = 0;  // first position where the outputs differ; the length when equal
  std::int64_t generated = 0;         // the method's tokens (L)
  std::int64_t scheduled_layers = 0;  // sum over t < L of the layers the schedule runs at index t
  std::int64_t decode_rows = 0;       // rows the wrapper ran as decode rows, and their layers
  std::int64_t decode_layer_rows = 0;
};

// A lossy configuration (one method; its prompts, a category or every prompt) against AR.
struct quality {
  std::optional<double> agreement;  // greedy runs only (sampled outputs are not comparable)
  std::optional<double> first_divergence_mean;
  std::optional<double> first_divergence_median;
  std::optional<double> theoretical_speedup;  // none when nothing was generated
  std::optional<double> layers_run;           // layers per decode row the wrapper actually ran
};

inline double median_of(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline quality summarize_quality(const std::vector<lossy_prompt>& v, std::int32_t n_layers, bool greedy) {
  quality q;
  lossy_prompt sum;
  std::vector<double> first;
  for (const auto& p : v) {
    sum.reference += p.reference;
    sum.matched += p.matched;
    sum.generated += p.generated;
    sum.scheduled_layers += p.scheduled_layers;
    sum.decode_rows += p.decode_rows;
    sum.decode_layer_rows += p.decode_layer_rows;
    first.push_back(static_cast<double>(p.first_divergence));
  }
  if (greedy && !v.empty()) {
    if (sum.reference > 0) q.agreement = static_cast<double>(sum.matched) / static_cast<double>(sum.reference);
    double total = 0;
    for (const double f : first) total += f;
    q.first_divergence_mean = total / static_cast<double>(first.size());
    q.first_divergence_median = median_of(first);
  }
  if (sum.scheduled_layers > 0) {
    q.theoretical_speedup = static_cast<double>(n_layers) * static_cast<double>(sum.generated) /
                            static_cast<double>(sum.scheduled_layers);
  }
  if (sum.decode_rows > 0) {
    q.layers_run = static_cast<double>(sum.decode_layer_rows) / static_cast<double>(sum.decode_rows);
  }
  return q;
}

// One method at one budget, measured on every prompt.
struct config_result {
  std::string method;
  std::int32_t budget = 1;  // the fixed budget, or the cap of an auto one
  bool auto_budget = false;  // --budget auto: chosen per step (steps_by_budget in the stats)
  bool in_main = true;    // shown in the main tables (the method's default or --budget)
  bool in_sweep = false;  // one point of --sweep-budget
  std::vector<decode_stats> per_prompt;  // [n_prompts]
  std::vector<bool> mismatch;            // [n_prompts]: greedy output differs from AR's (lossless only)
  // Lossy methods: not checked for exactness, compared with AR instead.
  bool lossy = false;
  std::int32_t n_layers = 0;                 // the model's depth (theoretical speedup)
  std::string lossy_note;                    // what it runs, e.g. the layer schedule
  nlohmann::ordered_json lossy_settings;     // the same for JSON: keys added to the method's object
  std::vector<lossy_prompt> quality;         // [n_prompts]

  [[nodiscard]] std::string label() const {
    return in_main ? method : method + "@" + (auto_budget ? std::string("auto") : std::to_string(budget));
  }
  // "3", or "auto (mean 2.4, mode 2)" with the budgets the steps used.
  [[nodiscard]] std::string budget_text(const decode_stats& total) const {
    if (!auto_budget) return std::to_string(budget);
    char buf[64];
    std::snprintf(buf, sizeof buf, "auto (mean %.1f, mode %d)", total.mean_budget(), total.mode_budget());
    return buf;
  }
};

// One method at one batch size (--batch): every prompt as a concurrent request.
struct batch_row {
  std::string method;
  std::int32_t batch = 1;
  double wall_s = 0;                   // from the first step to the last request's end
  decode_stats stats;                  // summed over requests
  std::vector<double> per_request_tps;  // each request's own tokens / its decode seconds
  std::int64_t mismatches = 0;
  bool lossy = false;                  // compared with AR (first batch size) instead of checked
  std::int32_t n_layers = 0;
  std::vector<lossy_prompt> quality;   // [n_prompts], lossy methods

  [[nodiscard]] double total_tps() const noexcept {
    return wall_s > 0 ? static_cast<double>(stats.n_generated) / wall_s : 0.0;
  }
  [[nodiscard]] double median_request_tps() const { return median_of(per_request_tps); }
};

struct eval_run {
  std::string model;
  std::string prompts_path;
  std::int32_t max_new_tokens = 0;
  sampling_params sampling;
  std::uint64_t seed = 0;
  std::int32_t threads = 0;
  bool chat_template = true;
  std::vector<eval_prompt> prompts;
  std::vector<std::int64_t> prompt_tokens;  // [n_prompts]
  std::vector<config_result> configs;       // configs[0] is AR, the baseline
  std::vector<batch_row> batch_rows;        // --batch runs
};

// A configuration over a subset of the prompts.
struct summary {
  decode_stats total;
  std::int64_t n_prompts = 0;
  std::int64_t mismatches = 0;
  double speedup = 0;
  double median_speedup = 0;
  quality lossy;  // lossy configurations only
};

inline std::vector<std::string> categories(const eval_run& r) {
  std::vector<std::string> cats;
  for (const auto& p : r.prompts) {
    if (std::find(cats.begin(), cats.end(), p.category) == cats.end()) cats.push_back(p.category);
  }
  return cats;
}

// `category` empty = every prompt.
inline summary summarize(const eval_run& r, const config_result& c, const std::string& category = {}) {
  summary s;
  decode_stats ar;
  std::vector<double> ratios;
  std::vector<lossy_prompt> quality;
  for (std::size_t i = 0; i < r.prompts.size() && i < c.per_prompt.size(); ++i) {
    if (!category.empty() && r.prompts[i].category != category) continue;
    const decode_stats& mine = c.per_prompt[i];
    const decode_stats& base = r.configs[0].per_prompt[i];
    s.total.add(mine);
    ar.add(base);
    ++s.n_prompts;
    if (c.mismatch[i]) ++s.mismatches;
    if (c.lossy && i < c.quality.size()) quality.push_back(c.quality[i]);
    if (mine.tokens_per_s() > 0 && base.tokens_per_s() > 0) ratios.push_back(mine.tokens_per_s() / base.tokens_per_s());
  }
  s.speedup = ar.tokens_per_s() > 0 ? s.total.tokens_per_s() / ar.tokens_per_s() : 0.0;
  if (!ratios.empty()) s.median_speedup = median_of(ratios);
  if (c.lossy) s.lossy = summarize_quality(quality, c.n_layers, r.sampling.greedy());
  return s;
}

// ---- tables ------------------------------------------------------------------------------------

struct table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

inline std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

inline std::string percent(double x) { return fmt("%.1f%%", 100.0 * x); }

// "-" for a value that was not measured (or is not meaningful in this run).
inline std::string fmt_or_dash(const char* f, const std::optional<double>& x) { return x ? fmt(f, *x) : "-"; }
inline std::string percent_or_dash(const std::optional<double>& x) { return x ? percent(*x) : "-"; }

inline std::vector<const config_result*> shown(const eval_run& r, bool sweep) {
  std::vector<const config_result*> out;
  for (const auto& c : r.configs) {
    if (sweep ? c.in_sweep : c.in_main) out.push_back(&c);
  }
  return out;
}

inline std::vector<table> tables(const eval_run& r) {
  const bool greedy = r.sampling.greedy();
  std::vector<table> out;

  table overall{"overall (" + std::to_string(r.prompts.size()) + " prompts; tok/s excludes prefill)",
                {"method", "budget", "tok/s", "speedup", "median", "MAT", "accept%", "draft%", "mismatches"},
                {}};
  for (const config_result* c : shown(r, false)) {
    const summary s = summarize(r, *c);
    overall.rows.push_back({c->method, c->budget_text(s.total), fmt("%.1f", s.total.tokens_per_s()),
                            fmt("%.2fx", s.speedup), fmt("%.2fx", s.median_speedup), fmt("%.2f", s.total.mat()),
                            s.total.n_drafted > 0 ? percent(s.total.accept_rate()) : "-",
                            percent(s.total.draft_share()),
                            !greedy ? "n/a" : c->lossy ? "lossy" : std::to_string(s.mismatches)});
  }
  out.push_back(overall);

  const auto main_configs = shown(r, false);
  table by_cat{"by category: AR tok/s, then speedup over AR (MAT) per method", {"category", "prompts", "ar tok/s"}, {}};
  for (std::size_t k = 1; k < main_configs.size(); ++k) by_cat.header.push_back(main_configs[k]->method);
  auto cats = categories(r);
  cats.push_back("");  // overall
  for (const auto& cat : cats) {
    const summary ar = summarize(r, r.configs[0], cat);
    std::vector<std::string> row{cat.empty() ? "overall" : cat, std::to_string(ar.n_prompts),
                                 fmt("%.1f", ar.total.tokens_per_s())};
    for (std::size_t k = 1; k < main_configs.size(); ++k) {
      const summary s = summarize(r, *main_configs[k], cat);
      row.push_back(fmt("%.2fx", s.speedup) + fmt(" (%.2f)", s.total.mat()));
    }
    by_cat.rows.push_back(row);
  }
  out.push_back(by_cat);

  // Lossy methods: quality against AR, next to the speed, per category and overall.
  for (const config_result* c : main_configs) {
    if (!c->lossy) continue;
    table t{c->method + " against AR (lossy; " + c->lossy_note + ")" +
                (greedy ? ": agreement = AR's tokens matched in place, first div = first differing position "
                          "(the length if equal)"
                        : ": sampled, so agreement and first divergence do not apply (-)"),
            {"category", "prompts", "tok/s", "speedup", "theoretical", "layers/tok", "agreement", "first div mean",
             "first div median"},
            {}};
    for (const auto& cat : cats) {
      const summary s = summarize(r, *c, cat);
      t.rows.push_back({cat.empty() ? "overall" : cat, std::to_string(s.n_prompts), fmt("%.1f", s.total.tokens_per_s()),
                        fmt("%.2fx", s.speedup), fmt_or_dash("%.2fx", s.lossy.theoretical_speedup),
                        fmt_or_dash("%.1f", s.lossy.layers_run), percent_or_dash(s.lossy.agreement),
                        fmt_or_dash("%.1f", s.lossy.first_divergence_mean),
                        fmt_or_dash("%.1f", s.lossy.first_divergence_median)});
    }
    out.push_back(t);
  }

  const auto sweep = shown(r, true);
  if (!sweep.empty()) {
    std::vector<std::string> methods;
    std::vector<std::int32_t> budgets;
    bool any_auto = false;
    for (const config_result* c : sweep) {
      if (std::find(methods.begin(), methods.end(), c->method) == methods.end()) methods.push_back(c->method);
      any_auto = any_auto || c->auto_budget;
      if (!c->auto_budget && std::find(budgets.begin(), budgets.end(), c->budget) == budgets.end()) budgets.push_back(c->budget);
    }
    std::sort(budgets.begin(), budgets.end());
    if (any_auto) budgets.push_back(-1);  // the auto row, last: its cells add the mean budget
    table t{"budget sweep: speedup over AR (MAT)", {"budget"}, {}};
    t.header.insert(t.header.end(), methods.begin(), methods.end());
    for (const std::int32_t b : budgets) {
      std::vector<std::string> row{b < 0 ? "auto" : std::to_string(b)};
      for (const auto& m : methods) {
        const auto it = std::find_if(sweep.begin(), sweep.end(), [&](const config_result* c) {
          return c->method == m && (b < 0 ? c->auto_budget : !c->auto_budget && c->budget == b);
        });
        if (it == sweep.end()) {
          row.push_back("-");
          continue;
        }
        const summary s = summarize(r, **it);
        row.push_back(fmt("%.2fx", s.speedup) + fmt(" (%.2f)", s.total.mat()) +
                      (b < 0 ? fmt(" mean %.1f", s.total.mean_budget()) : std::string()));
      }
      t.rows.push_back(row);
    }
    out.push_back(t);
  }
  return out;
}

// Columns padded to their widest cell; the first column left-aligned, the others right-aligned.
inline std::string to_text(const table& t) {
  std::vector<std::size_t> width(t.header.size(), 0);
  for (std::size_t i = 0; i < t.header.size(); ++i) width[i] = t.header[i].size();
  for (const auto& row : t.rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      const std::string pad(width[i] - cells[i].size(), ' ');
      s += i == 0 ? cells[i] + pad : "  " + pad + cells[i];
    }
    return s + "\n";
  };
  std::string s = t.title + "\n" + line(t.header);
  for (const auto& row : t.rows) s += line(row);
  return s;
}

inline std::string to_markdown(const table& t) {
  auto line = [](const std::vector<std::string>& cells) {
    std::string s = "|";
    for (const auto& c : cells) s += " " + c + " |";
    return s + "\n";
  };
  std::string s = "**" + t.title + "**\n\n" + line(t.header) + "|";
  for (std::size_t i = 0; i < t.header.size(); ++i) s += i == 0 ? "---|" : "---:|";
  s += "\n";
  for (const auto& row : t.rows) s += line(row);
  return s;
}

inline std::string describe(const eval_run& r) {
  std::string s = std::to_string(r.prompts.size()) + " prompts from " + r.prompts_path + ", model " + r.model + ", ";
  if (r.sampling.greedy()) {
    s += "greedy";
  } else {
    s += fmt("temperature %.2f", r.sampling.temperature) + ", top-k " + std::to_string(r.sampling.top_k) +
         fmt(", top-p %.2f", r.sampling.top_p) + ", seed " + std::to_string(r.seed);
  }
  return s + ", up to " + std::to_string(r.max_new_tokens) + " new tokens, " + std::to_string(r.threads) + " threads" +
         (r.chat_template ? "" : ", no chat template");
}

inline std::string text_report(const eval_run& r) {
  std::string s = "specdec-eval: " + describe(r) + "\n";
  for (const auto& t : tables(r)) s += "\n" + to_text(t);
  return s;
}

inline std::string markdown_report(const eval_run& r) {
  std::string s = "# specdec-eval\n\n" + describe(r) + ".\n";
  for (const auto& t : tables(r)) s += "\n" + to_markdown(t);
  return s;
}

// ---- JSON --------------------------------------------------------------------------------------

// A measured value, or null when it was not measured or is not meaningful in this run.
inline nlohmann::ordered_json json_or_null(const std::optional<double>& x) {
  return x ? nlohmann::ordered_json(*x) : nlohmann::ordered_json(nullptr);
}

// The quality fields of a lossy configuration (a method, a category, a batch row).
inline void add_quality(nlohmann::ordered_json& j, const quality& q) {
  j["lossy"] = true;
  j["agreement"] = json_or_null(q.agreement);
  j["first_divergence_mean"] = json_or_null(q.first_divergence_mean);
  j["first_divergence_median"] = json_or_null(q.first_divergence_median);
  j["theoretical_speedup"] = json_or_null(q.theoretical_speedup);
  j["mean_layers_run"] = json_or_null(q.layers_run);
}

inline nlohmann::ordered_json json_report(const eval_run& r) {
  using json = nlohmann::ordered_json;
  const bool greedy = r.sampling.greedy();
  json j;
  j["model"] = r.model;
  j["prompts"] = r.prompts_path;
  j["n_prompts"] = r.prompts.size();
  j["max_new_tokens"] = r.max_new_tokens;
  j["temperature"] = r.sampling.temperature;
  j["top_k"] = r.sampling.top_k;
  j["top_p"] = r.sampling.top_p;
  j["seed"] = r.seed;
  j["threads"] = r.threads;
  j["chat_template"] = r.chat_template;
  j["exactness_checked"] = greedy;  // mismatches are counted for greedy runs only
  j["categories"] = categories(r);

  j["methods"] = json::object();
  for (const config_result* c : shown(r, false)) {
    const summary s = summarize(r, *c);
    json m;
    m["budget"] = c->auto_budget ? json("auto") : json(c->budget);
    m["budget_mean"] = s.total.mean_budget();
    m["budget_mode"] = s.total.mode_budget();
    m["steps_by_budget"] = s.total.steps_by_budget;
    m["tokens_per_s"] = s.total.tokens_per_s();
    m["speedup"] = s.speedup;
    m["median_speedup"] = s.median_speedup;
    m["mat"] = s.total.mat();
    m["accept_rate"] = s.total.accept_rate();
    m["draft_share"] = s.total.draft_share();
    m["mismatches"] = c->lossy ? json(nullptr) : json(s.mismatches);  // a lossy method is not checked
    if (c->lossy) {
      add_quality(m, s.lossy);
      for (const auto& [key, value] : c->lossy_settings.items()) m[key] = value;  // e.g. "schedule"
    }
    m["n_generated"] = s.total.n_generated;
    m["steps"] = s.total.steps;
    m["n_drafted"] = s.total.n_drafted;
    m["n_accept"] = s.total.n_accept;
    m["decode_s"] = s.total.total_s;
    m["draft_s"] = s.total.draft_s;
    m["verify_s"] = s.total.verify_s;
    m["observe_s"] = s.total.observe_s;
    m["accepted_by_depth"] = s.total.accepted_by_depth;
    m["drafted_by_depth"] = s.total.drafted_by_depth;
    m["categories"] = json::object();
    for (const auto& cat : categories(r)) {
      const summary cs = summarize(r, *c, cat);
      m["categories"][cat] = {{"speedup", cs.speedup},
                              {"mat", cs.total.mat()},
                              {"tokens_per_s", cs.total.tokens_per_s()},
                              {"median_speedup", cs.median_speedup},
                              {"accept_rate", cs.total.accept_rate()},
                              {"n_prompts", cs.n_prompts}};
      if (c->lossy) add_quality(m["categories"][cat], cs.lossy);
    }
    j["methods"][c->method] = m;
  }

  if (!shown(r, true).empty()) {
    auto sweep = shown(r, true);
    std::stable_sort(sweep.begin(), sweep.end(), [](const config_result* a, const config_result* b) {
      return std::pair(a->auto_budget, a->budget) < std::pair(b->auto_budget, b->budget);  // auto last
    });
    j["sweep"] = json::object();
    for (const config_result* c : sweep) {
      const summary s = summarize(r, *c);
      if (!j["sweep"].contains(c->method)) j["sweep"][c->method] = json::array();
      j["sweep"][c->method].push_back({{"budget", c->auto_budget ? json("auto") : json(c->budget)},
                                       {"budget_mean", s.total.mean_budget()},
                                       {"speedup", s.speedup},
                                       {"mat", s.total.mat()},
                                       {"tokens_per_s", s.total.tokens_per_s()},
                                       {"median_speedup", s.median_speedup},
                                       {"accept_rate", s.total.accept_rate()},
                                       {"mismatches", s.mismatches}});
    }
  }

  j["per_prompt"] = json::array();
  for (std::size_t i = 0; i < r.prompts.size(); ++i) {
    json p{{"id", r.prompts[i].id}, {"category", r.prompts[i].category}, {"prompt_tokens", r.prompt_tokens[i]}};
    p["methods"] = json::object();
    for (const config_result* c : shown(r, false)) {
      const decode_stats& st = c->per_prompt[i];
      json pm = {{"tokens_per_s", st.tokens_per_s()},
                 {"mat", st.mat()},
                 {"n_generated", st.n_generated},
                 {"mismatch", c->lossy ? json(nullptr) : json(static_cast<bool>(c->mismatch[i]))}};
      if (c->lossy && i < c->quality.size()) {
        const quality q = summarize_quality({c->quality[i]}, c->n_layers, greedy);
        pm["lossy"] = true;
        pm["agreement"] = json_or_null(q.agreement);
        pm["first_divergence"] = greedy ? json(c->quality[i].first_divergence) : json(nullptr);
        pm["theoretical_speedup"] = json_or_null(q.theoretical_speedup);
      }
      p["methods"][c->method] = pm;
    }
    j["per_prompt"].push_back(p);
  }
  return j;
}

}  // namespace specdec::eval
