// Tokenizer throughput on the real vocabulary (SPECDEC_BENCH_MODEL): encode the dev prompts, all
// turns joined and repeated to about 16 KB, with a warm word cache (steady state) and a cold one
// (every word merged from bytes), and decode them back. items/s = tokens per second.
#include <benchmark/benchmark.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <string>
#include <vector>

namespace {

constexpr std::size_t target_bytes = 16 * 1024;

const specdec::tokenizer& base_tokenizer() {
  static const specdec::tokenizer t = specdec::tokenizer_from_gguf(specdec::gguf::file(SPECDEC_BENCH_MODEL));
  return t;
}

// Every turn of every dev prompt, joined by blank lines, repeated to target_bytes.
const std::string& dev_text() {
  static const std::string text = [] {
    std::ifstream in(SPECDEC_DEV_PROMPTS);
    std::string joined, line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const nlohmann::json prompt = nlohmann::json::parse(line);
      for (const auto& turn : prompt.at("turns")) joined += turn.get<std::string>() + "\n\n";
    }
    std::string out;
    while (!joined.empty() && out.size() < target_bytes) out += joined;
    return out;
  }();
  return text;
}

bool round_trips(benchmark::State& state, specdec::tokenizer& t, const std::string& text) {
  if (text.empty() || t.decode(t.encode(text)) != text) {
    state.SkipWithError("decode(encode(dev prompts)) differs from the text");
    return false;
  }
  return true;
}

void bm_encode_warm(benchmark::State& state) {
  specdec::tokenizer t = base_tokenizer();
  const std::string& text = dev_text();
  if (!round_trips(state, t, text)) return;
  std::size_t n_tokens = 0;
  for (auto _ : state) {
    auto ids = t.encode(text);
    n_tokens += ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n_tokens));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}

void bm_encode_cold(benchmark::State& state) {
  const std::string& text = dev_text();
  {
    specdec::tokenizer check = base_tokenizer();
    if (!round_trips(state, check, text)) return;
  }
  std::size_t n_tokens = 0;
  for (auto _ : state) {
    specdec::tokenizer t = base_tokenizer();  // shares the tables; starts with an empty word cache
    auto ids = t.encode(text);
    n_tokens += ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(n_tokens));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}

void bm_decode(benchmark::State& state) {
  specdec::tokenizer t = base_tokenizer();
  const std::string& text = dev_text();
  if (!round_trips(state, t, text)) return;
  const std::vector<specdec::token_id> ids = t.encode(text);
  for (auto _ : state) {
    std::string out = t.decode(ids);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * ids.size()));
}

}  // namespace

BENCHMARK(bm_encode_warm)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_encode_cold)->Unit(benchmark::kMicrosecond);
BENCHMARK(bm_decode)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
