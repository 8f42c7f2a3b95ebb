// The Qwen2 file's configuration as read_llama_config sees it, against the model's published
// hyper-parameters: qwen2.* keys, NeoX rope, Q/K/V biases of the right shapes.
#include "qwen2_support.hpp"

#include <specdec/model/llama_config.hpp>

#include <catch2/catch.hpp>

TEST_CASE("qwen2 configuration matches the published hyper-parameters", "[qwen2]") {
  const auto want = specdec::test::published_hparams();
  const auto c = specdec::read_llama_config(specdec::test::qwen2_file());
  CHECK(c.architecture == "qwen2");
  CHECK(c.n_layers == want.n_layers);
  CHECK(c.n_embd == want.n_embd);
  CHECK(c.n_ff == want.n_ff);
  CHECK(c.n_head == want.n_head);
  CHECK(c.n_head_kv == want.n_head_kv);
  CHECK(c.head_dim == want.n_embd / want.n_head);
  CHECK(c.n_rot == c.head_dim);
  CHECK(c.n_ctx_train == want.n_ctx_train);
  CHECK(c.n_vocab == 151936);
  CHECK(c.rope_freq_base == 1000000.0f);
  CHECK(c.rope_scaling_type == specdec::rope_scaling::none);
  CHECK(c.rms_eps == Approx(1e-6f));
  CHECK(c.neox_rope);
  CHECK(c.has_qkv_bias);
  CHECK_FALSE(c.has_rope_freq_factors);
  // Whether the file ships output.weight is the converter's choice; the reference (gguf package) says.
  const auto ref = specdec::test::read_qwen2_json("forward/forward_reference.json");
  CHECK(c.tied_head == ref.at("tied_output").get<bool>());
}
