// Llama configuration from GGUF metadata: the real model's values, and errors that name the key or
// tensor when something required is missing or inconsistent.
#include "gguf_builder.hpp"

#include <specdec/model/llama_config.hpp>

#include <catch2/catch.hpp>

using specdec::error;
using specdec::error_category;
using specdec::test::gguf_builder;
namespace gguf = specdec::gguf;

namespace {

// A complete two-layer toy Llama: embd 8, 2 heads of 4, 1 kv head, ff 12, vocab 10.
gguf_builder toy(bool tied = true) {
  gguf_builder b;
  b.add_string("general.architecture", "llama");
  b.add_u32("llama.block_count", 2);
  b.add_u32("llama.embedding_length", 8);
  b.add_u32("llama.feed_forward_length", 12);
  b.add_u32("llama.attention.head_count", 2);
  b.add_u32("llama.attention.head_count_kv", 1);
  b.add_u32("llama.context_length", 64);
  b.add_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  b.add_f32("llama.rope.freq_base", 10000.0f);
  b.add_f32_tensor("token_embd.weight", {8, 10});
  b.add_f32_tensor("output_norm.weight", {8});
  if (!tied) b.add_f32_tensor("output.weight", {8, 10});
  for (int i = 0; i < 2; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    b.add_f32_tensor(p + "attn_norm.weight", {8});
    b.add_f32_tensor(p + "attn_q.weight", {8, 8});
    b.add_f32_tensor(p + "attn_k.weight", {8, 4});
    b.add_f32_tensor(p + "attn_v.weight", {8, 4});
    b.add_f32_tensor(p + "attn_output.weight", {8, 8});
    b.add_f32_tensor(p + "ffn_norm.weight", {8});
    b.add_f32_tensor(p + "ffn_gate.weight", {8, 12});
    b.add_f32_tensor(p + "ffn_up.weight", {8, 12});
    b.add_f32_tensor(p + "ffn_down.weight", {12, 8});
  }
  return b;
}

error config_error(const gguf_builder& b) {
  const auto f = gguf::file::from_bytes(b.bytes(), "toy.gguf");
  try {
    (void)specdec::read_llama_config(f);
  } catch (const error& e) {
    return e;
  }
  FAIL("no error");
  return error(error_category::model, "");
}

}  // namespace

TEST_CASE("the default model's configuration", "[gguf]") {
  const gguf::file f(SPECDEC_TEST_MODEL);
  const auto c = specdec::read_llama_config(f);
  CHECK(c.architecture == "llama");
  CHECK(c.n_layers == 30);
  CHECK(c.n_embd == 576);
  CHECK(c.n_ff == 1536);
  CHECK(c.n_head == 9);
  CHECK(c.n_head_kv == 3);
  CHECK(c.head_dim == 64);
  CHECK(c.n_rot == 64);
  CHECK(c.n_vocab == 49152);
  CHECK(c.n_ctx_train == 8192);
  CHECK(c.rope_freq_base == 100000.0f);
  CHECK(c.rope_scaling_type == specdec::rope_scaling::none);
  CHECK(c.rms_eps == Approx(1e-5f));
  CHECK(c.tied_head);
  CHECK_FALSE(c.neox_rope);
}

TEST_CASE("a toy model reads; tied and separate heads", "[gguf]") {
  const auto tied = gguf::file::from_bytes(toy(true).bytes(), "toy.gguf");
  const auto c = specdec::read_llama_config(tied);
  CHECK(c.n_layers == 2);
  CHECK(c.head_dim == 4);
  CHECK(c.n_embd_kv() == 4);
  CHECK(c.n_vocab == 10);
  CHECK(c.tied_head);
  const auto sep = gguf::file::from_bytes(toy(false).bytes(), "toy.gguf");
  CHECK_FALSE(specdec::read_llama_config(sep).tied_head);
}

TEST_CASE("configuration errors name the key or tensor", "[gguf]") {
  {
    auto b = toy();
    b.kv.clear();
    b.n_kv = 0;
    b.add_string("general.architecture", "llama");
    const auto e = config_error(b);
    CHECK(e.category() == error_category::missing_key);
    CHECK_THAT(e.what(), Catch::Contains("llama.block_count"));
  }
  {
    gguf_builder b;
    b.add_string("general.architecture", "mamba");
    const auto e = config_error(b);
    CHECK(e.category() == error_category::unsupported);
    CHECK_THAT(e.what(), Catch::Contains("mamba"));
  }
  {
    auto b = toy();
    b.add_u32("llama.attention.head_count", 3);  // duplicate key is a format error at parse time
    CHECK_THROWS_AS(gguf::file::from_bytes(b.bytes(), "toy.gguf"), error);
  }
  {
    auto b = toy();
    b.tensors[3].ne = {8, 6};  // blk.0.attn_q.weight (0: token_embd, 1: output_norm, 2: attn_norm)
    const auto e = config_error(b);
    CHECK(e.category() == error_category::model);
    CHECK_THAT(e.what(), Catch::Contains("blk.0.attn_q.weight") && Catch::Contains("[8, 6]"));
  }
  {
    auto b = toy();
    b.tensors.pop_back();  // blk.1.ffn_down.weight
    const auto e = config_error(b);
    CHECK_THAT(e.what(), Catch::Contains("blk.1.ffn_down.weight") && Catch::Contains("missing"));
  }
  {
    auto c = toy();
    c.add_u32("llama.vocab_size", 11);
    const auto e = config_error(c);
    CHECK_THAT(e.what(), Catch::Contains("vocab_size"));
  }
}
