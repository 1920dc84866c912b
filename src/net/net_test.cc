// BlockingPool: results and exceptions reach the awaiting coroutine, the thread that became
// idle last takes the next job, every job runs under contention, and join() runs what was
// posted before it.
#include "net/net.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>

namespace mailark::net {
namespace {

TEST(BlockingPool, ResultsAndExceptionsReachTheCoroutine) {
  asio::io_context io(1);
  BlockingPool pool(4);
  int sum = 0;
  std::string error;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        for (int i = 0; i < 10; ++i) {
          auto add = [i] { return i; };
          sum += co_await pool.run(add);
        }
        auto fail = []() -> int { throw std::runtime_error("refused"); };
        try {
          co_await pool.run(fail);
        } catch (const std::exception& e) {
          error = e.what();
        }
      },
      asio::detached);
  io.run();
  EXPECT_EQ(sum, 45);
  EXPECT_EQ(error, "refused");
}

// Jobs one at a time, each posted once every thread waits: the thread that finished the
// last job takes the next one. (A FIFO wake-up would go round all eight.)
TEST(BlockingPool, JobsOneAtATimeStayOnOneThread) {
  asio::io_context io(1);
  BlockingPool pool(8);
  std::vector<std::thread::id> threads;
  asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        asio::steady_timer wait(io);
        for (int i = 0; i < 50; ++i) {
          while (pool.idle_threads() < 8) {
            wait.expires_after(std::chrono::microseconds(200));
            co_await wait.async_wait(asio::use_awaitable);
          }
          auto who = [] { return std::this_thread::get_id(); };
          std::thread::id id = co_await pool.run(who);
          threads.push_back(id);
        }
      },
      asio::detached);
  io.run();
  ASSERT_EQ(threads.size(), 50u);
  EXPECT_EQ(std::set<std::thread::id>(threads.begin() + 1, threads.end()).size(), 1u);
  EXPECT_EQ(threads[1], threads[0]);
}

TEST(BlockingPool, EveryJobRunsUnderContention) {
  asio::io_context io(2);
  BlockingPool pool(3);
  std::atomic<int> ran{0};
  int resumed = 0;
  for (int c = 0; c < 40; ++c) {
    asio::co_spawn(
        io,
        [&]() -> awaitable<void> {
          for (int i = 0; i < 25; ++i) {
            auto job = [&ran] { return ran.fetch_add(1) + 1; };
            co_await pool.run(job);
          }
          ++resumed;
        },
        asio::detached);
  }
  io.run();
  EXPECT_EQ(ran.load(), 1000);
  EXPECT_EQ(resumed, 40);
}

TEST(BlockingPool, JoinRunsWhatWasPosted) {
  std::atomic<int> ran{0};
  asio::io_context io(1);
  {
    BlockingPool pool(2);
    for (int c = 0; c < 20; ++c) {
      asio::co_spawn(
          io,
          [&]() -> awaitable<void> {
            auto slow = [&ran] {
              std::this_thread::sleep_for(std::chrono::milliseconds(2));
              return ran.fetch_add(1);
            };
            co_await pool.run(slow);
          },
          asio::detached);
    }
    io.poll();  // every coroutine has posted its job; none has been resumed
    pool.join();
    EXPECT_EQ(ran.load(), 20);
  }
}

}  // namespace
}  // namespace mailark::net
