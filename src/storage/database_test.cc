// Database tests: schema and format version, group commit sharing fsyncs between concurrent
// writers, and one failing writer not affecting the others in its batch.
#include "storage/database.h"

#include <gtest/gtest.h>

#include "os/temp_dir.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace mailark {
namespace {

class DatabaseTest : public ::testing::Test {
 protected:
  TempDir temp_;
  std::string dir_ = temp_.path();
};

TEST_F(DatabaseTest, CreateOpenAndRefuseTwice) {
  {
    auto db = Database::create(posix_fs(), dir_ + "/d1", "d1");
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
  }
  EXPECT_EQ(Database::create(posix_fs(), dir_ + "/d1", "d1").status().code(), ErrorCode::kExists);
  EXPECT_TRUE(Database::open(posix_fs(), dir_ + "/d1", "d1").is_ok());
  EXPECT_EQ(Database::open(posix_fs(), dir_ + "/none", "none").status().code(), ErrorCode::kNotFound);
}

TEST_F(DatabaseTest, GroupCommitSharesCommitsAmongConcurrentWriters) {
  auto db = Database::create(posix_fs(), dir_ + "/d", "d");
  ASSERT_TRUE(db.is_ok());
  constexpr int kThreads = 16, kPerThread = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status s = (*db)->write([&](WriteTx& tx) {
          return tx.journal("test", Guid::derived(std::to_string(t)), Guid::random(), "{}").status();
        });
        if (!s.is_ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  auto stats = (*db)->commit_stats();
  EXPECT_EQ(stats.transactions, uint64_t{kThreads * kPerThread});
  EXPECT_LT(stats.commits, stats.transactions) << "concurrent writers should share commits";
  int64_t count = 0;
  ASSERT_TRUE((*db)->read([&](SqliteDb& sql) {
    auto n = journal::count(sql);
    if (!n.is_ok()) return n.status();
    count = *n;
    return Status::ok();
  }).is_ok());
  EXPECT_EQ(count, kThreads * kPerThread);
}

TEST_F(DatabaseTest, FailingWriterRollsBackOnlyItself) {
  auto db = Database::create(posix_fs(), dir_ + "/d", "d");
  ASSERT_TRUE(db.is_ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, failed{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      Status s = (*db)->write([&](WriteTx& tx) -> Status {
        MK_RETURN_IF_ERROR(tx.journal("test", Guid{}, Guid::random(), "{}").status());
        if (t % 2) return conflict("deliberate");
        return Status::ok();
      });
      (s.is_ok() ? ok : failed)++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(failed, 4);
  int64_t count = 0;
  ASSERT_TRUE((*db)->read([&](SqliteDb& sql) {
    count = journal::count(sql).value();
    return Status::ok();
  }).is_ok());
  EXPECT_EQ(count, 4);
  std::vector<std::string> problems;
  ASSERT_TRUE((*db)->read([&](SqliteDb& sql) {
    return journal::verify_chain(sql, [&](int64_t, const std::string& w) { problems.push_back(w); }).status();
  }).is_ok());
  EXPECT_TRUE(problems.empty());
}

}  // namespace
}  // namespace mailark
