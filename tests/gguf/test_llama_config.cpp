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

// A complete two-layer toy Llama: embd 8, 2 heads of 4, 1 kv head, ff 12, vocab 10. With
// arch = "qwen2" its keys are qwen2.* and each layer has Q/K/V biases (after attn_v.weight).
gguf_builder toy(bool tied = true, const std::string& arch = "llama", bool biases = false) {
  gguf_builder b;
  const std::string p = arch + ".";
  b.add_string("general.architecture", arch);
  b.add_u32(p + "block_count", 2);
  b.add_u32(p + "embedding_length", 8);
  b.add_u32(p + "feed_forward_length", 12);
  b.add_u32(p + "attention.head_count", 2);
  b.add_u32(p + "attention.head_count_kv", 1);
  b.add_u32(p + "context_length", 64);
  b.add_f32(p + "attention.layer_norm_rms_epsilon", 1e-5f);
  b.add_f32(p + "rope.freq_base", 10000.0f);
  b.add_f32_tensor("token_embd.weight", {8, 10});
  b.add_f32_tensor("output_norm.weight", {8});
  if (!tied) b.add_f32_tensor("output.weight", {8, 10});
  for (int i = 0; i < 2; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    b.add_f32_tensor(p + "attn_norm.weight", {8});
    b.add_f32_tensor(p + "attn_q.weight", {8, 8});
    b.add_f32_tensor(p + "attn_k.weight", {8, 4});
    b.add_f32_tensor(p + "attn_v.weight", {8, 4});
    if (biases) {
      b.add_f32_tensor(p + "attn_q.bias", {8});
      b.add_f32_tensor(p + "attn_k.bias", {4});
      b.add_f32_tensor(p + "attn_v.bias", {4});
    }
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
  CHECK_FALSE(c.has_qkv_bias);
  CHECK_FALSE(c.neox_rope);
}

TEST_CASE("a toy qwen2 reads its qwen2.* keys, with NeoX rope and Q/K/V biases", "[gguf]") {
  const auto f = gguf::file::from_bytes(toy(true, "qwen2", true).bytes(), "toy.gguf");
  const auto c = specdec::read_llama_config(f);
  CHECK(c.architecture == "qwen2");
  CHECK(c.n_layers == 2);
  CHECK(c.n_embd_kv() == 4);
  CHECK(c.neox_rope);
  CHECK(c.has_qkv_bias);
  CHECK(c.tied_head);
  // llama may carry the biases too (llama.cpp accepts them); its rope stays the normal layout.
  const auto lb = specdec::read_llama_config(gguf::file::from_bytes(toy(true, "llama", true).bytes(), "toy.gguf"));
  CHECK(lb.has_qkv_bias);
  CHECK_FALSE(lb.neox_rope);
}

TEST_CASE("qwen2 bias errors name the tensor", "[gguf]") {
  const auto tensor_index = [](const gguf_builder& b, const std::string& name) {
    for (std::size_t i = 0; i < b.tensors.size(); ++i) {
      if (b.tensors[i].name == name) return i;
    }
    FAIL("no tensor " << name);
    return std::size_t{0};
  };
  {
    auto b = toy(true, "qwen2", false);  // qwen2 without biases
    const auto e = config_error(b);
    CHECK(e.category() == error_category::model);
    CHECK_THAT(e.what(), Catch::Contains("blk.0.attn_q.bias") && Catch::Contains("missing"));
  }
  {
    auto b = toy(true, "qwen2", true);
    b.tensors.erase(b.tensors.begin() + static_cast<std::ptrdiff_t>(tensor_index(b, "blk.1.attn_v.bias")));
    const auto e = config_error(b);
    CHECK_THAT(e.what(), Catch::Contains("blk.1.attn_v.bias") && Catch::Contains("missing"));
  }
  {
    auto b = toy(true, "qwen2", true);
    b.tensors[tensor_index(b, "blk.0.attn_k.bias")].ne = {8};  // q-sized instead of kv-sized
    const auto e = config_error(b);
    CHECK(e.category() == error_category::model);
    CHECK_THAT(e.what(), Catch::Contains("blk.0.attn_k.bias") && Catch::Contains("[8]") && Catch::Contains("[4]"));
  }
  {
    auto b = toy(true, "llama", true);  // llama: biases in layer 1 only
    for (const char* t : {"blk.0.attn_q.bias", "blk.0.attn_k.bias", "blk.0.attn_v.bias"}) {
      b.tensors.erase(b.tensors.begin() + static_cast<std::ptrdiff_t>(tensor_index(b, t)));
    }
    const auto e = config_error(b);
    CHECK(e.category() == error_category::model);
    CHECK_THAT(e.what(), Catch::Contains("blk.1.attn_q.bias") && Catch::Contains("every layer or in none"));
  }
  {
    gguf_builder b;
    b.add_string("general.architecture", "qwen2");
    const auto e = config_error(b);
    CHECK(e.category() == error_category::missing_key);
    CHECK_THAT(e.what(), Catch::Contains("qwen2.block_count"));
  }
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
