// Shared helpers of the example programs (not part of the library): finding the default model,
// printing UTF-8 text as tokens stream in, and parsing the command line.
#pragma once

#include "common/methods.hpp"

#include <specdec/backends/cpu/kv_cache.hpp>
#include <specdec/backends/cpu/quant/convert.hpp>
#include <specdec/error.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <unistd.h>

namespace specdec::programs {

inline constexpr const char* default_model_name = "SmolLM2-135M-Instruct.Q4_1.gguf";

// The model used when -m is not given: $SPECDEC_MODEL, then the path the build was configured with,
// then models/ in the working directory, then models/ above the executable.
inline std::string default_model_path() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("SPECDEC_MODEL"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
#ifdef SPECDEC_DEFAULT_MODEL_PATH
  if (fs::is_regular_file(SPECDEC_DEFAULT_MODEL_PATH, ec)) return SPECDEC_DEFAULT_MODEL_PATH;
#endif
  if (fs::path p = fs::path("models") / default_model_name; fs::is_regular_file(p, ec)) return p.string();
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path(); dir = dir.parent_path()) {
      if (fs::path p = dir / "models" / default_model_name; fs::is_regular_file(p, ec)) return p.string();
    }
  }
  throw error(error_category::io, std::string("default model ") + default_model_name +
                                      " not found (run scripts/demo.sh to fetch it, or pass -m FILE)");
}

// Buffers bytes until they form complete UTF-8 characters, so a character split across two tokens
// is printed whole. Invalid bytes are passed through once they can no longer start a character.
class utf8_printer {
 public:
  explicit utf8_printer(std::FILE* out) : out_(out) {}

  void write(const std::string& bytes) {
    pending_ += bytes;
    std::size_t complete = 0;
    for (std::size_t i = 0; i < pending_.size();) {
      const auto c = static_cast<unsigned char>(pending_[i]);
      const std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
      if (i + len > pending_.size()) break;
      i += len;
      complete = i;
    }
    std::fwrite(pending_.data(), 1, complete, out_);
    std::fflush(out_);
    pending_.erase(0, complete);
  }

  void flush() {
    std::fwrite(pending_.data(), 1, pending_.size(), out_);
    std::fflush(out_);
    pending_.clear();
  }

 private:
  std::FILE* out_;
  std::string pending_;
};

// Parses the command line the same way in every program: --help prints and exits 0, a parse error
// is one "error:" line and exit 2, and when `list_methods` was set by the parse the method names are
// printed and the program exits 0. Returns the exit code when the program should stop now.
inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv, const bool& list_methods) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  if (list_methods) {
    for (const auto& name : method_names()) std::printf("%s\n", name.c_str());
    return 0;
  }
  return std::nullopt;
}

// --weights: how the CPU backend holds the weight matrices. The text is parsed after the command
// line (a bad value is a specdec::error naming the flag, exit code 2 like other bad input).
// --activations: how products with block-quantized weights meet the activations.
// --kv-type: the element type of the cached K and V.
inline void add_weights_option(CLI::App& app, std::string& value, std::string& activations, std::string& kv_type) {
  app.add_option("--weights", value,
                 "weight storage: auto (the file's formats where a kernel exists, else the nearest), native, "
                 "q8, bf16, fp32 (default auto)");
  app.add_option("--activations", activations,
                 "products with quantized weights: f32 (default; each block widened to fp32, the fp32 product of "
                 "the dequantized weights) or int8 (quantized activations, integer products; less accurate)");
  app.add_option("--kv-type", kv_type,
                 "KV cache element type: f32 (default), f16 or bf16 (half the cache memory and the bytes attention "
                 "reads; each K/V value rounded once when written)");
}

// Says once on stderr what the backend holds when the user asked for a storage (--weights other
// than the default auto) or the load converted something (a format without a kernel); a plain run
// and --json / --quiet runs keep stderr empty.
template <class Model>
void report_weights(const Model& m, const std::string& choice, bool quiet) {
  const auto conversions = m.weight_conversions();
  if (!quiet && choice != "auto") {
    std::fprintf(stderr, "weights (%s): %.1f MB held, %.1f MB read per forward step\n", choice.c_str(),
                 static_cast<double>(m.weight_bytes()) / 1e6, static_cast<double>(m.weight_bytes_per_step()) / 1e6);
  }
  if (choice == "auto") {
    for (const auto& line : conversions) std::fprintf(stderr, "weights: converted %s\n", line.c_str());
  }
  const auto kv = m.cache().format();
  if (!quiet && kv != cpu::kv_format::f32) {
    std::fprintf(stderr, "kv cache (%s): %.1f KB per cached token\n", std::string(cpu::to_string(kv)).c_str(),
                 static_cast<double>(m.cache().bytes_per_token()) / 1e3);
  }
}

}  // namespace specdec::programs
