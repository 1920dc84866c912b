// Journal tests: the chain links every record, and each kind of tampering is named.
#include "storage/journal.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "storage/sqlite.h"

namespace mailark {
namespace {

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mk-journal-XXXXXX";
    dir_ = mkdtemp(tmpl);
    db_ = std::move(SqliteDb::open(dir_ + "/j.sqlite", true).value());
    ASSERT_TRUE(journal::create_schema(*db_).is_ok());
    for (int i = 0; i < 10; ++i) {
      JournalRecord r;
      r.time_ms = 1000 + i;
      r.op = "deliver";
      r.account = Guid::derived("acct");
      r.item = Guid::derived(std::to_string(i));
      r.payload = "{\"uid\":" + std::to_string(i + 1) + "}";
      auto appended = journal::append(*db_, r);
      ASSERT_TRUE(appended.is_ok());
      EXPECT_EQ(appended->seq, i + 1);
    }
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::vector<std::pair<int64_t, std::string>> verify() {
    std::vector<std::pair<int64_t, std::string>> problems;
    auto n = journal::verify_chain(*db_, [&](int64_t seq, const std::string& what) {
      problems.emplace_back(seq, what);
    });
    EXPECT_TRUE(n.is_ok());
    return problems;
  }
  std::string dir_;
  std::unique_ptr<SqliteDb> db_;
};

TEST_F(JournalTest, IntactChainVerifies) {
  EXPECT_TRUE(verify().empty());
  EXPECT_EQ(*journal::last_seq(*db_), 10);
  auto recs = journal::read(*db_, 3, 4);
  ASSERT_TRUE(recs.is_ok());
  ASSERT_EQ(recs->size(), 4u);
  EXPECT_EQ(recs->front().seq, 4);
  EXPECT_EQ((*recs)[1].prev_hash, (*recs)[0].hash);
}

TEST_F(JournalTest, EditedPayloadIsNamed) {
  ASSERT_TRUE(db_->exec("UPDATE journal SET payload='{\"uid\":99}' WHERE seq=5").is_ok());
  auto p = verify();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].first, 5);
  EXPECT_NE(p[0].second.find("does not match"), std::string::npos);
}

TEST_F(JournalTest, BrokenLinkIsNamed) {
  ASSERT_TRUE(db_->exec("UPDATE journal SET prev_hash=zeroblob(32) WHERE seq=7").is_ok());
  auto p = verify();
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p[0].first, 7);
  EXPECT_NE(p[0].second.find("broken chain"), std::string::npos);
}

TEST_F(JournalTest, MissingRecordIsAGap) {
  ASSERT_TRUE(db_->exec("DELETE FROM journal WHERE seq=4").is_ok());
  auto p = verify();
  ASSERT_FALSE(p.empty());
  EXPECT_EQ(p[0].first, 5);
  EXPECT_NE(p[0].second.find("gap"), std::string::npos);
}

TEST_F(JournalTest, HashCoversEveryField) {
  auto recs = journal::read(*db_, 0, 1);
  ASSERT_TRUE(recs.is_ok());
  JournalRecord r = recs->front();
  Digest base = journal::compute_hash(r);
  JournalRecord m = r;
  m.time_ms += 1;
  EXPECT_NE(journal::compute_hash(m), base);
  m = r;
  m.op = "append";
  EXPECT_NE(journal::compute_hash(m), base);
  m = r;
  m.item = Guid{};
  EXPECT_NE(journal::compute_hash(m), base);
  m = r;
  m.account = Guid{};
  EXPECT_NE(journal::compute_hash(m), base);
}

}  // namespace
}  // namespace mailark
