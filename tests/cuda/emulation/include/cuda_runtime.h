// specdec's CUDA emulator: the part of the CUDA runtime API, the device built-ins and the kernel
// launch that the CUDA backend (include/specdec/backends/cuda) uses, implemented on the CPU so that
// the backend's own code -- host logic and kernels alike -- runs and is tested on a machine without
// a GPU. Test tool only (tests/cuda/emulation/README.md); never part of the library.
//
// How kernels run: one block at a time; every thread of the block is a fiber with its own stack,
// resumed round-robin. __syncthreads() and __shfl_xor_sync() end a thread's turn; after every round
// the emulator checks that the threads of a block (for __syncthreads) or of a warp (for a shuffle)
// all stopped at the same kind of barrier, and reports a divergent one as a launch failure.
// __shared__ variables are function-local statics, which one block at a time makes block-shared.
//
// What it checks beyond running the code: launch configurations (block size, grid limits, a zero
// grid), every pointer argument of a kernel lies in device memory (a host pointer is an error), every
// copy and memset stays inside its allocation, writes past either end of an allocation (guard bands
// checked after every launch and copy), 16-byte alignment of __ldg vector loads; new device memory
// is filled with NaN bytes so that a read of memory nothing wrote shows up in the results.
//
// What it cannot show: timing, concurrency between streams or with the host (every call completes
// before it returns), the GPU's expf / division rounding (the host's are used: __fdiv_rn and
// __fsqrt_rn are IEEE on both; expf differs by at most a couple of ulps), races between threads of
// a block outside barriers, a kernel image's register or shared memory limits.
#pragma once

#include <math.h>

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One block runs at a time: a function-local static is shared by the block's threads.
#define __shared__ static

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(16) float4 {
  float x, y, z, w;
};

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoKernelImageForDevice = 209,
  cudaErrorUnsupportedPtxVersion = 222,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorInvalidConfiguration = 9,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

struct specdec_emu_stream;
using cudaStream_t = specdec_emu_stream*;
inline constexpr unsigned cudaStreamNonBlocking = 1;
inline constexpr unsigned cudaHostAllocDefault = 0;

struct cudaDeviceProp {
  char name[256];
  std::size_t totalGlobalMem;
  int major, minor;
  int multiProcessorCount;
};

const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes);
cudaError_t cudaMalloc(void** p, std::size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaHostAlloc(void** p, std::size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);

namespace specdec_emu {

// Where the running thread is; the scheduler points `current` at the fiber it resumes.
struct thread_state {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};
inline thread_state* current = nullptr;

void sync_threads();
float shfl_xor(unsigned mask, float v, int lane_mask, int width);
void check_alignment(const void* p, std::size_t align, const char* what);
// Runs body(ctx) for every thread of the grid; returns false (the error is recorded for
// cudaGetLastError) when the configuration, an argument or the kernel's barriers are wrong.
bool run_grid(const char* kernel, dim3 grid, dim3 block, std::size_t dynamic_shared, cudaStream_t stream,
              void (*body)(void*), void* ctx);
// Records a launch error for a pointer argument outside device memory.
bool check_device_pointer(const char* kernel, int arg, const void* p);

template <class T>
bool check_arg(const char* kernel, int arg, const T& v) {
  if constexpr (std::is_pointer_v<T>) {
    return check_device_pointer(kernel, arg, static_cast<const void*>(v));
  } else {
    (void)kernel;
    (void)arg;
    (void)v;
    return true;
  }
}

template <class... P>
struct launch_ctx {
  void (*kernel)(P...);
  std::tuple<P...> args;
  static void body(void* c) {
    auto* self = static_cast<launch_ctx*>(c);
    std::apply(self->kernel, self->args);
  }
};

// kernel<<<grid, block, shared, stream>>>(args...)
template <class... P, class... A>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, std::size_t shared, cudaStream_t stream,
            A&&... a) {
  launch_ctx<P...> ctx{kernel, std::tuple<P...>(static_cast<P>(a)...)};
  bool ok = true;
  int i = 0;
  std::apply([&](const auto&... v) { ((ok = ok && check_arg(name, i++, v)), ...); }, ctx.args);
  if (!ok) return;
  (void)run_grid(name, grid, block, shared, stream, &launch_ctx<P...>::body, &ctx);
}

}  // namespace specdec_emu

#define threadIdx (::specdec_emu::current->thread_idx)
#define blockIdx (::specdec_emu::current->block_idx)
#define blockDim (::specdec_emu::current->block_dim)
#define gridDim (::specdec_emu::current->grid_dim)

inline void __syncthreads() { ::specdec_emu::sync_threads(); }
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask, int width = 32) {
  return ::specdec_emu::shfl_xor(mask, v, lane_mask, width);
}

// Arithmetic spelled with an explicit rounding: IEEE single precision, round to nearest even. The
// emulated translation unit is compiled with -ffp-contract=off, so that a * b + c stays two roundings.
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __uint_as_float(unsigned u) { return std::bit_cast<float>(u); }
inline unsigned __float_as_uint(float f) { return std::bit_cast<unsigned>(f); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

template <class T>
inline T __ldg(const T* p) {
  ::specdec_emu::check_alignment(p, alignof(T), "__ldg");
  return *p;
}
