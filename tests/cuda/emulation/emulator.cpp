// specdec's CUDA emulator: device memory, the fiber scheduler that runs kernels, the runtime calls
// and cublasGemmEx on the CPU (include/cuda_runtime.h says what it checks and what it cannot show).
// x86-64 System V only: the fibers switch with the few instructions below.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

extern "C" void specdec_emu_switch(void** save_sp, void* to_sp);
extern "C" void specdec_emu_trampoline();

// Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp, then
// restores the same from to_sp and returns there. A new fiber's stack is laid out so that the first
// switch "returns" into the trampoline, which calls r13(r12). MXCSR and the x87 control word are
// not switched: every fiber runs in the thread's floating-point environment, which no kernel changes.
asm(R"(
    .text
    .globl specdec_emu_switch
    .type specdec_emu_switch, @function
specdec_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size specdec_emu_switch, .-specdec_emu_switch

    .globl specdec_emu_trampoline
    .type specdec_emu_trampoline, @function
specdec_emu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size specdec_emu_trampoline, .-specdec_emu_trampoline
)");

struct specdec_emu_stream {
  int magic = 0x5354;
};
struct specdec_emu_cublas {
  int magic = 0x424c;
  cudaStream_t stream = nullptr;
};

namespace specdec_emu {
namespace {

// ---- errors ---------------------------------------------------------------------------------

cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t e, const std::string& why) {
  std::fprintf(stderr, "[cuda emulator] %s: %s\n", cudaGetErrorName(e), why.c_str());
  if (last_error == cudaSuccess) last_error = e;
  return e;
}

// ---- memory ---------------------------------------------------------------------------------

constexpr std::size_t guard = 256;           // bytes of guard band before and after every allocation
constexpr unsigned char guard_byte = 0xA5;
constexpr unsigned char fresh_byte = 0xFF;   // fresh device memory reads as NaN floats

struct allocation {
  std::size_t bytes;
  bool device;
  unsigned char* block;  // the allocation with its guard bands
};

std::map<std::uintptr_t, allocation> allocations;  // by user address
std::size_t device_in_use = 0;

std::size_t device_capacity() {
  static const std::size_t cap = [] {
    const char* s = std::getenv("SPECDEC_CUDA_EMULATION_MIB");
    const long long mib = s != nullptr ? std::atoll(s) : 16384;
    return static_cast<std::size_t>(mib > 0 ? mib : 16384) << 20;
  }();
  return cap;
}

// The allocation holding [p, p + bytes), or nullptr.
const allocation* find(const void* p, std::size_t bytes, std::uintptr_t* base = nullptr) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto it = allocations.upper_bound(a);
  if (it == allocations.begin()) return nullptr;
  --it;
  if (a < it->first || a + bytes > it->first + it->second.bytes) return nullptr;
  if (base != nullptr) *base = it->first;
  return &it->second;
}

void* allocate(std::size_t bytes, bool device) {
  auto* block = static_cast<unsigned char*>(std::aligned_alloc(256, (bytes + 2 * guard + 255) / 256 * 256));
  if (block == nullptr) return nullptr;
  std::memset(block, guard_byte, guard);
  std::memset(block + guard, device ? fresh_byte : 0, bytes);
  std::memset(block + guard + bytes, guard_byte, guard);
  allocations[reinterpret_cast<std::uintptr_t>(block + guard)] = allocation{bytes, device, block};
  return block + guard;
}

bool guards_intact(const allocation& a) {
  for (std::size_t i = 0; i < guard; ++i) {
    if (a.block[i] != guard_byte || a.block[guard + a.bytes + i] != guard_byte) return false;
  }
  return true;
}

// After every kernel and copy: a write past either end of an allocation is an illegal address.
bool check_guards(const char* after) {
  for (const auto& [at, a] : allocations) {
    if (!guards_intact(a)) {
      fail(cudaErrorIllegalAddress, std::string("a write outside the ") + std::to_string(a.bytes) +
                                        "-byte allocation at " + std::to_string(at) + " (found after " + after + ")");
      return false;
    }
  }
  return true;
}

bool is_device(const void* p, std::size_t bytes) {
  const allocation* a = find(p, bytes);
  return a != nullptr && a->device;
}

// ---- fibers and the scheduler ---------------------------------------------------------------

constexpr std::size_t stack_bytes = 64 * 1024;
enum class stop : unsigned char { none, barrier, shuffle, done };

struct fiber {
  void* sp = nullptr;
  unsigned char* stack = nullptr;  // mmap'd, lowest page a guard
  thread_state ts{};
  stop at = stop::none;
  std::uint64_t shuffles = 0;  // shuffles done: selects the exchange buffer and pairs the lanes
  int linear = 0;
};

struct block_run {
  std::vector<fiber> fibers;
  void* scheduler_sp = nullptr;
  fiber* running = nullptr;
  std::vector<float> exchange[2];  // shuffle values by linear thread index, alternating per shuffle
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  unsigned threads = 0;
  const char* kernel = "";
  bool failed = false;
};

block_run* active = nullptr;

// Ends the running fiber's turn: on to the next fiber of the round that has not finished, or back
// to the scheduler when the round is over (one switch per turn).
void pass_on(fiber* f) {
  block_run& r = *active;
  const auto n = static_cast<int>(r.threads);
  for (int t = f->linear + 1; t < n; ++t) {
    fiber& next = r.fibers[static_cast<std::size_t>(t)];
    if (next.at == stop::done) continue;
    r.running = &next;
    current = &next.ts;
    specdec_emu_switch(&f->sp, next.sp);
    return;
  }
  specdec_emu_switch(&f->sp, r.scheduler_sp);
}

void yield(stop why) {
  fiber* f = active->running;
  f->at = why;
  pass_on(f);
}

void fiber_main(fiber* f) {
  active->body(active->ctx);
  f->at = stop::done;
  pass_on(f);
  std::abort();  // a finished fiber is never resumed
}

void start_fiber(fiber& f) {
  if (f.stack == nullptr) {
    const long page = sysconf(_SC_PAGESIZE);
    void* m = mmap(nullptr, stack_bytes + static_cast<std::size_t>(page), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      std::fprintf(stderr, "[cuda emulator] no memory for a fiber stack\n");
      std::abort();
    }
    mprotect(m, static_cast<std::size_t>(page), PROT_NONE);  // a stack overflow faults
    f.stack = static_cast<unsigned char*>(m);
  }
  const long page = sysconf(_SC_PAGESIZE);
  // Stack tops staggered by 64 bytes per fiber: the hot end of every stack in its own L1 set.
  auto top = reinterpret_cast<std::uintptr_t>(f.stack) + stack_bytes + static_cast<std::uintptr_t>(page) -
             static_cast<std::uintptr_t>(f.linear % 64) * 64;
  top &= ~std::uintptr_t{15};
  auto* slot = reinterpret_cast<std::uint64_t*>(top);
  slot[-1] = reinterpret_cast<std::uint64_t>(&specdec_emu_trampoline);  // ret target
  slot[-2] = 0;                                                           // rbp
  slot[-3] = 0;                                                           // rbx
  slot[-4] = reinterpret_cast<std::uint64_t>(&f);                         // r12: argument
  slot[-5] = reinterpret_cast<std::uint64_t>(&fiber_main);                // r13: entry
  slot[-6] = 0;                                                           // r14
  slot[-7] = 0;                                                           // r15
  f.sp = &slot[-7];
  f.at = stop::none;
  f.shuffles = 0;
}

std::vector<fiber> fiber_pool;  // stacks reused across blocks and launches

std::string block_name(const char* kernel, const uint3& b) {
  return std::string(kernel) + " block (" + std::to_string(b.x) + ", " + std::to_string(b.y) + ", " + std::to_string(b.z) + ")";
}

// After a round: every thread of the block stopped at __syncthreads, or none did; the lanes of a
// warp stopped at the same shuffle, or none did.
bool round_consistent(block_run& r, const uint3& block, unsigned threads) {
  std::size_t at_barrier = 0, live = 0;
  for (unsigned t = 0; t < threads; ++t) {
    const fiber& f = r.fibers[t];
    if (f.at != stop::done) ++live;
    if (f.at == stop::barrier) ++at_barrier;
  }
  if (at_barrier != 0 && at_barrier != threads) {
    fail(cudaErrorLaunchFailure, block_name(r.kernel, block) + ": " + std::to_string(at_barrier) + " of " +
                                     std::to_string(threads) + " threads at __syncthreads (" + std::to_string(live) +
                                     " still running): a divergent barrier");
    return false;
  }
  for (unsigned w = 0; w < threads; w += 32) {
    const unsigned end = std::min(threads, w + 32);
    const fiber& first = r.fibers[w];
    for (unsigned t = w; t < end; ++t) {
      const fiber& f = r.fibers[t];
      const bool a = f.at == stop::shuffle, b = first.at == stop::shuffle;
      if (a != b || (a && f.shuffles != first.shuffles)) {
        fail(cudaErrorLaunchFailure, block_name(r.kernel, block) + ": lanes " + std::to_string(w) + " and " +
                                         std::to_string(t) + " of a warp are not at the same __shfl_xor_sync");
        return false;
      }
    }
  }
  return true;
}

}  // namespace

void sync_threads() {
  if (active == nullptr) std::abort();
  yield(stop::barrier);
}

float shfl_xor(unsigned mask, float v, int lane_mask, int width) {
  if (active == nullptr) std::abort();
  fiber* f = active->running;
  const unsigned threads = f->ts.block_dim.x * f->ts.block_dim.y * f->ts.block_dim.z;
  if (mask != 0xFFFFFFFFu || width != 32 || threads % 32 != 0 || lane_mask < 0 || lane_mask >= 32) {
    fail(cudaErrorLaunchFailure, std::string(active->kernel) + ": __shfl_xor_sync with mask " + std::to_string(mask) +
                                     ", width " + std::to_string(width) + ", lane mask " + std::to_string(lane_mask) +
                                     " in a block of " + std::to_string(threads) +
                                     " threads (the emulator supports full warps only)");
    active->failed = true;
    return v;
  }
  auto& buf = active->exchange[f->shuffles & 1];
  buf[static_cast<std::size_t>(f->linear)] = v;
  ++f->shuffles;
  yield(stop::shuffle);  // every lane of the warp writes before any reads (checked after the round)
  const int lane = f->linear % 32;
  return buf[static_cast<std::size_t>(f->linear - lane + (lane ^ lane_mask))];
}

void check_alignment(const void* p, std::size_t align, const char* what) {
  if (reinterpret_cast<std::uintptr_t>(p) % align != 0) {
    fail(cudaErrorMisalignedAddress, std::string(what) + " of a " + std::to_string(align) + "-byte value at a misaligned address");
    if (active != nullptr) active->failed = true;
  }
}

bool check_device_pointer(const char* kernel, int arg, const void* p) {
  if (p == nullptr) return true;
  if (is_device(p, 0)) return true;
  fail(cudaErrorIllegalAddress, std::string("launch of ") + kernel + ": argument " + std::to_string(arg) +
                                    " is not device memory");
  return false;
}

bool run_grid(const char* kernel, dim3 grid, dim3 block, std::size_t dynamic_shared, cudaStream_t stream,
              void (*body)(void*), void* ctx) {
  const unsigned long long threads = static_cast<unsigned long long>(block.x) * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    fail(cudaErrorInvalidConfiguration,
         std::string("launch of ") + kernel + ": grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " +
             std::to_string(grid.z) + "), block (" + std::to_string(block.x) + ", " + std::to_string(block.y) + ", " +
             std::to_string(block.z) + ")");
    return false;
  }
  if (dynamic_shared != 0) {
    fail(cudaErrorInvalidValue, std::string("launch of ") + kernel + ": dynamic shared memory is not emulated");
    return false;
  }
  if (stream != nullptr && stream->magic != 0x5354) {
    fail(cudaErrorInvalidResourceHandle, std::string("launch of ") + kernel + ": not a stream");
    return false;
  }
  const auto n = static_cast<unsigned>(threads);
  if (fiber_pool.size() < n) fiber_pool.resize(n);
  block_run r;
  r.fibers.swap(fiber_pool);
  r.exchange[0].assign(n, 0.0f);
  r.exchange[1].assign(n, 0.0f);
  r.body = body;
  r.ctx = ctx;
  r.threads = n;
  r.kernel = kernel;
  block_run* outer = active;
  active = &r;
  thread_state* outer_state = current;
  bool ok = true;
  for (unsigned bz = 0; bz < grid.z && ok; ++bz) {
    for (unsigned by = 0; by < grid.y && ok; ++by) {
      for (unsigned bx = 0; bx < grid.x && ok; ++bx) {
        const uint3 b{bx, by, bz};
        for (unsigned t = 0; t < n; ++t) {
          fiber& f = r.fibers[t];
          f.linear = static_cast<int>(t);
          start_fiber(f);
          f.ts.thread_idx = uint3{t % block.x, t / block.x % block.y, t / (block.x * block.y)};
          f.ts.block_idx = b;
          f.ts.block_dim = block;
          f.ts.grid_dim = grid;
        }
        for (;;) {
          fiber* first = nullptr;
          for (unsigned t = 0; t < n && first == nullptr; ++t) first = r.fibers[t].at == stop::done ? nullptr : &r.fibers[t];
          if (first == nullptr) break;
          r.running = first;
          current = &first->ts;
          specdec_emu_switch(&r.scheduler_sp, first->sp);  // returns when the round is over
          if (r.failed || !round_consistent(r, b, n)) {
            ok = false;
            break;
          }
        }
      }
    }
  }
  current = outer_state;
  active = outer;
  fiber_pool.swap(r.fibers);
  if (ok) ok = check_guards(kernel);
  return ok;
}

}  // namespace specdec_emu

using namespace specdec_emu;

// ---- the runtime API ----------------------------------------------------------------------------

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorUnsupportedPtxVersion: return "cudaErrorUnsupportedPtxVersion";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    default: return "emulated error";
  }
}

cudaError_t cudaGetLastError() { return std::exchange(last_error, cudaSuccess); }

namespace {
bool no_device() {
  const char* s = std::getenv("SPECDEC_CUDA_EMULATION_DEVICES");
  return s != nullptr && std::atoi(s) == 0;
}
}  // namespace

cudaError_t cudaGetDeviceCount(int* n) {
  if (n == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount(nullptr)");
  if (no_device()) {
    *n = 0;
    return fail(cudaErrorNoDevice, "SPECDEC_CUDA_EMULATION_DEVICES=0");
  }
  *n = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (no_device() || device != 0) return fail(cudaErrorInvalidDevice, "device " + std::to_string(device));
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return fail(cudaErrorInvalidValue, "cudaGetDeviceProperties(nullptr)");
  if (device != 0) return fail(cudaErrorInvalidDevice, "device " + std::to_string(device));
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "specdec CUDA emulator (CPU)");
  prop->totalGlobalMem = device_capacity();
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  if (free_bytes == nullptr || total_bytes == nullptr) return fail(cudaErrorInvalidValue, "cudaMemGetInfo(nullptr)");
  *total_bytes = device_capacity();
  *free_bytes = device_capacity() - std::min(device_in_use, device_capacity());
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  if (p == nullptr) return fail(cudaErrorInvalidValue, "cudaMalloc(nullptr)");
  if (bytes > device_capacity() - std::min(device_in_use, device_capacity())) {
    return fail(cudaErrorMemoryAllocation, "cudaMalloc of " + std::to_string(bytes) + " bytes");
  }
  *p = allocate(bytes, true);
  if (*p == nullptr) return fail(cudaErrorMemoryAllocation, "host memory for " + std::to_string(bytes) + " bytes");
  device_in_use += bytes;
  return cudaSuccess;
}

namespace {
cudaError_t release(void* p, bool device, const char* call) {
  if (p == nullptr) return cudaSuccess;
  const auto it = allocations.find(reinterpret_cast<std::uintptr_t>(p));
  if (it == allocations.end() || it->second.device != device) {
    return fail(cudaErrorInvalidValue, std::string(call) + " of a pointer it did not allocate");
  }
  const cudaError_t e = guards_intact(it->second)
                            ? cudaSuccess
                            : fail(cudaErrorIllegalAddress, std::string(call) + ": a write outside the " +
                                                                std::to_string(it->second.bytes) + "-byte allocation");
  if (device) device_in_use -= it->second.bytes;
  std::free(it->second.block);
  allocations.erase(it);
  return e;
}
}  // namespace

cudaError_t cudaFree(void* p) { return release(p, true, "cudaFree"); }

cudaError_t cudaHostAlloc(void** p, std::size_t bytes, unsigned /*flags*/) {
  if (p == nullptr) return fail(cudaErrorInvalidValue, "cudaHostAlloc(nullptr)");
  *p = allocate(bytes, false);
  return *p == nullptr ? fail(cudaErrorMemoryAllocation, "cudaHostAlloc") : cudaSuccess;
}

cudaError_t cudaFreeHost(void* p) { return release(p, false, "cudaFreeHost"); }

cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  const bool dst_dev = is_device(dst, bytes), src_dev = is_device(src, bytes);
  const bool want_dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool want_src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault || kind == cudaMemcpyHostToHost) {
    return fail(cudaErrorInvalidValue, "cudaMemcpy kind " + std::to_string(kind) + " is not emulated");
  }
  if (dst_dev != want_dst_dev || src_dev != want_src_dev) {
    return fail(cudaErrorInvalidValue, "cudaMemcpy of " + std::to_string(bytes) + " bytes, kind " + std::to_string(kind) +
                                           ": destination " + (dst_dev ? "is" : "is not") + " within device memory, source " +
                                           (src_dev ? "is" : "is not"));
  }
  std::memmove(dst, src, bytes);
  return check_guards("cudaMemcpy") ? cudaSuccess : cudaErrorIllegalAddress;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (s != nullptr && s->magic != 0x5354) return fail(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: not a stream");
  return cudaMemcpy(dst, src, bytes, kind);
}

cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t s) {
  if (s != nullptr && s->magic != 0x5354) return fail(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: not a stream");
  if (bytes == 0) return cudaSuccess;
  if (!is_device(p, bytes)) return fail(cudaErrorInvalidValue, "cudaMemsetAsync of " + std::to_string(bytes) + " bytes outside device memory");
  std::memset(p, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned /*flags*/) {
  if (s == nullptr) return fail(cudaErrorInvalidValue, "cudaStreamCreateWithFlags(nullptr)");
  *s = new specdec_emu_stream;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (s == nullptr || s->magic != 0x5354) return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: not a stream");
  s->magic = 0;
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s != nullptr && s->magic != 0x5354) return fail(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: not a stream");
  return cudaSuccess;
}

// ---- cuBLAS ---------------------------------------------------------------------------------------

cublasStatus_t cublasCreate(cublasHandle_t* h) {
  if (h == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *h = new specdec_emu_cublas;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h) {
  if (h == nullptr || h->magic != 0x424c) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->magic = 0;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (h == nullptr || h->magic != 0x424c) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t) {
  return h == nullptr || h->magic != 0x424c ? CUBLAS_STATUS_NOT_INITIALIZED : CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t s) { return cublasGetStatusName(s); }

namespace {
float load(const void* base, cudaDataType_t t, std::size_t i) {
  switch (t) {
    case CUDA_R_32F: return static_cast<const float*>(base)[i];
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(base)[i]);
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
  }
  return NAN;
}
std::size_t elem_bytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
}  // namespace

// Column-major C[m, n] = alpha op(A)[m, k] op(B)[k, n] + beta C, fp32 accumulation in k order.
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                            const void* alpha, const void* a, cudaDataType_t at, int lda, const void* b,
                            cudaDataType_t bt, int ldb, const void* beta, void* c, cudaDataType_t ct, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t) {
  if (h == nullptr || h->magic != 0x424c) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0 || ct != CUDA_R_32F || compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max(1, ta == CUBLAS_OP_N ? m : k) || ldb < std::max(1, tb == CUBLAS_OP_N ? k : n) || ldc < std::max(1, m)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const std::size_t a_elems = static_cast<std::size_t>(lda) * static_cast<std::size_t>((ta == CUBLAS_OP_N ? k : m) - 1) +
                              static_cast<std::size_t>(ta == CUBLAS_OP_N ? m : k);
  const std::size_t b_elems = static_cast<std::size_t>(ldb) * static_cast<std::size_t>((tb == CUBLAS_OP_N ? n : k) - 1) +
                              static_cast<std::size_t>(tb == CUBLAS_OP_N ? k : n);
  const std::size_t c_elems = static_cast<std::size_t>(ldc) * static_cast<std::size_t>(n - 1) + static_cast<std::size_t>(m);
  if ((k > 0 && (!is_device(a, a_elems * elem_bytes(at)) || !is_device(b, b_elems * elem_bytes(bt)))) ||
      !is_device(c, c_elems * 4)) {
    fail(cudaErrorIllegalAddress, "cublasGemmEx: an operand outside device memory");
    return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  auto* cf = static_cast<float*>(c);
  for (int j = 0; j < n; ++j) {
    for (int i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int p = 0; p < k; ++p) {
        const std::size_t ai = ta == CUBLAS_OP_N ? static_cast<std::size_t>(p) * lda + i : static_cast<std::size_t>(i) * lda + p;
        const std::size_t bi = tb == CUBLAS_OP_N ? static_cast<std::size_t>(j) * ldb + p : static_cast<std::size_t>(p) * ldb + j;
        acc = std::fma(load(a, at, ai), load(b, bt, bi), acc);
      }
      float& out = cf[static_cast<std::size_t>(j) * ldc + i];
      out = be == 0.0f ? al * acc : al * acc + be * out;
    }
  }
  return check_guards("cublasGemmEx") ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}
