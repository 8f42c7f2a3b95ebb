// A minimal program using an installed (or vendored) specdec: reads a GGUF model's configuration.
#include <specdec/specdec.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer model.gguf\n");
    return 2;
  }
  try {
    const specdec::gguf::file f(argv[1]);
    const auto c = specdec::read_llama_config(f);
    std::printf("specdec %s: %s, %lld layers, %lld-dim embeddings\n", specdec::version_string,
                c.architecture.c_str(), static_cast<long long>(c.n_layers), static_cast<long long>(c.n_embd));
    return 0;
  } catch (const specdec::error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
