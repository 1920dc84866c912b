// Database tests: schema and format version, group commit sharing fsyncs between concurrent
// writers, one failing (or throwing) writer not affecting the others in its batch, and the
// conversion of an older messages table at open.
#include "storage/database.h"

#include <gtest/gtest.h>

#include "os/temp_dir.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
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
  EXPECT_EQ(Database::open(posix_fs(), dir_ + "/none", "none").status().code(),
            ErrorCode::kNotFound);
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
          return tx.journal("test", Guid::derived(std::to_string(t)), Guid::random(), "{}")
              .status();
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
  ASSERT_TRUE((*db)
                  ->read([&](SqliteDb& sql) {
                    auto n = journal::count(sql);
                    if (!n.is_ok()) return n.status();
                    count = *n;
                    return Status::ok();
                  })
                  .is_ok());
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
        // A closure that throws fails like one that returns an error (on the committer
        // thread it used to end the process).
        if (t == 3) throw std::runtime_error("deliberate");
        if (t % 2) return conflict("deliberate");
        return Status::ok();
      });
      (s.is_ok() ? ok : failed)++;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, 4);
  EXPECT_EQ(failed, 4);
  // The committer goes on after a failed closure.
  EXPECT_TRUE((*db)
                  ->write([&](WriteTx& tx) {
                    return tx.journal("test", Guid{}, Guid::random(), "{}").status();
                  })
                  .is_ok());
  int64_t count = 0;
  ASSERT_TRUE((*db)
                  ->read([&](SqliteDb& sql) {
                    count = journal::count(sql).value();
                    return Status::ok();
                  })
                  .is_ok());
  EXPECT_EQ(count, 5);
  std::vector<std::string> problems;
  ASSERT_TRUE((*db)
                  ->read([&](SqliteDb& sql) {
                    return journal::verify_chain(
                               sql, [&](int64_t, const std::string& w) { problems.push_back(w); })
                        .status();
                  })
                  .is_ok());
  EXPECT_TRUE(problems.empty());
}

// Databases written before `messages` became an ordinary table are converted at open: same
// rows, foreign keys still enforced afterwards. (Such a database also predates the copied
// resource columns, whose filling reads messages' rowids: the conversion comes first.)
TEST_F(DatabaseTest, OpenConvertsAWithoutRowidMessagesTable) {
  const std::string dir = dir_ + "/old";
  ASSERT_TRUE(Database::create(posix_fs(), dir, "old").is_ok());
  {
    auto sql = SqliteDb::open(dir + "/meta.sqlite", false);
    ASSERT_TRUE(sql.is_ok());
    ASSERT_TRUE((*sql)
                    ->exec(R"sql(
PRAGMA foreign_keys=OFF;
DROP TABLE messages;
CREATE TABLE messages(blob BLOB PRIMARY KEY, size INTEGER NOT NULL,
  stored_size INTEGER NOT NULL, refs INTEGER NOT NULL, info BLOB NOT NULL,
  data BLOB) WITHOUT ROWID;
INSERT INTO messages VALUES (x'01', 5, 5, 1, x'aa', x'0102'), (x'02', 7, 3, 0, x'bb', NULL);
DROP INDEX dav_by_name_all;
ALTER TABLE dav_resources DROP COLUMN message_row;
)sql")
                    .is_ok());
  }
  auto db = Database::open(posix_fs(), dir, "old");
  ASSERT_TRUE(db.is_ok()) << db.status().to_string();
  std::string schema;
  std::vector<std::string> rows;
  ASSERT_TRUE((*db)
                  ->read([&](SqliteDb& sql) -> Status {
                    MK_ASSIGN_OR_RETURN(
                        auto st,
                        sql.prepare("SELECT sql FROM sqlite_master WHERE name='messages'"));
                    MK_ASSIGN_OR_RETURN(bool row, st.step());
                    if (row) schema = st.column_text(0);
                    MK_ASSIGN_OR_RETURN(
                        auto all, sql.prepare("SELECT hex(blob) || size || stored_size || refs"
                                              " || hex(info) || iif(data IS NULL, '-', hex(data))"
                                              " FROM messages ORDER BY blob"));
                    while (true) {
                      MK_ASSIGN_OR_RETURN(bool more, all.step());
                      if (!more) break;
                      rows.push_back(all.column_text(0));
                    }
                    return Status::ok();
                  })
                  .is_ok());
  EXPECT_EQ(schema.find("WITHOUT ROWID"), std::string::npos) << schema;
  EXPECT_EQ(rows, (std::vector<std::string>{"01551AA0102", "02730BB-"}));
  // items.blob still has to name a messages row.
  Status orphan = (*db)->write([](WriteTx& tx) {
    return tx.db().exec(
        "INSERT INTO items(folder_id, uid, guid, blob, size, internal_date_ms,"
        " modseq, saved_ms) VALUES (1, 1, x'00', x'09', 1, 0, 1, 0)");
  });
  EXPECT_FALSE(orphan.is_ok());
  // Opening again finds nothing to convert.
  db->reset();
  EXPECT_TRUE(Database::open(posix_fs(), dir, "old").is_ok());
}

}  // namespace
}  // namespace mailark
