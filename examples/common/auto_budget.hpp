// --budget auto in the programs: the cost curve of the model on this machine, measured at start-up
// (core/cost_curve.hpp, a fraction of a second) or loaded from the cache, and one auto_budget policy
// per method (core/auto_budget.hpp), kept for the whole run like the drafter.
//
// Cache: one small text file per key in $SPECDEC_CACHE_DIR, else $XDG_CACHE_HOME/specdec, else
// ~/.cache/specdec (--cost-cache DIR overrides; --no-cost-cache measures every time and writes
// nothing). The key names what the curve depends on: the model file's name and size, the weight
// storage (requested and the layers' block format), activations, KV type, threads, the CPU model
// (/proc/cpuinfo) and the measured row counts.
#pragma once

#include "common/methods.hpp"

#include <specdec/backends/cpu/llama_cpu.hpp>
#include <specdec/backends/cpu/quant/convert.hpp>
#include <specdec/core/auto_budget.hpp>
#include <specdec/core/cost_curve.hpp>
#include <specdec/error.hpp>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>

namespace specdec::programs {

struct auto_budget_cli_options {
  std::string cache_dir;  // --cost-cache
  bool no_cache = false;  // --no-cost-cache
};

inline void add_auto_budget_options(CLI::App& app, auto_budget_cli_options& o) {
  app.add_option("--cost-cache", o.cache_dir,
                 "--budget auto: directory of the cached forward cost curves (default $SPECDEC_CACHE_DIR, else "
                 "$XDG_CACHE_HOME/specdec, else ~/.cache/specdec)");
  app.add_flag("--no-cost-cache", o.no_cache, "--budget auto: measure the cost curve at start-up, read and write no cache");
}

// A --budget / --sweep-budget value: a number in [least, 65536] or "auto" (stored as budget_auto).
inline CLI::Validator budget_validator(std::int32_t least) {
  return CLI::Validator(
      [least](std::string& s) -> std::string {
        if (s == "auto") {
          s = std::to_string(budget_auto);
          return {};
        }
        try {
          std::size_t used = 0;
          const long v = std::stol(s, &used);
          if (used == s.size() && v >= least && v <= (1 << 16)) return {};
        } catch (const std::exception&) {
        }
        return "budget '" + s + "' is not auto or a number in [" + std::to_string(least) + ", 65536]";
      },
      "INT|auto");
}

// The first "model name" of /proc/cpuinfo, or "unknown".
inline std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) break;
    const auto from = line.find_first_not_of(" \t", colon + 1);
    return from == std::string::npos ? "unknown" : line.substr(from);
  }
  return "unknown";
}

inline std::string cost_cache_key(const std::string& model_path, const cpu::llama_cpu& model,
                                  const cpu::llama_cpu_options& mo, std::int32_t max_rows) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(model_path, ec);
  return "model=" + std::filesystem::path(model_path).filename().string() + " size=" + std::to_string(ec ? 0 : size) +
         " weights=" + std::string(cpu::to_string(mo.weights)) + "/" + std::string(cpu::to_string(model.layer_format())) +
         " activations=" + std::string(cpu::to_string(mo.activations)) +
         " kv=" + std::string(cpu::to_string(mo.kv_type)) + " threads=" + std::to_string(model.n_threads()) +
         " rows=" + std::to_string(max_rows) + " cpu=" + cpu_model_name();
}

// "" when no directory can be named (no HOME).
inline std::filesystem::path default_cost_cache_dir() {
  const auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
  };
  if (const auto d = env("SPECDEC_CACHE_DIR"); !d.empty()) return d;
  if (const auto d = env("XDG_CACHE_HOME"); !d.empty()) return std::filesystem::path(d) / "specdec";
  if (const auto d = env("HOME"); !d.empty()) return std::filesystem::path(d) / ".cache" / "specdec";
  return {};
}

// The cost curve of `model` for --budget auto: loaded from the cache, or measured (then cached).
// Says on stderr where it came from and how long it took, unless quiet. A cache that cannot be
// written, or a corrupt one, is a warning: the measured curve is used.
inline cost_curve startup_cost_curve(cpu::llama_cpu& model, const std::string& model_path,
                                     const cpu::llama_cpu_options& mo, const auto_budget_cli_options& o, bool quiet) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string key = cost_cache_key(model_path, model, mo, auto_budget_max);
  std::filesystem::path file;
  if (!o.no_cache) {
    const std::filesystem::path dir = o.cache_dir.empty() ? default_cost_cache_dir() : std::filesystem::path(o.cache_dir);
    if (!dir.empty()) {
      std::uint64_t h = 1469598103934665603ull;  // FNV-1a of the key names the file
      for (const unsigned char c : key) h = (h ^ c) * 1099511628211ull;
      char name[40];
      std::snprintf(name, sizeof name, "cost-%016llx.txt", static_cast<unsigned long long>(h));
      file = dir / name;
      try {
        if (auto c = load_cost_curve(file, key)) {
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (!quiet) {
            std::fprintf(stderr, "[specdec] budget auto: cost curve loaded from %s in %.3f s (1 row %.1f ms, 4 rows %.1f ms, %d rows %.1f ms)\n",
                         file.string().c_str(), s, 1e3 * c->seconds(1), 1e3 * c->seconds(4), auto_budget_max,
                         1e3 * c->seconds(auto_budget_max));
          }
          return *c;
        }
      } catch (const error& e) {
        std::fprintf(stderr, "warning: %s; measuring again\n", e.what());
      }
    }
  }
  cost_measure_options mopt;
  mopt.max_rows = auto_budget_max;
  const cost_measurement m = measure_cost_curve(model, mopt);
  std::string saved;
  if (!file.empty()) {
    try {
      std::error_code ec;
      std::filesystem::create_directories(file.parent_path(), ec);
      save_cost_curve(file, key, m.curve);
      saved = ", saved to " + file.string();
    } catch (const error& e) {
      std::fprintf(stderr, "warning: %s (the curve is measured again next time)\n", e.what());
    }
  }
  if (!quiet) {
    std::fprintf(stderr, "[specdec] budget auto: cost curve measured in %.3f s, %d rounds (1 row %.1f ms, 4 rows %.1f ms, %d rows %.1f ms)%s\n",
                 m.seconds, m.rounds, 1e3 * m.curve.seconds(1), 1e3 * m.curve.seconds(4), auto_budget_max,
                 1e3 * m.curve.seconds(auto_budget_max), saved.c_str());
  }
  return m.curve;
}

// Gives a method made with budget auto its policy (the drafter can fill m.budget rows: the cap).
inline void enable_auto_budget(method& m, const cost_curve& curve) {
  if (!m.budget_is_auto) return;
  auto_budget_options o;
  o.max_budget = m.budget;
  m.auto_policy = std::make_shared<auto_budget>(curve, o);
  if (m.tune_auto_budget) m.tune_auto_budget(*m.auto_policy);
}

// "auto (mean 2.4, mode 2)" for a run with --budget auto, else the fixed budget.
inline std::string budget_text(bool is_auto, std::int32_t budget, const decode_stats& st) {
  if (!is_auto) return std::to_string(budget);
  char buf[64];
  std::snprintf(buf, sizeof buf, "auto (mean %.1f, mode %d)", st.mean_budget(), st.mode_budget());
  return buf;
}

}  // namespace specdec::programs
