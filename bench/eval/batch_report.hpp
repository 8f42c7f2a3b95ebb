// specdec-eval --batch: the prompts decoded as concurrent requests, B at a time (continuous
// batching), per method and batch size.
//   total tok/s        generated tokens of all requests / wall seconds of the whole run (prefill included)
//   vs AR@B            total tok/s over AR's at the same batch size, same run
//   vs AR@1            total tok/s over AR's at the first batch size listed (1 unless given otherwise)
//   per-request tok/s  median over requests of a request's tokens / its own decode seconds
// Lossy methods (SkipDecode) add agreement with AR at the first batch size and the schedule's
// theoretical speedup (report.hpp); the two columns appear only when such a method ran.
#pragma once

#include "report.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>

namespace specdec::eval {

inline double ar_tps(const eval_run& r, std::int32_t batch) {
  for (const auto& b : r.batch_rows) {
    if (b.batch == batch && b.method == "ar") return b.total_tps();
  }
  return 0.0;
}

inline quality batch_quality(const eval_run& r, const batch_row& b) {
  return summarize_quality(b.quality, b.n_layers, r.sampling.greedy());
}

inline table batch_table(const eval_run& r) {
  const bool any_lossy = std::any_of(r.batch_rows.begin(), r.batch_rows.end(), [](const batch_row& b) { return b.lossy; });
  table t{"batched decoding (" + std::to_string(r.prompts.size()) + " requests; total tok/s includes prefill)",
          {"method", "batch", "total tok/s", "vs AR@B", "vs AR@" + std::to_string(r.batch_rows.empty() ? 1 : r.batch_rows.front().batch),
           "per-request tok/s", "MAT", "accept %", "mismatches"},
          {}};
  if (any_lossy) {
    t.title += "; lossy methods: agreement with AR at the first batch size, theoretical speedup of the schedule";
    t.header.insert(t.header.end(), {"agreement", "theoretical"});
  }
  const double base = r.batch_rows.empty() ? 0.0 : ar_tps(r, r.batch_rows.front().batch);
  for (const auto& b : r.batch_rows) {
    const double ar = ar_tps(r, b.batch);
    t.rows.push_back({b.method, std::to_string(b.batch), fmt("%.1f", b.total_tps()),
                      ar > 0 && b.method != "ar" ? fmt("%.2fx", b.total_tps() / ar) : "-",
                      base > 0 && !(b.method == "ar" && b.batch == r.batch_rows.front().batch) ? fmt("%.2fx", b.total_tps() / base) : "-",
                      fmt("%.1f", b.median_request_tps()), fmt("%.2f", b.stats.mat()),
                      b.stats.n_drafted > 0 ? percent(b.stats.accept_rate()) : "-",
                      !r.sampling.greedy() ? "-" : b.lossy ? "lossy" : std::to_string(b.mismatches)});
    if (any_lossy) {
      const quality q = b.lossy ? batch_quality(r, b) : quality{};
      t.rows.back().push_back(percent_or_dash(q.agreement));
      t.rows.back().push_back(fmt_or_dash("%.2fx", q.theoretical_speedup));
    }
  }
  return t;
}

inline std::string batch_report(const eval_run& r) {
  return "specdec-eval: " + describe(r) + "\n\n" + to_text(batch_table(r));
}

inline nlohmann::ordered_json batch_json(const eval_run& r) {
  using json = nlohmann::ordered_json;
  json j;
  j["model"] = r.model;
  j["prompts"] = r.prompts_path;
  j["n_prompts"] = r.prompts.size();
  j["max_new_tokens"] = r.max_new_tokens;
  j["threads"] = r.threads;
  j["greedy"] = r.sampling.greedy();
  j["batches"] = json::array();
  for (const auto& b : r.batch_rows) {
    j["batches"].push_back({{"method", b.method},
                            {"batch", b.batch},
                            {"wall_s", b.wall_s},
                            {"total_tokens_per_s", b.total_tps()},
                            {"median_request_tokens_per_s", b.median_request_tps()},
                            {"n_generated", b.stats.n_generated},
                            {"steps", b.stats.steps},
                            {"mat", b.stats.mat()},
                            {"accept_rate", b.stats.accept_rate()},
                            {"mismatches", b.lossy ? json(nullptr) : json(b.mismatches)}});
    if (b.lossy) add_quality(j["batches"].back(), batch_quality(r, b));
  }
  return j;
}

}  // namespace specdec::eval
