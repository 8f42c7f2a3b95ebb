// Catch2 runner of the [cuda] tests. Without a CUDA device it prints "skipped: no CUDA device" and
// exits with 77, which ctest maps to "skipped" (SKIP_RETURN_CODE), never to a pass.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "gpu_model.hpp"

#include <cstdio>

int main(int argc, char* argv[]) {
  if (specdec::test::cuda_device_count() == 0) {
    std::printf("skipped: no CUDA device\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
