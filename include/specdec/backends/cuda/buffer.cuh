// Owning handles of the CUDA backend: device memory, pinned host memory, a stream and a cuBLAS
// handle. Move-only; a failed allocation throws specdec::error (capacity) naming the bytes asked
// for and the bytes free, and leaves the handle it was meant to replace untouched.
#pragma once

#include <specdec/backends/cuda/check.cuh>
#include <specdec/error.hpp>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>

namespace specdec::cuda {

// "123.4 MiB"
inline std::string mib(std::size_t bytes) {
  const double m = static_cast<double>(bytes) / (1024.0 * 1024.0);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", m);
  return buf;
}

// Free and total memory of the current device.
inline std::pair<std::size_t, std::size_t> device_memory() {
  std::size_t free_b = 0, total_b = 0;
  SPECDEC_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return {free_b, total_b};
}

template <class T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t n, const char* what) : n_(n) {
    if (n == 0) return;
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, n * sizeof(T));
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      std::size_t free_b = 0, total_b = 0;
      (void)cudaMemGetInfo(&free_b, &total_b);
      (void)cudaGetLastError();
      throw error(e == cudaErrorMemoryAllocation ? error_category::capacity : detail::category_of(e),
                  std::string("CUDA: cudaMalloc of ") + mib(n * sizeof(T)) + " for " + what + " failed: " +
                      cudaGetErrorName(e) + " (" + mib(free_b) + " free of " + mib(total_b) + ")");
    }
    p_ = static_cast<T*>(p);
  }
  device_buffer(device_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { release(); }

  [[nodiscard]] T* get() const noexcept { return p_; }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return n_ * sizeof(T); }

 private:
  void release() noexcept {
    if (p_ != nullptr) (void)cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// Page-locked host memory: the target of the asynchronous logits copies.
template <class T>
class pinned_buffer {
 public:
  pinned_buffer() = default;
  explicit pinned_buffer(std::size_t n, const char* what) : n_(n) {
    if (n == 0) return;
    void* p = nullptr;
    const cudaError_t e = cudaHostAlloc(&p, n * sizeof(T), cudaHostAllocDefault);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      throw error(e == cudaErrorMemoryAllocation ? error_category::capacity : detail::category_of(e),
                  std::string("CUDA: cudaHostAlloc of ") + mib(n * sizeof(T)) + " pinned bytes for " + what +
                      " failed: " + cudaGetErrorName(e));
    }
    p_ = static_cast<T*>(p);
  }
  pinned_buffer(pinned_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  pinned_buffer& operator=(pinned_buffer&& o) noexcept {
    if (this != &o) {
      release();
      p_ = std::exchange(o.p_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;
  ~pinned_buffer() { release(); }

  [[nodiscard]] T* get() const noexcept { return p_; }
  [[nodiscard]] std::size_t size() const noexcept { return n_; }

 private:
  void release() noexcept {
    if (p_ != nullptr) (void)cudaFreeHost(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

// A non-blocking stream; default-constructed empty, create() makes one.
class stream_handle {
 public:
  stream_handle() = default;
  static stream_handle create() {
    stream_handle h;
    SPECDEC_CUDA_CHECK(cudaStreamCreateWithFlags(&h.s_, cudaStreamNonBlocking));
    return h;
  }
  stream_handle(stream_handle&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  stream_handle& operator=(stream_handle&& o) noexcept {
    if (this != &o) {
      release();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  stream_handle(const stream_handle&) = delete;
  stream_handle& operator=(const stream_handle&) = delete;
  ~stream_handle() { release(); }
  [[nodiscard]] cudaStream_t get() const noexcept { return s_; }

 private:
  void release() noexcept {
    if (s_ != nullptr) (void)cudaStreamDestroy(s_);
    s_ = nullptr;
  }
  cudaStream_t s_ = nullptr;
};

// A cuBLAS handle bound to a stream; default-constructed empty, create(stream) makes one.
class cublas_handle {
 public:
  cublas_handle() = default;
  static cublas_handle create(cudaStream_t s) {
    cublas_handle h;
    SPECDEC_CUBLAS_CHECK(cublasCreate(&h.h_));
    SPECDEC_CUBLAS_CHECK(cublasSetStream(h.h_, s));
    // No reduced-precision shortcuts: fp32 accumulation as CUBLAS_COMPUTE_32F asks.
    SPECDEC_CUBLAS_CHECK(cublasSetMathMode(h.h_, CUBLAS_DEFAULT_MATH));
    return h;
  }
  cublas_handle(cublas_handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  cublas_handle& operator=(cublas_handle&& o) noexcept {
    if (this != &o) {
      release();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  cublas_handle(const cublas_handle&) = delete;
  cublas_handle& operator=(const cublas_handle&) = delete;
  ~cublas_handle() { release(); }
  [[nodiscard]] cublasHandle_t get() const noexcept { return h_; }

 private:
  void release() noexcept {
    if (h_ != nullptr) (void)cublasDestroy(h_);
    h_ = nullptr;
  }
  cublasHandle_t h_ = nullptr;
};

}  // namespace specdec::cuda
