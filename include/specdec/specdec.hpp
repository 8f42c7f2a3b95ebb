// Umbrella header: everything in specdec that does not need CUDA (core, concepts, model loading,
// tokenizer, CPU backend). CUDA code lives in specdec/backends/cuda/ and is never included here.
#pragma once

#include <specdec/error.hpp>
#include <specdec/version.hpp>

#include <specdec/core/sampling.hpp>
#include <specdec/core/step.hpp>
#include <specdec/core/tree_mask.hpp>
#include <specdec/core/types.hpp>

#include <specdec/concepts/forward_step.hpp>

#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/model/llama_config.hpp>

#include <specdec/tokenizer/chat_template.hpp>
#include <specdec/tokenizer/from_gguf.hpp>
#include <specdec/tokenizer/tokenizer.hpp>

#include <specdec/backends/cpu/llama_cpu.hpp>
