// The PPD artifact file (tools/ppd/ writes it, tools/ppd/README.md documents it): a GGUF file whose
// architecture is "specdec-ppd", read with specdec's own GGUF reader and checked rule by rule, so a
// damaged or foreign file is a specdec::error naming the file and the key, never garbage.
//
//   general.architecture              "specdec-ppd"
//   ppd.format_version                u32 1
//   ppd.n_prompt_tokens, ppd.n_ensemble, ppd.top_k           u32 k, m, K
//   ppd.model.name                    string (the model's general.name)
//   ppd.model.n_embd, .n_vocab, .n_layer                     u32
//   ppd.model.token_embd_fnv1a64      u64: FNV-1a 64 of the model's token_embd.weight bytes as stored
//   ppd.checksum                      u64: FNV-1a 64 of ppd.prompt_embd's float32 bytes
//   tensor ppd.prompt_embd            F32 [k * m rows, n_embd]
//   ppd.accuracy                      f32 [k * K]
//   ppd.tree.{budget,state,first,size}  u32 [T];  ppd.tree.{expected_accept,steady_accept} f32 [T]
//   ppd.node.{parent,rank}            i32;  ppd.node.n_prompt  u32   (tree-local parents, -1 = root)
//
// Tree rules: parent < child, the root first with rank -1, depth(child) = depth(parent) + 1 <= state,
// ranks in [0, K) and distinct among siblings, n_prompt in [0, k], rows (nodes + n_prompt * m summed)
// <= budget, and a tree for every state 0..k at the smallest budget.
#pragma once

#include <specdec/drafters/ppd.hpp>
#include <specdec/error.hpp>
#include <specdec/model/gguf/reader.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace specdec {

inline constexpr std::uint64_t fnv1a64_basis = 0xcbf29ce484222325ULL;

inline std::uint64_t fnv1a64(const void* data, std::size_t n, std::uint64_t h = fnv1a64_basis) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

// The fingerprint an artifact records of its model: FNV-1a 64 of token_embd.weight as stored.
inline std::uint64_t ppd_model_fingerprint(const gguf::file& model) {
  const auto& t = model.tensor("token_embd.weight");
  return fnv1a64(t.data, static_cast<std::size_t>(t.n_bytes));
}

namespace detail {

inline std::int32_t ppd_positive(const gguf::file& f, const char* key, std::int64_t max) {
  const auto v = f.get<std::int64_t>(key);
  if (v < 1 || v > max) {
    throw error(error_category::format, f.source() + ": " + key + " = " + std::to_string(v) + " is outside [1, " +
                                            std::to_string(max) + "]");
  }
  return static_cast<std::int32_t>(v);
}

}  // namespace detail

// Checks and copies an artifact out of a parsed GGUF (the path overload below maps the file). With `model`, also checks that it was trained for that model
// (embedding width, vocabulary, token-embedding fingerprint).
inline ppd_artifact load_ppd(const gguf::file& f, const gguf::file* model = nullptr) {
  const std::string& path = f.source();
  const auto fail = [&](const std::string& what) { throw error(error_category::format, path + ": " + what); };
  const auto arch = f.get<std::string>("general.architecture");
  if (arch != "specdec-ppd") fail("general.architecture is '" + arch + "', not 'specdec-ppd' (not a PPD artifact)");
  const auto version = f.get<std::int64_t>("ppd.format_version");
  if (version != 1) fail("ppd.format_version " + std::to_string(version) + " is not supported (this build reads 1)");

  ppd_artifact a;
  a.n_prompt_tokens = detail::ppd_positive(f, "ppd.n_prompt_tokens", 16);
  a.ensemble = detail::ppd_positive(f, "ppd.n_ensemble", 16);
  a.top_k = detail::ppd_positive(f, "ppd.top_k", top_k_max);
  a.n_embd = detail::ppd_positive(f, "ppd.model.n_embd", 1 << 16);
  a.n_vocab = detail::ppd_positive(f, "ppd.model.n_vocab", 1 << 24);
  a.model_name = f.get<std::string>("ppd.model.name");
  const auto fingerprint = f.get<std::uint64_t>("ppd.model.token_embd_fnv1a64");
  const auto k = a.n_prompt_tokens;
  const auto m = a.ensemble;

  const auto& t = f.tensor("ppd.prompt_embd");
  if (t.type != gguf::ggml_type::f32) fail("tensor ppd.prompt_embd must be F32");
  if (t.n_dims != 2 || t.ne[0] != static_cast<std::uint64_t>(a.n_embd) || t.ne[1] != static_cast<std::uint64_t>(k * m)) {
    fail("tensor ppd.prompt_embd must be " + std::to_string(k * m) + " rows of " + std::to_string(a.n_embd) +
         " (k x m rows of n_embd), got ne = [" + std::to_string(t.ne[0]) + ", " + std::to_string(t.ne[1]) + "]");
  }
  a.embeddings.resize(static_cast<std::size_t>(t.n_elements));
  std::memcpy(a.embeddings.data(), t.data, static_cast<std::size_t>(t.n_bytes));
  const auto checksum = f.get<std::uint64_t>("ppd.checksum");
  if (fnv1a64(a.embeddings.data(), a.embeddings.size() * sizeof(float)) != checksum) {
    fail("ppd.checksum does not match the prompt-token vectors (the file is damaged)");
  }
  for (const float x : a.embeddings) {
    if (!std::isfinite(x)) fail("ppd.prompt_embd holds a value that is not finite");
  }

  a.accuracy = f.get_array<float>("ppd.accuracy");
  if (a.accuracy.size() != static_cast<std::size_t>(k * a.top_k)) {
    fail("ppd.accuracy holds " + std::to_string(a.accuracy.size()) + " values, expected k x K = " + std::to_string(k * a.top_k));
  }

  const auto budget = f.get_array<std::int64_t>("ppd.tree.budget");
  const auto state = f.get_array<std::int64_t>("ppd.tree.state");
  const auto first = f.get_array<std::int64_t>("ppd.tree.first");
  const auto size = f.get_array<std::int64_t>("ppd.tree.size");
  const auto expected = f.get_array<float>("ppd.tree.expected_accept");
  const auto steady = f.get_array<float>("ppd.tree.steady_accept");
  const auto parent = f.get_array<std::int64_t>("ppd.node.parent");
  const auto rank = f.get_array<std::int64_t>("ppd.node.rank");
  const auto n_prompt = f.get_array<std::int64_t>("ppd.node.n_prompt");
  const std::size_t n_trees = budget.size();
  if (n_trees == 0) fail("ppd.tree.budget is empty (no trees)");
  for (const auto* v : {&state, &first, &size}) {
    if (v->size() != n_trees) fail("the ppd.tree.* arrays differ in length");
  }
  if (expected.size() != n_trees || steady.size() != n_trees) fail("the ppd.tree.* arrays differ in length");
  if (rank.size() != parent.size() || n_prompt.size() != parent.size()) fail("the ppd.node.* arrays differ in length");

  std::int64_t smallest = 1LL << 40;
  for (std::size_t i = 0; i < n_trees; ++i) smallest = std::min(smallest, budget[i]);
  std::set<std::int64_t> states_at_smallest;
  a.trees.reserve(n_trees);
  for (std::size_t i = 0; i < n_trees; ++i) {
    const std::string where = "tree " + std::to_string(i) + ": ";
    if (state[i] < 0 || state[i] > k) fail(where + "state " + std::to_string(state[i]) + " is outside [0, k]");
    if (budget[i] < 1 || budget[i] > (1 << 20)) fail(where + "budget " + std::to_string(budget[i]) + " is out of range");
    if (size[i] < 1 || first[i] < 0 || first[i] + size[i] > static_cast<std::int64_t>(parent.size())) {
      fail(where + "nodes [" + std::to_string(first[i]) + ", +" + std::to_string(size[i]) + ") are outside ppd.node.*");
    }
    ppd_tree tr;
    tr.budget = static_cast<std::int32_t>(budget[i]);
    tr.state = static_cast<std::int32_t>(state[i]);
    tr.expected_accept = expected[i];
    tr.steady_accept = steady[i];
    std::set<std::pair<std::int64_t, std::int64_t>> sibling_ranks;
    for (std::int64_t j = 0; j < size[i]; ++j) {
      const auto u = static_cast<std::size_t>(first[i] + j);
      const std::string node = where + "node " + std::to_string(j) + ": ";
      const auto p = parent[u];
      const auto r = rank[u];
      const auto c = n_prompt[u];
      if (j == 0) {
        if (p != -1 || r != -1) fail(node + "the root must have parent -1 and rank -1");
        tr.depth.push_back(0);
      } else {
        if (p < 0 || p >= j) fail(node + "parent " + std::to_string(p) + " is not an earlier node");
        if (r < 0 || r >= a.top_k) fail(node + "rank " + std::to_string(r) + " is outside [0, K)");
        if (!sibling_ranks.insert({p, r}).second) fail(node + "a sibling has the same rank");
        const std::int32_t d = tr.depth[static_cast<std::size_t>(p)] + 1;
        if (d > tr.state) fail(node + "depth " + std::to_string(d) + " exceeds the tree's state");
        tr.depth.push_back(d);
      }
      if (c < 0 || c > k) fail(node + "n_prompt " + std::to_string(c) + " is outside [0, k]");
      tr.parent.push_back(static_cast<std::int32_t>(p));
      tr.rank.push_back(static_cast<std::int32_t>(r));
      tr.n_prompt.push_back(static_cast<std::int32_t>(c));
    }
    if (tr.rows(m) > tr.budget) {
      fail(where + "uses " + std::to_string(tr.rows(m)) + " rows, more than its budget " + std::to_string(tr.budget));
    }
    if (budget[i] == smallest) states_at_smallest.insert(state[i]);
    a.trees.push_back(std::move(tr));
  }
  if (static_cast<std::int32_t>(states_at_smallest.size()) != k + 1) {
    fail("the smallest budget (" + std::to_string(smallest) + ") lacks a tree for some state in 0..k");
  }

  if (model != nullptr) {
    const auto expect = [&](const char* what, std::int64_t ours, std::int64_t theirs) {
      if (ours != theirs) {
        throw error(error_category::invalid_argument, path + ": trained for a model with " + what + " " +
                                                          std::to_string(ours) + ", but " + model->source() + " has " +
                                                          std::to_string(theirs));
      }
    };
    const auto& emb = model->tensor("token_embd.weight");
    expect("n_embd", a.n_embd, static_cast<std::int64_t>(emb.ne[0]));
    expect("n_vocab", a.n_vocab, static_cast<std::int64_t>(emb.ne[1]));
    if (ppd_model_fingerprint(*model) != fingerprint) {
      throw error(error_category::invalid_argument,
                  path + ": trained for model '" + a.model_name + "', whose token embeddings differ from " + model->source() +
                      "'s (ppd.model.token_embd_fnv1a64 does not match)");
    }
  }
  return a;
}

inline ppd_artifact load_ppd(const std::string& path, const gguf::file* model = nullptr) {
  const gguf::file f(path);
  return load_ppd(f, model);
}

}  // namespace specdec
