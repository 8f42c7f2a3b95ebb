// The CUDA emulator's own checks, on small kernels written for it: a block reduction through
// __syncthreads and a warp butterfly through __shfl_xor_sync give the sums computed here on the
// host; and the faults it exists to catch are reported through cudaGetLastError as launch errors:
// a divergent barrier, a warp whose lanes do not all shuffle, a write past the end of an
// allocation, a host pointer passed to a kernel, a zero grid.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <numeric>
#include <vector>

namespace {

__global__ void block_sum(const float* in, float* out) {
  __shared__ float red[256];
  red[threadIdx.x] = in[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
    if (threadIdx.x < k) red[threadIdx.x] += red[threadIdx.x + k];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = red[0];
}

__global__ void warp_sum(const float* in, float* out) {
  float v = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, off);
  out[blockIdx.x * blockDim.x + threadIdx.x] = v;  // every lane holds its warp's sum
}

__global__ void divergent_barrier(float* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void half_warp_shuffle(float* out) {
  float v = 1.0f;
  if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xFFFFFFFFu, v, 1);
  out[threadIdx.x] = v;
}

__global__ void write_one_past(float* out, int n) { out[n + static_cast<int>(threadIdx.x)] = 0.0f; }

template <class Fn>
cudaError_t launched(Fn&& fn) {
  (void)cudaGetLastError();
  fn();
  return cudaGetLastError();
}

}  // namespace

TEST_CASE("emulated barriers and shuffles compute what the host computes", "[emulator]") {
  constexpr int blocks = 3, threads = 256;
  std::vector<float> host(blocks * threads);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>((i * 37) % 101) - 50.0f;
  float *in = nullptr, *out = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&in), host.size() * 4) == cudaSuccess);
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&out), host.size() * 4) == cudaSuccess);
  REQUIRE(cudaMemcpy(in, host.data(), host.size() * 4, cudaMemcpyHostToDevice) == cudaSuccess);

  CHECK(launched([&] { specdec_emu::launch("block_sum", block_sum, blocks, threads, 0, nullptr, in, out); }) == cudaSuccess);
  std::vector<float> sums(blocks);
  REQUIRE(cudaMemcpy(sums.data(), out, blocks * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (int b = 0; b < blocks; ++b) {
    // Integers far below 2^24: every order of summation gives the exact sum.
    const float want = std::accumulate(host.begin() + b * threads, host.begin() + (b + 1) * threads, 0.0f);
    CHECK(sums[static_cast<std::size_t>(b)] == want);
  }

  CHECK(launched([&] { specdec_emu::launch("warp_sum", warp_sum, blocks, threads, 0, nullptr, in, out); }) == cudaSuccess);
  std::vector<float> lanes(host.size());
  REQUIRE(cudaMemcpy(lanes.data(), out, lanes.size() * 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  for (std::size_t w = 0; w < host.size(); w += 32) {
    const float want = std::accumulate(host.begin() + static_cast<std::ptrdiff_t>(w),
                                       host.begin() + static_cast<std::ptrdiff_t>(w + 32), 0.0f);
    for (std::size_t l = 0; l < 32; ++l) CHECK(lanes[w + l] == want);
  }
  CHECK(cudaFree(in) == cudaSuccess);
  CHECK(cudaFree(out) == cudaSuccess);
}

TEST_CASE("the emulator reports the faults a GPU would hang or fault on", "[emulator]") {
  float* out = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&out), 64 * 4) == cudaSuccess);
  CHECK(launched([&] { specdec_emu::launch("divergent_barrier", divergent_barrier, 1, 64, 0, nullptr, out); }) ==
        cudaErrorLaunchFailure);
  CHECK(launched([&] { specdec_emu::launch("half_warp_shuffle", half_warp_shuffle, 1, 64, 0, nullptr, out); }) ==
        cudaErrorLaunchFailure);
  CHECK(launched([&] { specdec_emu::launch("write_one_past", write_one_past, 1, 1, 0, nullptr, out, 64); }) ==
        cudaErrorIllegalAddress);
  // The guard band stays damaged: cudaFree reports it too.
  CHECK(cudaFree(out) == cudaErrorIllegalAddress);
  (void)cudaGetLastError();

  std::vector<float> host(64);
  CHECK(launched([&] { specdec_emu::launch("write_one_past", write_one_past, 1, 1, 0, nullptr, host.data(), 0); }) ==
        cudaErrorIllegalAddress);
  float* ok = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&ok), 64 * 4) == cudaSuccess);
  CHECK(launched([&] { specdec_emu::launch("write_one_past", write_one_past, 0, 1, 0, nullptr, ok, 0); }) ==
        cudaErrorInvalidConfiguration);
  CHECK(launched([&] { specdec_emu::launch("write_one_past", write_one_past, 1, 2048, 0, nullptr, ok, 0); }) ==
        cudaErrorInvalidConfiguration);
  // Fresh device memory reads as NaN.
  float first = 0.0f;
  REQUIRE(cudaMemcpy(&first, ok, 4, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(first != first);
  // A copy past the end of an allocation is refused.
  std::vector<float> big(65);
  CHECK(cudaMemcpy(ok, big.data(), big.size() * 4, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  (void)cudaGetLastError();
  CHECK(cudaFree(ok) == cudaSuccess);
}
