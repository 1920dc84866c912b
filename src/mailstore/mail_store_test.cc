// Mail store tests: the API the IMAP server will call, with its counters (UIDVALIDITY, UID,
// MODSEQ), journal records, quota, exact de-duplication by ingress id, and the checker.
#include "mailstore/mail_store.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "mailstore/check.h"
#include "storage/database.h"
#include "storage/sqlite.h"

namespace mailark {
namespace {

class MailStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mk-store-XXXXXX";
    dir_ = mkdtemp(tmpl);
    store_ = std::make_unique<MailStore>(posix_fs(), dir_);
    ASSERT_TRUE(store_->create_database("db1").is_ok());
    auto a = store_->create_account("db1", Guid::random(), "alice@acme.test");
    ASSERT_TRUE(a.is_ok()) << a.status().to_string();
    alice_ = *a;
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  MessageInput msg(const std::string& raw, std::vector<std::string> flags = {}) {
    raws_.push_back(raw);
    MessageInput in;
    in.raw = raws_.back();
    in.flags = std::move(flags);
    return in;
  }
  std::vector<uint32_t> uids(const std::string& folder) {
    std::vector<uint32_t> out;
    for (const auto& it : store_->fetch(alice_, folder).value()) out.push_back(it.uid);
    return out;
  }
  int64_t journal_length() {
    int64_t n = 0;
    EXPECT_TRUE(alice_.db->read([&](SqliteDb& db) {
      n = journal::count(db).value();
      return Status::ok();
    }).is_ok());
    return n;
  }
  std::string dir_;
  std::unique_ptr<MailStore> store_;
  Account alice_;
  std::deque<std::string> raws_;
};

TEST_F(MailStoreTest, NewAccountHasInboxAndSpecialUseFolders) {
  auto folders = store_->list_folders(alice_);
  ASSERT_TRUE(folders.is_ok());
  std::map<std::string, std::string> got;
  for (const auto& f : *folders) got[f.name] = f.special_use;
  EXPECT_EQ(got.size(), 6u);
  EXPECT_EQ(got["INBOX"], "");
  EXPECT_EQ(got["Sent"], "\\Sent");
  EXPECT_EQ(got["Trash"], "\\Trash");
  EXPECT_EQ(got["Junk"], "\\Junk");
  EXPECT_EQ(got["Drafts"], "\\Drafts");
  EXPECT_EQ(got["Archive"], "\\Archive");
  std::set<uint32_t> validity;
  for (const auto& f : *folders) validity.insert(f.uidvalidity);
  EXPECT_EQ(validity.size(), 6u) << "every folder gets its own UIDVALIDITY";
  EXPECT_EQ(store_->create_account("db1", Guid::random(), "alice@acme.test").status().code(),
            ErrorCode::kExists);
}

TEST_F(MailStoreTest, DeliverIsIdempotentPerIngressId) {
  Guid ingress = Guid::random();
  auto first = store_->deliver(alice_, msg("Subject: a\r\n\r\nx\r\n"), ingress);
  ASSERT_TRUE(first.is_ok());
  EXPECT_EQ(first->uid, 1u);
  EXPECT_FALSE(first->duplicate);
  auto again = store_->deliver(alice_, msg("Subject: a\r\n\r\nx\r\n"), ingress);
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(uids("INBOX"), std::vector<uint32_t>{1});
  EXPECT_TRUE(*store_->has_delivery(alice_, ingress));
  auto items = store_->fetch(alice_, "INBOX").value();
  EXPECT_EQ(items[0].guid, first->guid);
  ASSERT_TRUE(items[0].ingress_id.has_value());
  EXPECT_EQ(*items[0].ingress_id, ingress);
  // Another account gets its own item GUID for the same ingress record.
  auto bob = store_->create_account("db1", Guid::random(), "bob@acme.test").value();
  auto b = store_->deliver(bob, msg("Subject: a\r\n\r\nx\r\n"), ingress);
  ASSERT_TRUE(b.is_ok());
  EXPECT_NE(b->guid, first->guid);
  // Deleting the item does not let a replay bring it back.
  ASSERT_TRUE(store_->store_flags(alice_, "INBOX", {1}, FlagOp::kAdd, {"\\Deleted"}).is_ok());
  ASSERT_TRUE(store_->expunge(alice_, "INBOX", std::nullopt).is_ok());
  EXPECT_TRUE(store_->deliver(alice_, msg("Subject: a\r\n\r\nx\r\n"), ingress)->duplicate);
}

TEST_F(MailStoreTest, BodyIsVerifiedAndParsed) {
  std::string raw = "From: Bob <bob@x.test>\r\nSubject: Hello\r\n\r\nbody\r\n";
  auto saved = store_->append(alice_, "Drafts", msg(raw, {"\\Draft"}));
  ASSERT_TRUE(saved.is_ok());
  auto items = store_->fetch(alice_, "Drafts").value();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].flags, std::vector<std::string>{"\\Draft"});
  EXPECT_EQ(items[0].size, raw.size());
  EXPECT_EQ(*store_->read_message(alice_, items[0].blob), raw);
  auto info = store_->message_info(alice_, items[0].blob);
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->envelope.subject, "Hello");
  // Damage the stored copy (small messages live in the messages table): reads fail as
  // corrupt, never return bad bytes, and check names the blob.
  auto db = SqliteDb::open(dir_ + "/db1/meta.sqlite", false);
  ASSERT_TRUE(db.is_ok());
  ASSERT_TRUE((*db)->exec("UPDATE messages SET data = substr(data, 1, 20) || 'X' || substr(data, 22)").is_ok());
  EXPECT_EQ(store_->read_message(alice_, items[0].blob).status().code(), ErrorCode::kCorrupt);
  CheckReport report = check_database(dir_ + "/db1", "db1");
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_EQ(report.problems[0].location.rfind("blob " + to_hex(items[0].blob), 0), 0u);
}

TEST_F(MailStoreTest, LargeMessagesGetVerifiedFiles) {
  std::string raw = "Subject: big\r\n\r\n";
  for (int i = 0; i < 4000; ++i) raw += "line " + std::to_string(i) + " of a large message\r\n";
  ASSERT_GT(raw.size(), 64u * 1024);
  ASSERT_TRUE(store_->append(alice_, "INBOX", msg(raw)).is_ok());
  auto items = store_->fetch(alice_, "INBOX").value();
  std::string path = alice_.db->blobs().path_of(items[0].blob);
  ASSERT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(*store_->read_message(alice_, items[0].blob), raw);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(100);
  f.put('#');
  f.close();
  EXPECT_EQ(store_->read_message(alice_, items[0].blob).status().code(), ErrorCode::kCorrupt);
  EXPECT_FALSE(check_database(dir_ + "/db1", "db1").ok());
}

TEST_F(MailStoreTest, FlagsModseqAndChangesSince) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->append(alice_, "INBOX", msg("Subject: " + std::to_string(i) + "\r\n\r\n")).is_ok());
  uint64_t before = store_->folder(alice_, "INBOX")->highestmodseq;
  auto ch = store_->store_flags(alice_, "INBOX", {2, 3, 99}, FlagOp::kAdd, {"\\Seen", "$Label1"});
  ASSERT_TRUE(ch.is_ok());
  EXPECT_EQ(ch->changed.size(), 2u);
  uint64_t after = store_->folder(alice_, "INBOX")->highestmodseq;
  EXPECT_GT(after, before);
  auto since = store_->changes_since(alice_, "INBOX", before);
  ASSERT_TRUE(since.is_ok());
  ASSERT_EQ(since->changed.size(), 2u);
  EXPECT_EQ(since->changed[0].uid, 2u);
  EXPECT_EQ(since->changed[0].flags, (std::vector<std::string>{"$Label1", "\\Seen"}));
  // No-op change does not bump MODSEQ.
  auto noop = store_->store_flags(alice_, "INBOX", {2}, FlagOp::kAdd, {"\\seen"});
  EXPECT_TRUE(noop->changed.empty());
  EXPECT_EQ(store_->folder(alice_, "INBOX")->highestmodseq, after);
  // CONDSTORE: an item changed after unchanged_since fails.
  auto cond = store_->store_flags(alice_, "INBOX", {1, 2}, FlagOp::kAdd, {"\\Flagged"}, before);
  ASSERT_TRUE(cond.is_ok());
  EXPECT_EQ(cond->failed_uids, std::vector<uint32_t>{2});
  EXPECT_EQ(cond->changed.size(), 1u);
  auto rm = store_->store_flags(alice_, "INBOX", {1}, FlagOp::kRemove, {"\\FLAGGED"});
  EXPECT_TRUE(rm->changed[0].flags.empty());
  EXPECT_EQ(store_->store_flags(alice_, "INBOX", {1}, FlagOp::kAdd, {"bad flag"}).status().code(),
            ErrorCode::kInvalid);
  // Expunge reports vanished UIDs to changes_since.
  uint64_t mark = store_->folder(alice_, "INBOX")->highestmodseq;
  ASSERT_TRUE(store_->store_flags(alice_, "INBOX", {1, 3}, FlagOp::kAdd, {"\\Deleted"}).is_ok());
  auto gone = store_->expunge(alice_, "INBOX", std::vector<uint32_t>{3});
  EXPECT_EQ(*gone, std::vector<uint32_t>{3});
  auto rest = store_->changes_since(alice_, "INBOX", mark);
  EXPECT_EQ(rest->vanished, std::vector<uint32_t>{3});
  EXPECT_EQ(uids("INBOX"), (std::vector<uint32_t>{1, 2}));
}

TEST_F(MailStoreTest, CopyMoveKeepCountersAndGuids) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->append(alice_, "INBOX", msg("m" + std::to_string(i) + "\r\n")).is_ok());
  auto inbox = store_->fetch(alice_, "INBOX").value();
  auto copied = store_->copy(alice_, "INBOX", {1, 2}, "Archive");
  ASSERT_TRUE(copied.is_ok());
  ASSERT_EQ(copied->items.size(), 2u);
  EXPECT_EQ(copied->items[0].source_uid, 1u);
  EXPECT_EQ(copied->items[0].dest_uid, 1u);
  EXPECT_EQ(copied->dest_uidvalidity, store_->folder(alice_, "Archive")->uidvalidity);
  auto archive = store_->fetch(alice_, "Archive").value();
  EXPECT_NE(archive[0].guid, inbox[0].guid) << "a copy is a new item";
  auto moved = store_->move(alice_, "INBOX", {3}, "Trash");
  ASSERT_TRUE(moved.is_ok());
  auto trash = store_->fetch(alice_, "Trash").value();
  ASSERT_EQ(trash.size(), 1u);
  EXPECT_EQ(trash[0].guid, inbox[2].guid) << "a move keeps the item";
  EXPECT_EQ(uids("INBOX"), (std::vector<uint32_t>{1, 2}));
  // UIDs are never reused: a new message after expunging the highest gets a new UID.
  ASSERT_TRUE(store_->append(alice_, "INBOX", msg("new\r\n")).is_ok());
  EXPECT_EQ(uids("INBOX"), (std::vector<uint32_t>{1, 2, 4}));
  auto usage = store_->usage(alice_).value();
  EXPECT_EQ(usage.items, 6u);
}

TEST_F(MailStoreTest, FolderLifecycle) {
  ASSERT_TRUE(store_->create_folder(alice_, "Projects/2026/Q4").is_ok());
  EXPECT_TRUE(store_->folder(alice_, "Projects").is_ok()) << "parents created";
  EXPECT_EQ(store_->create_folder(alice_, "Projects").status().code(), ErrorCode::kExists);
  EXPECT_EQ(store_->create_folder(alice_, "a//b").status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->create_folder(alice_, "").status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->create_folder(alice_, "inbox").status().code(), ErrorCode::kExists);
  uint32_t old_validity = store_->folder(alice_, "Projects/2026")->uidvalidity;
  ASSERT_TRUE(store_->rename_folder(alice_, "Projects", "Work").is_ok());
  EXPECT_TRUE(store_->folder(alice_, "Work/2026/Q4").is_ok()) << "children follow";
  EXPECT_EQ(store_->folder(alice_, "Work/2026")->uidvalidity, old_validity);
  EXPECT_EQ(store_->rename_folder(alice_, "Work", "Work/x").code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->rename_folder(alice_, "Nope", "X").code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->rename_folder(alice_, "Work", "Sent").code(), ErrorCode::kExists);
  // Renaming INBOX moves its messages and leaves INBOX empty.
  ASSERT_TRUE(store_->append(alice_, "INBOX", msg("a\r\n")).is_ok());
  ASSERT_TRUE(store_->rename_folder(alice_, "INBOX", "Old").is_ok());
  EXPECT_TRUE(uids("INBOX").empty());
  EXPECT_EQ(uids("Old"), std::vector<uint32_t>{1});
  EXPECT_EQ(store_->delete_folder(alice_, "INBOX").code(), ErrorCode::kConflict);
  ASSERT_TRUE(store_->delete_folder(alice_, "Old").is_ok());
  EXPECT_EQ(store_->folder(alice_, "Old").status().code(), ErrorCode::kNotFound);
  // A recreated folder never repeats an earlier UIDVALIDITY.
  uint32_t deleted_validity = 0;
  deleted_validity = store_->folder(alice_, "Work/2026/Q4")->uidvalidity;
  ASSERT_TRUE(store_->delete_folder(alice_, "Work/2026/Q4").is_ok());
  ASSERT_TRUE(store_->create_folder(alice_, "Work/2026/Q4").is_ok());
  EXPECT_GT(store_->folder(alice_, "Work/2026/Q4")->uidvalidity, deleted_validity);
  ASSERT_TRUE(store_->set_subscribed(alice_, "Sent", false).is_ok());
  EXPECT_FALSE(store_->folder(alice_, "Sent")->subscribed);
  EXPECT_EQ(store_->usage(alice_)->items, 0u);
}

TEST_F(MailStoreTest, QuotaIsEnforced) {
  alice_.quota_bytes = 100;
  EXPECT_TRUE(store_->append(alice_, "INBOX", msg(std::string(60, 'a'))).is_ok());
  auto over = store_->deliver(alice_, msg(std::string(60, 'b')), Guid::random());
  EXPECT_EQ(over.status().code(), ErrorCode::kOverQuota);
  EXPECT_EQ(store_->copy(alice_, "INBOX", {1}, "Archive").status().code(), ErrorCode::kOverQuota);
  EXPECT_TRUE(store_->move(alice_, "INBOX", {1}, "Archive").is_ok()) << "a move adds nothing";
  EXPECT_EQ(store_->usage(alice_)->bytes, 60u);
}

TEST_F(MailStoreTest, EveryChangeIsJournalledAndCheckPasses) {
  int64_t start = journal_length();
  ASSERT_TRUE(store_->append(alice_, "INBOX", msg("x\r\n")).is_ok());
  ASSERT_TRUE(store_->store_flags(alice_, "INBOX", {1}, FlagOp::kAdd, {"\\Deleted"}).is_ok());
  ASSERT_TRUE(store_->copy(alice_, "INBOX", {1}, "Archive").is_ok());
  ASSERT_TRUE(store_->expunge(alice_, "INBOX", std::nullopt).is_ok());
  ASSERT_TRUE(store_->create_folder(alice_, "F").is_ok());
  ASSERT_TRUE(store_->rename_folder(alice_, "F", "G").is_ok());
  ASSERT_TRUE(store_->delete_folder(alice_, "G").is_ok());
  EXPECT_EQ(journal_length() - start, 7);
  CheckReport report = check_database(dir_ + "/db1", "db1");
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems[0].what);
  EXPECT_EQ(report.accounts, 1u);
  EXPECT_EQ(report.items, 1u);
}

// The header fields record of each item's message, as scan() gives it.
std::vector<std::string> scanned_subjects(MailStore& store, const Account& account) {
  std::vector<std::string> out;
  Status s = store.scan(account, "INBOX", 1, UINT32_MAX, MailStore::ScanDetail::kHeaderFields,
                        [&](const ItemInfo&, MessageInfo* info, const HeaderFieldValues* fields) {
                          EXPECT_EQ(info, nullptr);
                          EXPECT_NE(fields, nullptr);
                          std::string subjects;
                          for (const auto& [code, text] : fields->fields)
                            if (code == HeaderField::kSubject) subjects += std::string(text) + ";";
                          out.push_back(subjects);
                          return Status::ok();
                        });
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return out;
}

TEST_F(MailStoreTest, HeaderFieldsRecordsAreWrittenMadeForOlderDatabasesAndChecked) {
  for (const char* raw : {"Subject: one\r\n\r\nx\r\n", "Subject: =?utf-8?q?tw=C3=B6?=\r\n\r\ny\r\n",
                          "Subject: three\r\nSubject: again\r\n\r\nz\r\n"})
    ASSERT_TRUE(store_->append(alice_, "INBOX", msg(raw)).is_ok());
  const std::vector<std::string> want = {"one;", "tw\xC3\xB6;", "three;again;"};
  EXPECT_EQ(scanned_subjects(*store_, alice_), want);
  auto sql = [&](const std::string& statement) {
    auto db = SqliteDb::open(dir_ + "/db1/meta.sqlite", false);
    ASSERT_TRUE(db.is_ok());
    ASSERT_TRUE((*db)->exec(statement).is_ok()) << statement;
  };
  auto count = [&](const std::string& query) {
    int64_t n = -1;
    EXPECT_TRUE(alice_.db
                    ->read([&](SqliteDb& db) -> Status {
                      MK_ASSIGN_OR_RETURN(auto st, db.prepare(query));
                      MK_ASSIGN_OR_RETURN(bool row, st.step());
                      if (row) n = st.column_int(0);
                      return Status::ok();
                    })
                    .is_ok());
    return n;
  };
  EXPECT_EQ(count("SELECT COUNT(*) FROM header_fields"), 3);

  // A database from before the table: the records are made when the store opens it.
  store_.reset();
  sql("DELETE FROM header_fields; DELETE FROM meta WHERE key='header_fields_version'");
  store_ = std::make_unique<MailStore>(posix_fs(), dir_);
  alice_ = store_->account("db1", "alice@acme.test").value();
  EXPECT_EQ(count("SELECT COUNT(*) FROM header_fields"), 3);
  EXPECT_EQ(scanned_subjects(*store_, alice_), want);
  EXPECT_TRUE(check_database(dir_ + "/db1", "db1").ok());

  // A missing record (written by an older mailark since) and a damaged one: searches make them
  // from the parse cache; the checker notes the first and reports the second.
  sql("DELETE FROM header_fields WHERE blob=(SELECT blob FROM header_fields LIMIT 1)");
  sql("UPDATE header_fields SET fields=x'01ff' WHERE blob=(SELECT blob FROM header_fields"
      " LIMIT 1)");
  EXPECT_EQ(scanned_subjects(*store_, alice_), want);
  CheckReport damaged = check_database(dir_ + "/db1", "db1");
  ASSERT_EQ(damaged.problems.size(), 1u);
  EXPECT_NE(damaged.problems[0].what.find("header fields record"), std::string::npos);
  bool noted = false;
  for (const auto& n : damaged.notes) noted = noted || n.what.find("1 messages have no") == 0;
  EXPECT_TRUE(noted);

  // A record that decodes but says something else than the header is a problem too.
  sql("DELETE FROM header_fields");
  ASSERT_TRUE(store_->append(alice_, "INBOX", msg("Subject: four\r\n\r\nw\r\n")).is_ok());
  auto db = SqliteDb::open(dir_ + "/db1/meta.sqlite", false);
  ASSERT_TRUE(db.is_ok());
  auto put = (*db)->prepare("UPDATE header_fields SET fields=?");
  ASSERT_TRUE(put.is_ok());
  put->bind_blob(1, encode_header_fields("Subject: five\r\n\r\n"));
  ASSERT_TRUE(put->run().is_ok());
  CheckReport wrong = check_database(dir_ + "/db1", "db1");
  ASSERT_EQ(wrong.problems.size(), 1u);
  EXPECT_NE(wrong.problems[0].what.find("differs from the message's header"), std::string::npos);
}

TEST_F(MailStoreTest, ChangeNotification) {
  std::vector<ChangeEvent> events;
  int id = store_->subscribe([&](const ChangeEvent& e) { events.push_back(e); });
  ASSERT_TRUE(store_->deliver(alice_, msg("x\r\n"), Guid::random()).is_ok());
  store_->unsubscribe(id);
  ASSERT_TRUE(store_->deliver(alice_, msg("y\r\n"), Guid::random()).is_ok());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].account, alice_.guid);
  EXPECT_EQ(events[0].folder, store_->folder(alice_, "INBOX")->guid);
}

TEST_F(MailStoreTest, DeleteAccount) {
  ASSERT_TRUE(store_->append(alice_, "INBOX", msg("x\r\n")).is_ok());
  ASSERT_TRUE(store_->delete_account(alice_).is_ok());
  EXPECT_EQ(store_->account("db1", "alice@acme.test").status().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(check_database(dir_ + "/db1", "db1").ok());
}

}  // namespace
}  // namespace mailark
