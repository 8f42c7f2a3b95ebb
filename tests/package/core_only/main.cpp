// specdec::core on its own: an engine with one sequence and a toy bigram "model" (the next token is
// (t * 7 + 3) % 32 with a clear margin), the Lookahead drafter, greedy rule and the decoder via
// generate(). Prints "core ok" when the speculative output equals the model's own greedy chain.
#include <specdec/concepts/forward_step.hpp>
#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>

#include <cstdio>
#include <vector>

namespace {

constexpr std::int32_t vocab = 32;
specdec::token_id next_of(specdec::token_id t) { return (t * 7 + 3) % vocab; }

// The engine: no cache to speak of, logits depend on the row's own token only.
class toy_engine {
 public:
  std::int32_t n_vocab() const { return vocab; }
  std::int32_t n_ctx() const { return 512; }
  std::int32_t n_past() const { return n_past_; }
  specdec::logits_view forward(const specdec::step_batch& b) {
    rows_.assign(static_cast<std::size_t>(b.size()) * vocab, 0.0f);
    for (std::int32_t i = 0; i < b.size(); ++i) rows_[static_cast<std::size_t>(i * vocab + next_of(b.tokens[static_cast<std::size_t>(i)]))] = 1.0f;
    return {rows_.data(), b.size(), vocab};
  }
  void commit(std::span<const std::int32_t> rows) { n_past_ += static_cast<std::int32_t>(rows.size()); }
  void reset() { n_past_ = 0; }

 private:
  std::int32_t n_past_ = 0;
  std::vector<float> rows_;
};
static_assert(specdec::forward_step<toy_engine>);

}  // namespace

int main() {
  toy_engine engine;
  specdec::lookahead_trie_drafter drafter;
  specdec::greedy_rule rule;
  specdec::generate_options opt;
  opt.max_new_tokens = 40;
  opt.budget = 6;
  const std::vector<specdec::token_id> prompt = {1, 10, 7, 20, 1, 10};
  const auto r = specdec::generate(engine, drafter, rule, prompt, opt);
  std::vector<specdec::token_id> want;
  for (specdec::token_id t = prompt.back(); want.size() < 40;) want.push_back(t = next_of(t));
  if (r.tokens != want) {
    std::puts("core consumer: output differs from the model's greedy chain");
    return 1;
  }
  std::printf("core ok (MAT %.2f)\n", r.stats.mat());
  return 0;
}
