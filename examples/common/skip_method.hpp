// SkipDecode (arXiv 2307.02628) for the programs: its command-line flags and the schedule they
// describe. SkipDecode is lossy (it skips layers), so it is not one of the lossless methods that
// --list-methods prints and that the programs check against autoregressive output.
//   --method skipdecode --skip-max-layers 30 --skip-min-layers 20 --skip-length 128 --warmup-layers 1
//   --skip-plan FILE   (a calibrated skip order from specdec-skip-calibrate)
#pragma once

#include <specdec/error.hpp>
#include <specdec/skip/layer_schedule.hpp>
#include <specdec/skip/skip_plan.hpp>

#include <CLI/CLI.hpp>

#include <string>

namespace specdec::programs {

inline constexpr const char* skipdecode_name = "skipdecode";

struct skip_cli_options {
  std::int32_t max_layers = 0;  // 0 = every layer
  std::int32_t min_layers = 0;  // 0 = three quarters of the layers (rounded up)
  std::int32_t length = 128;
  std::int32_t warmup_layers = 1;
  std::string plan;
  std::vector<CLI::Option*> flags;  // to refuse them without --method skipdecode
};

inline void add_skip_options(CLI::App& app, skip_cli_options& o) {
  const char* group = "SkipDecode (--method skipdecode, lossy)";
  o.flags.push_back(app.add_option("--skip-max-layers", o.max_layers, "layers run at the first generated token; 0 = all")
                        ->group(group)->check(CLI::Range(0, 1 << 16)));
  o.flags.push_back(app.add_option("--skip-min-layers", o.min_layers, "layers run from --skip-length tokens on; 0 = 3/4 of them")
                        ->group(group)->check(CLI::Range(0, 1 << 16)));
  o.flags.push_back(app.add_option("--skip-length", o.length, "tokens over which the layer count decays (default 128)")
                        ->group(group)->check(CLI::Range(0, 1 << 24)));
  o.flags.push_back(app.add_option("--warmup-layers", o.warmup_layers, "lowest layers never skipped (default 1)")
                        ->group(group)->check(CLI::Range(0, 1 << 16)));
  o.flags.push_back(app.add_option("--skip-plan", o.plan, "calibrated skip order (specdec-skip-calibrate); default: "
                                                          "the lowest layers after the warm-up")->group(group));
}

// Throws invalid_argument naming the flag when a SkipDecode flag comes without the method.
inline void check_skip_flags(const skip_cli_options& o, const std::string& method) {
  if (method == skipdecode_name) return;
  for (const CLI::Option* f : o.flags) {
    if (f->count() > 0) {
      throw error(error_category::invalid_argument, f->get_name() + " needs --method skipdecode (got --method " + method + ")");
    }
  }
}

inline skip::layer_schedule make_skip_schedule(const skip_cli_options& c, std::int32_t n_layers) {
  const auto fail = [](const std::string& m) { throw error(error_category::invalid_argument, m); };
  skip::schedule_options o;
  o.n_layers = n_layers;
  o.max_layers = c.max_layers > 0 ? c.max_layers : n_layers;
  o.min_layers = c.min_layers > 0 ? c.min_layers : (3 * n_layers + 3) / 4;
  o.length = c.length;
  o.warmup_layers = c.warmup_layers;
  const std::string n = std::to_string(n_layers);
  if (o.max_layers > n_layers) fail("--skip-max-layers " + std::to_string(o.max_layers) + " exceeds the model's " + n + " layers");
  if (o.min_layers > o.max_layers) {
    fail("--skip-min-layers " + std::to_string(o.min_layers) + " exceeds --skip-max-layers " + std::to_string(o.max_layers));
  }
  if (o.warmup_layers >= o.min_layers) {
    fail("--warmup-layers " + std::to_string(o.warmup_layers) + " must be below --skip-min-layers " + std::to_string(o.min_layers));
  }
  if (o.length < 1) fail("--skip-length must be >= 1");
  if (!c.plan.empty()) {
    const skip::skip_plan p = skip::read_skip_plan(c.plan);
    if (p.n_layers != n_layers) {
      fail("--skip-plan " + c.plan + " is for a model of " + std::to_string(p.n_layers) + " layers, this one has " + n);
    }
    o.skip_order = p.order_for_warmup(o.warmup_layers);
    if (static_cast<std::int32_t>(o.skip_order.size()) < n_layers - o.min_layers) {
      fail("--skip-plan " + c.plan + " orders " + std::to_string(o.skip_order.size()) + " layers above the warm-up; " +
           "--skip-min-layers " + std::to_string(o.min_layers) + " needs " + std::to_string(n_layers - o.min_layers));
    }
  }
  return skip::layer_schedule(o);
}

}  // namespace specdec::programs
