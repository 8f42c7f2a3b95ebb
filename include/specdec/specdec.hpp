// Umbrella header: everything in specdec that does not need CUDA: core types, the boundary concepts
// and their adapters, acceptance rules, the decoder, the drafters, model loading, the tokenizer and
// the CPU backend. CUDA code lives in specdec/backends/cuda/ and is never included here.
#pragma once

#include <specdec/error.hpp>
#include <specdec/version.hpp>

#include <specdec/core/batch.hpp>
#include <specdec/core/decode_stats.hpp>
#include <specdec/core/draft_tree.hpp>
#include <specdec/core/sampling.hpp>
#include <specdec/core/sequence_view.hpp>
#include <specdec/core/single_sequence_adapter.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/topk.hpp>
#include <specdec/core/tree_mask.hpp>
#include <specdec/core/types.hpp>
#include <specdec/core/verify_types.hpp>

#include <specdec/concepts/acceptance_rule.hpp>
#include <specdec/concepts/drafter.hpp>
#include <specdec/concepts/forward_step.hpp>
#include <specdec/concepts/sequence_model.hpp>

#include <specdec/verify/decoder.hpp>
#include <specdec/verify/generate.hpp>
#include <specdec/verify/greedy.hpp>
#include <specdec/verify/sampling.hpp>

#include <specdec/drafters/any_drafter.hpp>
#include <specdec/drafters/lookahead_trie.hpp>
#include <specdec/drafters/ngram_trie.hpp>
#include <specdec/drafters/token_recycling.hpp>
#include <specdec/drafters/tree_template.hpp>

#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/model/llama_config.hpp>

#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <specdec/tokenizer/tokenizer.hpp>

#include <specdec/backends/cpu/llama_cpu.hpp>
