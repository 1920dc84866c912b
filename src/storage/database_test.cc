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

// Version 1 databases kept reference counts in `messages.refs`; opening one moves them to
// `message_refs` (format version 2), keeping the message rows, their rowids and foreign keys.
// The oldest of them also kept `messages` as a WITHOUT ROWID table, converted on the way
// (such a database also predates the copied resource columns, whose filling reads messages'
// rowids: the conversion comes first).
TEST_F(DatabaseTest, OpenUpgradesAVersion1Database) {
  for (bool without_rowid : {true, false}) {
    SCOPED_TRACE(without_rowid ? "WITHOUT ROWID" : "rowid table");
    const std::string dir = dir_ + (without_rowid ? "/old1" : "/old2");
    ASSERT_TRUE(Database::create(posix_fs(), dir, "old").is_ok());
    {
      auto sql = SqliteDb::open(dir + "/meta.sqlite", false);
      ASSERT_TRUE(sql.is_ok());
      ASSERT_TRUE((*sql)
                      ->exec(std::string(R"sql(
PRAGMA foreign_keys=OFF;
DROP TABLE messages;
DROP TABLE message_refs;
CREATE TABLE messages(blob BLOB PRIMARY KEY, size INTEGER NOT NULL,
  stored_size INTEGER NOT NULL, refs INTEGER NOT NULL, info BLOB NOT NULL,
  data BLOB))sql") + (without_rowid ? " WITHOUT ROWID;" : ";") +
                             R"sql(
INSERT INTO messages VALUES (x'01', 5, 5, 1, x'aa', x'0102'), (x'02', 7, 3, 0, x'bb', NULL);
UPDATE meta SET value='1' WHERE key='format_version';
DROP INDEX dav_by_name_all;
ALTER TABLE dav_resources DROP COLUMN message_row;
)sql")
                      .is_ok());
    }
    auto db = Database::open(posix_fs(), dir, "old");
    ASSERT_TRUE(db.is_ok()) << db.status().to_string();
    std::string schema, version;
    std::vector<std::string> rows;
    auto text = [](SqliteDb& sql, const std::string& query,
                   std::vector<std::string>& out) -> Status {
      MK_ASSIGN_OR_RETURN(auto st, sql.prepare(query));
      while (true) {
        MK_ASSIGN_OR_RETURN(bool more, st.step());
        if (!more) return Status::ok();
        out.push_back(st.column_text(0));
      }
    };
    ASSERT_TRUE((*db)
                    ->read([&](SqliteDb& sql) -> Status {
                      std::vector<std::string> one;
                      MK_RETURN_IF_ERROR(
                          text(sql, "SELECT sql FROM sqlite_master WHERE name='messages'", one));
                      MK_RETURN_IF_ERROR(
                          text(sql, "SELECT value FROM meta WHERE key='format_version'", one));
                      if (one.size() == 2) schema = one[0], version = one[1];
                      return text(sql,
                                  "SELECT hex(m.blob) || m.size || m.stored_size || r.refs"
                                  " || hex(m.info) || iif(m.data IS NULL, '-', hex(m.data))"
                                  " FROM messages m JOIN message_refs r ON r.blob = m.blob"
                                  " ORDER BY m.blob",
                                  rows);
                    })
                    .is_ok());
    EXPECT_EQ(schema.find("WITHOUT ROWID"), std::string::npos) << schema;
    EXPECT_EQ(schema.find("refs"), std::string::npos) << schema;
    EXPECT_EQ(version, std::to_string(kDatabaseFormatVersion));
    EXPECT_EQ(rows, (std::vector<std::string>{"01551AA0102", "02730BB-"}));
    // items.blob still has to name a messages row.
    Status orphan = (*db)->write([](WriteTx& tx) {
      return tx.db().exec(
          "INSERT INTO items(folder_id, uid, guid, blob, size, internal_date_ms,"
          " modseq, saved_ms) VALUES (1, 1, x'00', x'09', 1, 0, 1, 0)");
    });
    EXPECT_FALSE(orphan.is_ok());
    // Opening again finds nothing to upgrade.
    db->reset();
    EXPECT_TRUE(Database::open(posix_fs(), dir, "old").is_ok());
  }
}

// A database of a later format is refused, not misread.
TEST_F(DatabaseTest, OpenRefusesALaterFormatVersion) {
  const std::string dir = dir_ + "/later";
  ASSERT_TRUE(Database::create(posix_fs(), dir, "later").is_ok());
  {
    auto sql = SqliteDb::open(dir + "/meta.sqlite", false);
    ASSERT_TRUE(sql.is_ok());
    ASSERT_TRUE((*sql)->exec("UPDATE meta SET value='3' WHERE key='format_version'").is_ok());
  }
  auto db = Database::open(posix_fs(), dir, "later");
  ASSERT_FALSE(db.is_ok());
  EXPECT_NE(db.status().message().find("format version 3"), std::string::npos)
      << db.status().to_string();
}

}  // namespace
}  // namespace mailark
