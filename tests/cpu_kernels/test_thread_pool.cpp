// thread_pool: every task runs exactly once, ranges are contiguous and balanced as documented,
// a pool of one runs inline, and jobs posted after the workers fell asleep still run.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

#include "specdec/backends/cpu/thread_pool.hpp"

using specdec::cpu::thread_pool;

TEST_CASE("thread_pool runs every task exactly once", "[cpu]") {
  for (std::size_t n_threads : {1, 2, 3, 5}) {
    thread_pool pool(n_threads);
    REQUIRE(pool.size() == n_threads);
    for (std::size_t n_tasks : {0, 1, 2, 3, 4, 7, 64, 1001}) {
      std::vector<std::atomic<int>> hits(n_tasks);
      pool.parallel_for(n_tasks, [&](std::size_t i) { hits[i].fetch_add(1); });
      for (std::size_t i = 0; i < n_tasks; ++i) {
        INFO("threads " << n_threads << " tasks " << n_tasks << " task " << i);
        REQUIRE(hits[i].load() == 1);
      }
    }
  }
}

TEST_CASE("thread_pool splits tasks into contiguous balanced ranges", "[cpu]") {
  thread_pool pool(3);
  std::vector<std::pair<std::size_t, std::size_t>> ranges(3, {0, 0});
  std::atomic<int> calls{0};
  pool.parallel_for(11, [&](std::size_t begin, std::size_t end) {
    ranges[begin == 0 ? 0 : (begin == 4 ? 1 : 2)] = {begin, end};
    calls.fetch_add(1);
  });
  REQUIRE(calls.load() == 3);
  CHECK(ranges[0] == std::pair<std::size_t, std::size_t>{0, 4});
  CHECK(ranges[1] == std::pair<std::size_t, std::size_t>{4, 8});
  CHECK(ranges[2] == std::pair<std::size_t, std::size_t>{8, 11});
}

TEST_CASE("thread_pool gives the first range to the caller and runs inline when alone", "[cpu]") {
  const auto caller = std::this_thread::get_id();
  SECTION("pool of one") {
    thread_pool pool(1);
    std::vector<std::thread::id> ids(5);
    pool.parallel_for(5, [&](std::size_t i) { ids[i] = std::this_thread::get_id(); });
    for (const auto& id : ids) CHECK(id == caller);
  }
  SECTION("pool of two") {
    thread_pool pool(2);
    std::vector<std::thread::id> ids(4);
    pool.parallel_for(4, [&](std::size_t i) { ids[i] = std::this_thread::get_id(); });
    CHECK(ids[0] == caller);
    CHECK(ids[1] == caller);
    CHECK(ids[2] != caller);
    CHECK(ids[2] == ids[3]);
  }
}

TEST_CASE("thread_pool survives many back-to-back jobs and wakes sleeping workers", "[cpu]") {
  SECTION("spinning workers") {
    thread_pool pool(2);  // no more threads than a 2-core CI machine has: spinning would stall
    std::atomic<std::size_t> sum{0};
    for (int job = 0; job < 20000; ++job) {
      pool.parallel_for(2, [&](std::size_t i) { sum.fetch_add(i + 1, std::memory_order_relaxed); });
    }
    CHECK(sum.load() == 20000u * 3u);
  }
  SECTION("no spinning: every job wakes sleepers through the condition variable") {
    thread_pool pool(3, std::chrono::microseconds{0});
    std::atomic<std::size_t> sum{0};
    for (int job = 0; job < 2000; ++job) {
      pool.parallel_for(3, [&](std::size_t i) { sum.fetch_add(i + 1, std::memory_order_relaxed); });
      if (job % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    CHECK(sum.load() == 2000u * 6u);
  }
}

TEST_CASE("thread_pool rejects a thread count of zero", "[cpu]") {
  CHECK_THROWS_AS(thread_pool(0), specdec::error);
}
