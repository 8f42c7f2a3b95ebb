// Error checking of the CUDA backend: every CUDA runtime call and cuBLAS status goes through
// SPECDEC_CUDA_CHECK / SPECDEC_CUBLAS_CHECK, which throw specdec::error naming the call, the status
// name and where it was made. Categories: capacity for device memory exhaustion, unsupported for a
// missing device, driver or kernel image, model for anything else.
#pragma once

#include <specdec/error.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

namespace specdec::cuda {

namespace detail {

inline error_category category_of(cudaError_t e) noexcept {
  switch (e) {
    case cudaErrorMemoryAllocation: return error_category::capacity;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorInvalidDevice: return error_category::unsupported;
    default: return error_category::model;
  }
}

inline error_category category_of(cublasStatus_t s) noexcept {
  switch (s) {
    case CUBLAS_STATUS_ALLOC_FAILED: return error_category::capacity;
    case CUBLAS_STATUS_NOT_SUPPORTED:
    case CUBLAS_STATUS_ARCH_MISMATCH: return error_category::unsupported;
    default: return error_category::model;
  }
}

inline std::string where(const char* file, int line) { return std::string(file) + ":" + std::to_string(line); }

inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clears a non-sticky error so that later calls report their own status
  throw error(category_of(e), std::string("CUDA: ") + call + " failed: " + cudaGetErrorName(e) + " (" +
                                  cudaGetErrorString(e) + ") at " + where(file, line));
}

inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw error(category_of(s), std::string("cuBLAS: ") + call + " failed: " + cublasGetStatusName(s) + " (" +
                                  cublasGetStatusString(s) + ") at " + where(file, line));
}

}  // namespace detail

// Devices visible to this process; 0 when there is none or no usable driver (never throws).
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace specdec::cuda

#define SPECDEC_CUDA_CHECK(call) ::specdec::cuda::detail::check_cuda((call), #call, __FILE__, __LINE__)
#define SPECDEC_CUBLAS_CHECK(call) ::specdec::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)
// After a kernel launch: a bad configuration (grid, shared memory) is reported here, naming the kernel.
#define SPECDEC_CUDA_LAUNCHED(kernel) \
  ::specdec::cuda::detail::check_cuda(cudaGetLastError(), "launch of " kernel, __FILE__, __LINE__)
