// BlockingPool: results and exceptions reach the awaiting coroutine, the thread that became
// idle last takes the next job, every job runs under contention, and join() runs what was
// posted before it. Listener: a group on one port serves from every thread, and no one
// else can listen there.
#include "net/net.h"

#include <gtest/gtest.h>

#include <boost/asio/read.hpp>

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

// Two listeners of a group, each on its own thread: connections reach both, and a third
// listener (of this process or any other) cannot take the port, with or without sharing.
TEST(Listener, AGroupSharesItsPortAndNoOneElseGetsIt) {
  asio::io_context io_a(1), io_b(1);
  std::atomic<int> served_a{0}, served_b{0};
  auto serve_with = [](std::atomic<int>& count) {
    return [&count](tcp::socket socket) -> awaitable<void> {
      count.fetch_add(1);
      boost::system::error_code ec;
      socket.write_some(asio::buffer("x", 1), ec);
      co_return;
    };
  };
  Listener a(io_a, "test", serve_with(served_a), 100);
  Listener b(io_b, "test", serve_with(served_b), 100);
  ASSERT_TRUE(a.listen("127.0.0.1", 0, Listener::Sharing::kFirst).is_ok());
  ASSERT_TRUE(b.listen("127.0.0.1", a.port(), Listener::Sharing::kJoin).is_ok());
  b.share_connection_limit(a);
  EXPECT_EQ(b.port(), a.port());

  asio::io_context io_c(1);
  Listener alone(io_c, "other", serve_with(served_a), 100);
  Status refused = alone.listen("127.0.0.1", a.port());
  EXPECT_FALSE(refused.is_ok());
  EXPECT_NE(refused.message().find("cannot listen"), std::string::npos) << refused.message();
  Listener first(io_c, "other", serve_with(served_a), 100);
  EXPECT_FALSE(first.listen("127.0.0.1", a.port(), Listener::Sharing::kFirst).is_ok());

  a.start();
  b.start();
  std::thread ta([&] { io_a.run(); });
  std::thread tb([&] { io_b.run(); });
  // The kernel picks a group member by the connection's addresses and ports: 64
  // connections all reaching one of two listeners would be a 1 in 2^63 chance.
  asio::io_context client(1);
  for (int i = 0; i < 64; ++i) {
    tcp::socket s(client);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), a.port()));
    char byte = 0;
    boost::system::error_code ec;
    asio::read(s, asio::buffer(&byte, 1), ec);
    EXPECT_EQ(byte, 'x');
  }
  a.stop();
  b.stop();
  ta.join();
  tb.join();
  EXPECT_EQ(served_a.load() + served_b.load(), 64);
  EXPECT_GT(served_a.load(), 0);
  EXPECT_GT(served_b.load(), 0);
}

}  // namespace
}  // namespace mailark::net
