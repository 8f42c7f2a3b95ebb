// cost_curve: what one verification forward costs against the rows it runs (seconds per forward),
// the backend half of the automatic tree budget (core/auto_budget.hpp). Measured at start-up on any
// sequence_model (measure_cost_curve), or loaded from a small text cache (load_cost_curve /
// save_cost_curve) whose key the program builds (model file and size, weight format, KV type,
// threads, CPU model: examples/common/cost_cache.hpp); core names no backend.
//
//   seconds                                    between points: linear interpolation
//      |                          .  ·  ·      below the first point: the first point's cost
//      |                   .  *                beyond the last point: proportional to rows
//      |          *  *                           (cost(n) = cost(last) * n / last), the large-n
//      |  *  *  *                                slope of a compute-bound forward
//      +---------------------------- rows
//         1  2  3  4  6  8  12 16
//
// Cache file (text, one point per line after the header):
//   specdec-cost-curve 1 <key: the rest of the line>
//   <rows> <seconds per forward>
//   ...
#pragma once

#include <specdec/concepts/sequence_model.hpp>
#include <specdec/core/batch.hpp>
#include <specdec/core/types.hpp>
#include <specdec/error.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace specdec {

struct cost_point {
  std::int32_t rows = 1;
  double seconds = 0;  // one forward of `rows` rows
};

class cost_curve {
 public:
  cost_curve() = default;

  // Points with rows >= 1, strictly increasing, and positive finite seconds; throws invalid_argument.
  explicit cost_curve(std::vector<cost_point> points) : points_(std::move(points)) {
    for (std::size_t i = 0; i < points_.size(); ++i) {
      const auto& p = points_[i];
      if (p.rows < 1 || (i > 0 && p.rows <= points_[i - 1].rows)) {
        throw error(error_category::invalid_argument, "cost_curve: rows must be >= 1 and strictly increasing (point " +
                                                          std::to_string(i) + " has " + std::to_string(p.rows) + ")");
      }
      if (!(p.seconds > 0) || !std::isfinite(p.seconds)) {
        throw error(error_category::invalid_argument,
                    "cost_curve: point " + std::to_string(i) + " has a cost that is not a positive number");
      }
    }
  }

  [[nodiscard]] bool empty() const noexcept { return points_.empty(); }
  [[nodiscard]] const std::vector<cost_point>& points() const noexcept { return points_; }
  [[nodiscard]] std::int32_t max_rows() const noexcept { return points_.empty() ? 0 : points_.back().rows; }

  // Seconds of one forward of `rows` rows (0 for an empty curve).
  [[nodiscard]] double seconds(double rows) const noexcept {
    if (points_.empty()) return 0.0;
    const auto& first = points_.front();
    const auto& last = points_.back();
    if (rows <= first.rows) return first.seconds;
    if (rows >= last.rows) return last.seconds * rows / last.rows;
    const auto hi = std::lower_bound(points_.begin(), points_.end(), rows,
                                     [](const cost_point& p, double r) { return p.rows < r; });
    const auto lo = hi - 1;
    const double t = (rows - lo->rows) / static_cast<double>(hi->rows - lo->rows);
    return lo->seconds + t * (hi->seconds - lo->seconds);
  }

  // The same points with their costs made non-decreasing in rows (pool-adjacent-violators: the
  // least-squares monotone fit), which removes timing noise that would make n + 1 rows "cheaper".
  [[nodiscard]] cost_curve monotone() const {
    struct block {
      double sum;
      std::size_t n;
    };
    std::vector<block> blocks;
    for (const auto& p : points_) {
      blocks.push_back({p.seconds, 1});
      while (blocks.size() >= 2) {
        const block& b = blocks.back();
        const block& a = blocks[blocks.size() - 2];
        if (a.sum / static_cast<double>(a.n) <= b.sum / static_cast<double>(b.n)) break;
        const block merged{a.sum + b.sum, a.n + b.n};
        blocks.pop_back();
        blocks.back() = merged;
      }
    }
    std::vector<cost_point> out = points_;
    std::size_t i = 0;
    for (const auto& b : blocks) {
      for (std::size_t k = 0; k < b.n; ++k) out[i++].seconds = b.sum / static_cast<double>(b.n);
    }
    return cost_curve(std::move(out));
  }

 private:
  std::vector<cost_point> points_;
};

// ---- measurement -------------------------------------------------------------------------------

struct cost_measure_options {
  // Row counts to time (ascending); those above max_rows (when > 0) are dropped.
  std::vector<std::int32_t> rows = {1, 2, 3, 4, 6, 8, 12, 16};
  std::int32_t max_rows = 0;
  // Committed tokens under the timed forwards (a decode-sized context: attention is a small part of
  // a step at these lengths). Lowered to fit n_ctx. Tokens: `context_tokens` repeated, else 0, 1, 2...
  std::int32_t context = 64;
  std::vector<token_id> context_tokens;
  // After one warm-up forward, rounds over every row count (interleaved, so that machine noise
  // spreads over all of them); each point is the median of its rounds. At least min_rounds, then
  // more while the next round fits in time_budget_s (prefill included), at most max_rounds.
  std::int32_t min_rounds = 2;
  std::int32_t max_rounds = 5;
  double time_budget_s = 0.5;
};

struct cost_measurement {
  cost_curve curve;       // monotone() of the medians
  cost_curve raw;         // the medians as measured
  double seconds = 0;     // wall time of the whole measurement
  std::int32_t rounds = 0;
};

// Times forwards of n-row chains on a scratch sequence of `model` (created, then freed; the model's
// other sequences are untouched, but a forward must not be in flight). Throws what the model throws
// (capacity when no sequence is free) and invalid_argument for options that leave nothing to time.
template <sequence_model Model>
cost_measurement measure_cost_curve(Model& model, const cost_measure_options& opt = {}) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  std::vector<std::int32_t> rows;
  for (const std::int32_t n : opt.rows) {
    if (n >= 1 && (opt.max_rows <= 0 || n <= opt.max_rows) && n < model.n_ctx() && (rows.empty() || n > rows.back())) {
      rows.push_back(n);
    }
  }
  if (rows.empty() || opt.min_rounds < 1) {
    throw error(error_category::invalid_argument, "measure_cost_curve: no row count to time (or min_rounds < 1)");
  }
  const std::int32_t n_ctx = model.n_ctx();
  const std::int32_t context = std::clamp(opt.context, 1, std::max(1, n_ctx - rows.back()));
  std::vector<token_id> ctx(static_cast<std::size_t>(context));
  for (std::int32_t i = 0; i < context; ++i) {
    ctx[static_cast<std::size_t>(i)] = opt.context_tokens.empty()
                                           ? i % model.n_vocab()
                                           : opt.context_tokens[static_cast<std::size_t>(i) % opt.context_tokens.size()];
  }
  std::vector<token_id> chain(static_cast<std::size_t>(rows.back()));
  for (std::size_t i = 0; i < chain.size(); ++i) chain[i] = ctx[i % ctx.size()];

  const seq_id s = model.create_sequence();
  std::vector<std::vector<double>> times(rows.size());
  std::int32_t rounds = 0;
  try {
    // The context: prefill chunks of 64 without logits, each committed.
    for (std::int32_t at = 0; at < context; at += 64) {
      const std::int32_t n = std::min(64, context - at);
      forward_batch b;
      b.steps.push_back(sequence_step::chain(s, std::span<const token_id>(ctx).subspan(static_cast<std::size_t>(at),
                                                                                        static_cast<std::size_t>(n)),
                                             at, logits_request::none));
      (void)model.forward(b);
      std::vector<std::int32_t> keep(static_cast<std::size_t>(n));
      for (std::int32_t i = 0; i < n; ++i) keep[static_cast<std::size_t>(i)] = i;
      model.commit(s, keep);
    }
    const auto timed = [&](std::int32_t n) {
      forward_batch b;
      b.steps.push_back(sequence_step::chain(s, std::span<const token_id>(chain).first(static_cast<std::size_t>(n)),
                                             context, logits_request::all));
      const auto t = clock::now();
      (void)model.forward(b);
      const double sec = since(t);
      model.truncate(s, context);
      return sec;
    };
    (void)timed(rows.front());  // warm-up: first-touch costs, thread pool wake-up
    double last_round = 0;
    while (rounds < opt.min_rounds ||
           (rounds < opt.max_rounds && since(t0) + last_round <= opt.time_budget_s)) {
      const auto tr = clock::now();
      for (std::size_t k = 0; k < rows.size(); ++k) times[k].push_back(timed(rows[k]));
      last_round = since(tr);
      ++rounds;
    }
  } catch (...) {
    model.free_sequence(s);
    throw;
  }
  model.free_sequence(s);

  std::vector<cost_point> pts;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    auto v = times[k];
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    const double med = n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    pts.push_back({rows[k], std::max(med, 1e-9)});
  }
  cost_measurement m;
  m.raw = cost_curve(pts);
  m.curve = m.raw.monotone();
  m.rounds = rounds;
  m.seconds = since(t0);
  return m;
}

// ---- cache file --------------------------------------------------------------------------------

inline constexpr const char* cost_curve_magic = "specdec-cost-curve";
inline constexpr int cost_curve_version = 1;

// The curve cached in `path` under `key`; nullopt when the file does not exist, cannot be opened or
// holds another key (or another version). A malformed file is a format error naming the file and
// the line.
inline std::optional<cost_curve> load_cost_curve(const std::filesystem::path& path, const std::string& key) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return std::nullopt;
  std::ifstream in(path);
  if (!in) return std::nullopt;
  const auto fail = [&](std::size_t line, const std::string& what) {
    throw error(error_category::format, "cost curve cache " + path.string() + ":" + std::to_string(line) + ": " + what);
  };
  std::string line;
  if (!std::getline(in, line)) fail(1, "empty file (expected the header \"" + std::string(cost_curve_magic) + " 1 KEY\")");
  {
    std::istringstream h(line);
    std::string magic;
    int version = 0;
    if (!(h >> magic) || magic != cost_curve_magic || !(h >> version)) {
      fail(1, "not a cost curve header (expected \"" + std::string(cost_curve_magic) + " 1 KEY\")");
    }
    if (version != cost_curve_version) return std::nullopt;  // another version: measure again
    std::string rest;
    std::getline(h, rest);
    if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
    if (rest != key) return std::nullopt;
  }
  std::vector<cost_point> pts;
  for (std::size_t n = 2; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream l(line);
    long long rows = 0;
    double sec = 0;
    std::string extra;
    if (!(l >> rows >> sec) || (l >> extra)) fail(n, "expected \"ROWS SECONDS\", got \"" + line + "\"");
    if (rows < 1 || rows > (1 << 24) || (!pts.empty() && rows <= pts.back().rows)) {
      fail(n, "rows " + std::to_string(rows) + " must be >= 1 and larger than the line before");
    }
    if (!(sec > 0) || !std::isfinite(sec)) fail(n, "seconds must be a positive number");
    pts.push_back({static_cast<std::int32_t>(rows), sec});
  }
  if (in.bad()) throw error(error_category::io, "cannot read cost curve cache " + path.string());
  if (pts.empty()) fail(1, "no points");
  return cost_curve(std::move(pts));
}

// Writes the curve under `key` (one line: newlines in the key become spaces); the file is written
// beside the target and renamed into place. Throws io on failure.
inline void save_cost_curve(const std::filesystem::path& path, const std::string& key, const cost_curve& curve) {
  std::string k = key;
  std::replace(k.begin(), k.end(), '\n', ' ');
  std::replace(k.begin(), k.end(), '\r', ' ');
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw error(error_category::io, "cannot write cost curve cache " + tmp.string());
    out << cost_curve_magic << ' ' << cost_curve_version << ' ' << k << '\n';
    char buf[64];
    for (const auto& p : curve.points()) {
      std::snprintf(buf, sizeof buf, "%d %.9g\n", p.rows, p.seconds);
      out << buf;
    }
    out.close();
    if (!out) throw error(error_category::io, "cannot write cost curve cache " + tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw error(error_category::io, "cannot write cost curve cache " + path.string());
  }
}

}  // namespace specdec
