// specdec::cpu::thread_pool: a fixed set of threads for the CPU backend's data-parallel loops.
// A forward pass calls it ~7 times per layer, so dispatch must cost microseconds: workers spin on a
// generation counter for a short while after each job and only then sleep on a condition variable.
// The caller owns the pool (no global state) and takes part in every job as thread 0; a pool of
// size 1 has no worker threads and runs every job inline.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "specdec/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace specdec::cpu {

class thread_pool {
 public:
  // How long an idle thread keeps polling for the next job before it sleeps. Polling makes
  // back-to-back jobs cheap; sleeping returns the core to other processes between forwards.
  static constexpr std::chrono::microseconds default_spin{200};

  // n_threads counts the caller: n_threads - 1 worker threads are started. Throws
  // specdec::error (invalid_argument) for 0 and for counts beyond 1024.
  explicit thread_pool(std::size_t n_threads,
                       std::chrono::microseconds spin = default_spin)
      : n_threads_(n_threads), spin_(spin) {
    if (n_threads == 0 || n_threads > 1024) {
      throw error(error_category::invalid_argument,
                  "thread_pool: thread count must be in [1, 1024], got " + std::to_string(n_threads));
    }
    workers_.reserve(n_threads - 1);
    try {
      for (std::size_t i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { work(i); });
    } catch (...) {  // std::system_error from std::thread: stop the workers already started
      stop_workers();
      throw;
    }
  }

  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  ~thread_pool() { stop_workers(); }

  // Threads taking part in each job, the caller included.
  [[nodiscard]] std::size_t size() const noexcept { return n_threads_; }

  // Runs tasks [0, n_tasks) split into size() contiguous ranges of near-equal length (the first
  // n_tasks % size() ranges one longer); thread 0, the caller, takes the first range. fn is called
  // either once per non-empty range as fn(begin, end) or, if it takes one index, as fn(task) for
  // every task. Returns when all tasks are done. fn must not throw. Not reentrant: one job at a
  // time, never from inside fn.
  template <class F>
    requires std::invocable<F&, std::size_t, std::size_t> || std::invocable<F&, std::size_t>
  void parallel_for(std::size_t n_tasks, F&& fn) {
    if (n_tasks == 0) return;
    using fn_type = std::remove_reference_t<F>;
    void* fn_ptr = const_cast<void*>(static_cast<const void*>(std::addressof(fn)));
    if (n_threads_ == 1 || n_tasks == 1) {
      call_range<fn_type>(fn_ptr, 0, n_tasks);
      return;
    }
    job_ = job{&call_range<fn_type>, fn_ptr, n_tasks};
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes job_ and pending_
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard lock(mutex_); }  // a sleeper is either before its check or in wait
      wake_cv_.notify_all();
    }
    run_share(0);
    wait_for_workers();
  }

 private:
  struct job {
    void (*invoke)(void* fn, std::size_t begin, std::size_t end) = nullptr;
    void* fn = nullptr;
    std::size_t n_tasks = 0;
  };

  void stop_workers() noexcept {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_seq_cst);
    }
    wake_cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }

  template <class F>
  static void call_range(void* fn, std::size_t begin, std::size_t end) {
    F& f = *static_cast<F*>(fn);  // F may be const-qualified
    if constexpr (std::invocable<F&, std::size_t, std::size_t>) {
      f(begin, end);
    } else {
      for (std::size_t i = begin; i < end; ++i) f(i);
    }
  }

  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  // Polls pred for about spin_ (the clock is read every 64 polls); true if pred became true.
  template <class Pred>
  bool spin_until(Pred pred) const noexcept {
    const auto deadline = std::chrono::steady_clock::now() + spin_;
    for (std::uint32_t i = 1;; ++i) {
      if (pred()) return true;
      pause();
      if (i % 64 == 0 && std::chrono::steady_clock::now() >= deadline) return pred();
    }
  }

  void run_share(std::size_t thread) noexcept {
    const job j = job_;
    const std::size_t base = j.n_tasks / n_threads_;
    const std::size_t extra = j.n_tasks % n_threads_;
    const std::size_t begin = thread * base + std::min(thread, extra);
    const std::size_t end = begin + base + (thread < extra ? 1 : 0);
    if (begin < end) j.invoke(j.fn, begin, end);
  }

  void wait_for_workers() {
    const auto done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
    if (spin_until(done)) return;
    std::unique_lock lock(mutex_);
    caller_sleeping_ = true;
    done_cv_.wait(lock, done);
    caller_sleeping_ = false;
  }

  void work(std::size_t thread) {
    std::uint64_t seen = 0;
    for (;;) {
      const auto posted = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(posted)) {
        std::unique_lock lock(mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_cv_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;  // written under mutex_ before the last generation bump
      run_share(thread);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(mutex_);
        if (caller_sleeping_) done_cv_.notify_one();
      }
    }
  }

  std::size_t n_threads_;
  std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;
  job job_;
  bool stop_ = false;           // guarded by mutex_; read by workers after a generation bump
  bool caller_sleeping_ = false;  // guarded by mutex_
  std::mutex mutex_;
  std::condition_variable wake_cv_;
  std::condition_variable done_cv_;
  alignas(64) std::atomic<std::uint64_t> generation_{0};
  alignas(64) std::atomic<std::size_t> pending_{0};
  alignas(64) std::atomic<std::size_t> sleepers_{0};
};

}  // namespace specdec::cpu
