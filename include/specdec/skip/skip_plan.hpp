// skip_plan: a calibrated skip order for one model, as a small text file (--skip-plan FILE).
// The schedule still decides how many layers run at each step; the plan decides which ones go first.
//
//   # comments and blank lines are ignored
//   specdec-skip-plan 1                  (first line: format and version)
//   n_layers 30                          (the model's depth; checked against the model when used)
//   warmup_layers 1                      (layers the calibration never dropped)
//   metric continuation_nll              (what the scores measure; free text, one word)
//   source data/calibration/skip_calibration.txt   (the text calibrated on; free text)
//   order 14 3 22 ...                    (layers, the one to drop first first; distinct, >= warmup)
//   score 2.41 2.44 ...                  (optional: the metric after dropping order[0..k], for the
//                                         first k; at most one per order entry)
//
// read_skip_plan throws specdec::error (format) naming the file and line for anything else.
#pragma once

#include <specdec/error.hpp>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace specdec::skip {

struct skip_plan {
  std::int32_t n_layers = 0;
  std::int32_t warmup_layers = 0;
  std::string metric;
  std::string source;
  std::vector<std::int32_t> order;
  std::vector<double> scores;  // at most one per order entry: the metric with order[0..k] dropped

  // The order for a schedule with `warmup` warm-up layers: entries below it are left out (they run).
  [[nodiscard]] std::vector<std::int32_t> order_for_warmup(std::int32_t warmup) const {
    std::vector<std::int32_t> out;
    for (const std::int32_t l : order) {
      if (l >= warmup) out.push_back(l);
    }
    return out;
  }
};

inline void write_skip_plan(const std::string& path, const skip_plan& p) {
  std::ofstream out(path);
  if (!out) throw error(error_category::io, "cannot write skip plan " + path);
  out << "# SkipDecode skip order (include/specdec/skip/skip_plan.hpp describes the format)\n";
  out << "specdec-skip-plan 1\n";
  out << "n_layers " << p.n_layers << "\n";
  out << "warmup_layers " << p.warmup_layers << "\n";
  if (!p.metric.empty()) out << "metric " << p.metric << "\n";
  if (!p.source.empty()) out << "source " << p.source << "\n";
  out << "order";
  for (const std::int32_t l : p.order) out << ' ' << l;
  out << "\n";
  if (!p.scores.empty()) {
    out << "score";
    for (const double s : p.scores) out << ' ' << s;
    out << "\n";
  }
  if (!out) throw error(error_category::io, "cannot write skip plan " + path);
}

inline skip_plan read_skip_plan(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw error(error_category::io, "cannot read skip plan " + path);
  skip_plan p;
  bool header = false, has_n = false, has_warmup = false, has_order = false;
  std::string line;
  std::int32_t line_no = 0;
  const auto fail = [&](const std::string& m) {
    throw error(error_category::format, "skip plan " + path + ":" + std::to_string(line_no) + ": " + m);
  };
  const auto read_int = [&](std::istringstream& s, const std::string& key) {
    long long v = 0;
    if (!(s >> v) || v < 0 || v > (1 << 20)) fail(key + " needs a non-negative integer");
    return static_cast<std::int32_t>(v);
  };
  while (std::getline(in, line)) {
    ++line_no;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream s(line);
    std::string key;
    s >> key;
    if (!header) {
      std::string version;
      s >> version;
      if (key != "specdec-skip-plan") fail("not a skip plan (the first line must be 'specdec-skip-plan 1')");
      if (version != "1") fail("unsupported skip plan version '" + version + "' (this build reads 1)");
      header = true;
      continue;
    }
    if (key == "n_layers") {
      p.n_layers = read_int(s, key);
      has_n = true;
    } else if (key == "warmup_layers") {
      p.warmup_layers = read_int(s, key);
      has_warmup = true;
    } else if (key == "metric") {
      s >> p.metric;
    } else if (key == "source") {
      std::getline(s >> std::ws, p.source);
    } else if (key == "order") {
      long long v = 0;
      while (s >> v) p.order.push_back(static_cast<std::int32_t>(v));
      if (!s.eof()) fail("order must be a list of layer indices");
      has_order = true;
    } else if (key == "score") {
      double v = 0;
      while (s >> v) p.scores.push_back(v);
      if (!s.eof()) fail("score must be a list of numbers");
    } else {
      fail("unknown key '" + key + "'");
    }
    if (key == "n_layers" || key == "warmup_layers") {
      std::string extra;
      if (s >> extra) fail(key + " takes one value");
    }
  }
  const auto fail_file = [&](const std::string& m) { throw error(error_category::format, "skip plan " + path + ": " + m); };
  if (!header) fail_file("empty file (the first line must be 'specdec-skip-plan 1')");
  if (!has_n || !has_warmup || !has_order) fail_file("needs n_layers, warmup_layers and order");
  if (p.n_layers < 1) fail_file("n_layers must be >= 1");
  if (p.warmup_layers >= p.n_layers) fail_file("warmup_layers must be below n_layers");
  std::vector<bool> seen(static_cast<std::size_t>(p.n_layers), false);
  for (const std::int32_t l : p.order) {
    if (l < p.warmup_layers || l >= p.n_layers) {
      fail_file("order names layer " + std::to_string(l) + ", outside [warmup_layers, n_layers) = [" +
           std::to_string(p.warmup_layers) + ", " + std::to_string(p.n_layers) + ")");
    }
    if (seen[static_cast<std::size_t>(l)]) fail_file("order names layer " + std::to_string(l) + " twice");
    seen[static_cast<std::size_t>(l)] = true;
  }
  if (p.scores.size() > p.order.size()) {
    fail_file("score has " + std::to_string(p.scores.size()) + " values for " + std::to_string(p.order.size()) + " layers");
  }
  return p;
}

}  // namespace specdec::skip
