// Umbrella header: everything in specdec that does not need CUDA (core, model loading, tokenizer,
// CPU backend). CUDA code lives in specdec/backends/cuda/ and is never included from here.
#pragma once

#include <specdec/error.hpp>
#include <specdec/version.hpp>
#include <specdec/core/types.hpp>
#include <specdec/model/gguf/dequantize.hpp>
#include <specdec/model/gguf/reader.hpp>
#include <specdec/model/llama_config.hpp>
