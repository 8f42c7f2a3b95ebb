// skip_plan files: a written plan reads back equal, a calibrated order drives the schedule, and every
// malformed file is a format error naming the file and line.
#include <specdec/skip/layer_schedule.hpp>
#include <specdec/skip/skip_plan.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

using namespace specdec;
using namespace specdec::skip;

namespace {

std::string temp_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / ("specdec_skip_plan_" + name);
  std::ofstream(path) << text;
  return path.string();
}

std::string format_error(const std::string& text) {
  const std::string path = temp_file("bad", text);
  try {
    (void)read_skip_plan(path);
  } catch (const error& e) {
    CHECK(e.category() == error_category::format);
    CHECK_THAT(std::string(e.what()), Catch::Contains(path));
    return e.what();
  }
  FAIL("no error for: " << text);
  return {};
}

}  // namespace

TEST_CASE("a skip plan round-trips through its file", "[skip]") {
  skip_plan p;
  p.n_layers = 6;
  p.warmup_layers = 1;
  p.metric = "continuation_nll";
  p.source = "data/calibration/skip_calibration.txt (4 windows)";
  p.order = {4, 2, 5, 1, 3};
  p.scores = {3.5, 3.75};
  const std::string path = temp_file("ok", "");
  write_skip_plan(path, p);
  const skip_plan q = read_skip_plan(path);
  CHECK(q.n_layers == 6);
  CHECK(q.warmup_layers == 1);
  CHECK(q.metric == p.metric);
  CHECK(q.source == p.source);
  CHECK(q.order == p.order);
  CHECK(q.scores == p.scores);
  CHECK(q.order_for_warmup(2) == std::vector<std::int32_t>{4, 2, 5, 3});

  schedule_options o;
  o.n_layers = 6;
  o.max_layers = 6;
  o.min_layers = 4;
  o.length = 2;
  o.warmup_layers = 1;
  o.skip_order = q.order;
  const layer_schedule s(o);  // counts 6, 5, then 4: drop 4, then 4 and 2
  CHECK(std::vector<std::int32_t>(s.layers_at(1).begin(), s.layers_at(1).end()) == std::vector<std::int32_t>{0, 1, 2, 3, 5});
  CHECK(std::vector<std::int32_t>(s.layers_at(2).begin(), s.layers_at(2).end()) == std::vector<std::int32_t>{0, 1, 3, 5});
}

TEST_CASE("malformed skip plans are format errors naming the line", "[skip]") {
  const std::string head = "specdec-skip-plan 1\nn_layers 6\nwarmup_layers 1\n";
  CHECK_THAT(format_error(""), Catch::Contains("empty file"));
  CHECK_THAT(format_error("# only a comment\n"), Catch::Contains("empty file"));
  CHECK_THAT(format_error("order 1 2\n"), Catch::Contains(":1: not a skip plan"));
  CHECK_THAT(format_error("specdec-skip-plan 2\n"), Catch::Contains("version '2'"));
  CHECK_THAT(format_error(head + "order 1 2 x\n"), Catch::Contains(":4: order must be a list"));
  CHECK_THAT(format_error(head + "colour blue\n"), Catch::Contains(":4: unknown key 'colour'"));
  CHECK_THAT(format_error(head + "\n# note\norder 1 7\n"), Catch::Contains("layer 7, outside [warmup_layers, n_layers) = [1, 6)"));
  CHECK_THAT(format_error(head + "order 0 2\n"), Catch::Contains("layer 0, outside"));
  CHECK_THAT(format_error(head + "order 2 2\n"), Catch::Contains("layer 2 twice"));
  CHECK_THAT(format_error(head + "order 2 3\nscore 1 2 3\n"), Catch::Contains("score has 3 values for 2 layers"));
  CHECK_THAT(format_error("specdec-skip-plan 1\nn_layers 6\norder 1\n"), Catch::Contains("needs n_layers, warmup_layers and order"));
  CHECK_THAT(format_error("specdec-skip-plan 1\nn_layers -3\n"), Catch::Contains(":2: n_layers needs a non-negative integer"));
  CHECK_THAT(format_error("specdec-skip-plan 1\nn_layers 6 7\n"), Catch::Contains(":2: n_layers takes one value"));
  CHECK_THROWS_WITH(read_skip_plan("/nonexistent/plan"), Catch::Contains("cannot read skip plan /nonexistent/plan"));
}
