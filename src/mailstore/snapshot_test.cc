// Snapshot and replay tests: replaying a database's journal from nothing gives exactly the
// state read from the database, at every point in time; a database built from a state reads
// back equal; restore_item keeps GUIDs and never duplicates.
#include "mailstore/snapshot.h"

#include <gtest/gtest.h>

#include <deque>

#include "mailstore/check.h"
#include "os/temp_dir.h"
#include "storage/database.h"

namespace mailark {
namespace {

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<MailStore>(posix_fs(), dir_.path());
    ASSERT_TRUE(store_->create_database("db1").is_ok());
    alice_ = store_->create_account("db1", Guid::random(), "alice@acme.test").value();
    bob_ = store_->create_account("db1", Guid::random(), "bob@acme.test").value();
  }
  MessageInput msg(const std::string& subject, size_t body_size = 40) {
    raws_.push_back("Subject: " + subject + "\r\nFrom: x@y.test\r\n\r\n" +
                    std::string(body_size, 'b') + "\r\n");
    MessageInput in;
    in.raw = raws_.back();
    return in;
  }
  DatabaseState read_state(const std::string& db = "db1") {
    DatabaseState out;
    Status s = store_->read_snapshot(db, [&](DatabaseSnapshot& snap) -> Status {
      MK_ASSIGN_OR_RETURN(out, snap.state());
      return Status::ok();
    });
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return out;
  }
  std::vector<JournalRecord> read_journal() {
    std::vector<JournalRecord> out;
    EXPECT_TRUE(store_
                    ->read_snapshot("db1",
                                    [&](DatabaseSnapshot& snap) -> Status {
                                      MK_ASSIGN_OR_RETURN(out, snap.journal(0, 1 << 30));
                                      return Status::ok();
                                    })
                    .is_ok());
    return out;
  }
  // A history that uses every journalled operation.
  void mutate(std::vector<DatabaseState>* checkpoints) {
    auto point = [&] { checkpoints->push_back(read_state()); };
    point();
    for (int i = 0; i < 5; ++i)
      ASSERT_TRUE(store_->deliver(alice_, msg("m" + std::to_string(i)), Guid::random()).is_ok());
    ASSERT_TRUE(store_->append(alice_, "Sent", msg("sent", 70000)).is_ok());  // a blob file
    point();
    ASSERT_TRUE(store_->create_folder(alice_, "Projects/2026").is_ok());
    ASSERT_TRUE(store_->copy(alice_, "INBOX", {1, 2}, "Projects/2026").is_ok());
    ASSERT_TRUE(store_->move(alice_, "INBOX", {3, 4}, "Archive").is_ok());
    ASSERT_TRUE(store_->move(alice_, "Archive", {1}, "Archive").is_ok());  // same folder
    ASSERT_TRUE(
        store_->store_flags(alice_, "INBOX", {1, 5}, FlagOp::kAdd, {"\\Seen", "$Work"}).is_ok());
    ASSERT_TRUE(store_->store_flags(alice_, "INBOX", {5}, FlagOp::kAdd, {"\\Deleted"}).is_ok());
    point();
    ASSERT_TRUE(store_->expunge(alice_, "INBOX", std::nullopt).is_ok());
    ASSERT_TRUE(store_->rename_folder(alice_, "Projects", "Work").is_ok());
    ASSERT_TRUE(store_->set_subscribed(alice_, "Work/2026", false).is_ok());
    ASSERT_TRUE(store_->rename_folder(alice_, "INBOX", "Old Inbox").is_ok());
    point();
    ASSERT_TRUE(store_->deliver(bob_, msg("for bob"), Guid::random()).is_ok());
    ASSERT_TRUE(store_->delete_folder(alice_, "Work").is_ok());
    ASSERT_TRUE(store_->delete_folder(alice_, "Work/2026").is_ok());
    point();
    // Calendars and address books: collections, properties, puts, replacements, deletes.
    ASSERT_TRUE(store_->ensure_default_collections(bob_).is_ok());
    auto cal = store_->collection(bob_, CollectionKind::kCalendar, kDefaultCollection).value();
    ASSERT_TRUE(put(bob_, cal, "a.ics", event("a", "20261201T090000Z")).is_ok());
    ASSERT_TRUE(put(bob_, cal, "b.ics", event("b", "20261202T090000Z")).is_ok());
    ASSERT_TRUE(put(bob_, cal, "a.ics", event("a", "20261203T090000Z")).is_ok());  // a change
    ASSERT_TRUE(store_->delete_resource(bob_, cal, "b.ics").is_ok());
    ASSERT_TRUE(
        store_->update_collection_props(bob_, cal, {{"{DAV:}displayname", "Work"}}).is_ok());
    auto book = store_->collection(bob_, CollectionKind::kContacts, kDefaultCollection).value();
    ASSERT_TRUE(put(bob_, book, "c.vcf", card("c", "Carol")).is_ok());
    auto team = store_->create_collection(bob_, CollectionKind::kCalendar, "team", {}, {"VTODO"});
    ASSERT_TRUE(team.is_ok());
    point();
    ASSERT_TRUE(store_->delete_collection(bob_, *team).is_ok());
    auto carol = store_->create_account("db1", Guid::random(), "carol@acme.test").value();
    ASSERT_TRUE(store_->deliver(carol, msg("c"), Guid::random()).is_ok());
    ASSERT_TRUE(store_->delete_account(carol).is_ok());
    point();
  }

  static std::string event(const std::string& uid, const std::string& start) {
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:" + uid +
           "\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:" + start +
           "\r\nDURATION:PT1H\r\nSUMMARY:Meeting " + uid + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
  }
  static std::string card(const std::string& uid, const std::string& name) {
    return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:" + uid + "\r\nFN:" + name + "\r\nN:" + name +
           ";;;;\r\nEMAIL:" + uid + "@acme.test\r\nEND:VCARD\r\n";
  }
  Result<DavPutResult> put(const Account& a, const DavCollection& c, const std::string& name,
                           const std::string& body) {
    raws_.push_back(body);
    DavPut p;
    p.body = raws_.back();
    auto r = store_->put_resource(a, c, name, p);
    if (r.is_ok() && r->outcome != DavPutResult::Outcome::kCreated &&
        r->outcome != DavPutResult::Outcome::kReplaced)
      return invalid("put refused: " + r->reason);
    return r;
  }

  TempDir dir_;
  std::unique_ptr<MailStore> store_;
  Account alice_, bob_;
  std::deque<std::string> raws_;
};

TEST_F(SnapshotTest, ReplayingTheJournalGivesTheStateAtEveryPoint) {
  std::vector<DatabaseState> checkpoints;
  mutate(&checkpoints);
  ASSERT_FALSE(HasFailure());
  auto journal = read_journal();
  ASSERT_EQ(journal.size(), static_cast<size_t>(checkpoints.back().seq));
  DatabaseState replayed;
  size_t next = 0;
  for (const auto& r : journal) {
    while (next < checkpoints.size() && checkpoints[next].seq == replayed.seq) {
      EXPECT_EQ(first_difference(checkpoints[next], replayed), "") << "at seq " << replayed.seq;
      ++next;
    }
    Status s = replay_record(replayed, r);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }
  EXPECT_EQ(first_difference(checkpoints.back(), replayed), "");
  EXPECT_TRUE(checkpoints.back() == replayed);
}

TEST_F(SnapshotTest, ReplayOfOneAccountIgnoresTheOthers) {
  std::vector<DatabaseState> checkpoints;
  mutate(&checkpoints);
  DatabaseState replayed;
  for (const auto& r : read_journal()) ASSERT_TRUE(replay_record(replayed, r, bob_.guid).is_ok());
  ASSERT_EQ(replayed.accounts.size(), 1u);
  EXPECT_TRUE(replayed.accounts.at(bob_.guid) == checkpoints.back().accounts.at(bob_.guid));
}

TEST_F(SnapshotTest, ReplayRejectsBrokenChainsAndRecordsThatDoNotFit) {
  std::vector<DatabaseState> checkpoints;
  mutate(&checkpoints);
  auto journal = read_journal();
  DatabaseState state;
  ASSERT_TRUE(replay_record(state, journal[0]).is_ok());
  EXPECT_EQ(replay_record(state, journal[2]).code(), ErrorCode::kCorrupt);  // a gap
  JournalRecord tampered = journal[1];
  tampered.payload[tampered.payload.size() / 2] ^= 1;
  EXPECT_EQ(replay_record(state, tampered).code(), ErrorCode::kCorrupt);
  // A record replayed on a state it does not belong to names itself.
  DatabaseState empty;
  JournalRecord deliver;
  for (const auto& r : journal)
    if (r.op == "deliver") deliver = r;
  empty.seq = deliver.seq - 1;
  empty.head = deliver.prev_hash;
  Status s = replay_record(empty, deliver);
  EXPECT_EQ(s.code(), ErrorCode::kCorrupt);
  EXPECT_NE(s.message().find("journal record " + std::to_string(deliver.seq)), std::string::npos);
}

TEST_F(SnapshotTest, BuiltDatabaseReadsBackEqual) {
  std::vector<DatabaseState> checkpoints;
  mutate(&checkpoints);
  DatabaseState state = read_state();
  auto journal = read_journal();
  std::map<Digest, std::string> bodies;
  ASSERT_TRUE(store_
                  ->read_snapshot("db1",
                                  [&](DatabaseSnapshot& snap) -> Status {
                                    for (const auto& [g, a] : state.accounts)
                                      for (const auto& [fg, f] : a.folders)
                                        for (const auto& [uid, it] : f.items) {
                                          MK_ASSIGN_OR_RETURN(bodies[it.blob],
                                                              snap.message(it.blob));
                                        }
                                    return Status::ok();
                                  })
                  .is_ok());
  uint64_t last_done = 0;
  Status s = store_->build_database(
      "copy", state, journal, "db1@" + std::to_string(state.seq),
      [&](const Digest& d) -> Result<std::string> { return bodies.at(d); },
      [&](uint64_t done, uint64_t) { last_done = done; });
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(last_done,
            state.accounts.at(alice_.guid).items() + state.accounts.at(bob_.guid).items());
  EXPECT_EQ(first_difference(state, read_state("copy")), "");
  EXPECT_EQ(store_->build_database("copy", state, journal, "", nullptr).code(), ErrorCode::kExists);
  // Its derived records are whole: every message has its header fields record.
  const CheckReport report = check_database(store_->database_dir("copy"), "copy");
  EXPECT_TRUE(report.ok()) << (report.problems.empty() ? "" : report.problems[0].what);
  for (const auto& note : report.notes)
    EXPECT_EQ(note.what.find("have no record"), std::string::npos);
  // The copy works as a live database: a new change continues its journal.
  auto alice_copy = store_->account("copy", "alice@acme.test").value();
  ASSERT_TRUE(store_->append(alice_copy, "Sent", msg("after")).is_ok());
  EXPECT_EQ(read_state("copy").seq, state.seq + 1);
}

TEST_F(SnapshotTest, CorruptMessageIsNamed) {
  ASSERT_TRUE(store_->deliver(alice_, msg("x"), Guid::random()).is_ok());
  DatabaseState state = read_state();
  Digest blob = state.accounts.at(alice_.guid).folder_named("INBOX")->items.begin()->second.blob;
  ASSERT_TRUE(alice_.db
                  ->write([&](WriteTx& tx) -> Status {
                    MK_ASSIGN_OR_RETURN(auto st,
                                        tx.db().prepare("UPDATE messages SET data=? WHERE blob=?"));
                    st.bind_blob(1, BlobStore::encode("Subject: forged\r\n\r\n"))
                        .bind_blob(2, as_bytes(blob));
                    return st.run();
                  })
                  .is_ok());
  Status s = store_->read_snapshot(
      "db1", [&](DatabaseSnapshot& snap) -> Status { return snap.message(blob).status(); });
  EXPECT_EQ(s.code(), ErrorCode::kCorrupt);
  EXPECT_NE(s.message().find(to_hex(blob)), std::string::npos);
}

TEST_F(SnapshotTest, RestoreItemKeepsGuidAndSkipsDuplicates) {
  ASSERT_TRUE(store_->deliver(alice_, msg("keep"), Guid::random()).is_ok());
  DatabaseState before = read_state();
  ItemState item = before.accounts.at(alice_.guid).folder_named("INBOX")->items.at(1);
  ASSERT_TRUE(store_->store_flags(alice_, "INBOX", {1}, FlagOp::kAdd, {"\\Deleted"}).is_ok());
  ASSERT_TRUE(store_->expunge(alice_, "INBOX", std::nullopt).is_ok());
  auto saved = store_->restore_item(alice_, "INBOX", item, raws_.back());
  ASSERT_TRUE(saved.is_ok()) << saved.status().to_string();
  EXPECT_FALSE(saved->duplicate);
  EXPECT_EQ(saved->uid, 2u);  // clients saw UID 1 go: it comes back as a new UID
  EXPECT_EQ(saved->guid, item.guid);
  auto again = store_->restore_item(alice_, "INBOX", item, raws_.back());
  ASSERT_TRUE(again.is_ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(store_->item_guids(alice_).value().count(item.guid), 1u);
  EXPECT_EQ(store_->restore_item(alice_, "INBOX", item, "other bytes").status().code(),
            ErrorCode::kCorrupt);
  // The restore is journalled and replays.
  DatabaseState replayed;
  for (const auto& r : read_journal()) ASSERT_TRUE(replay_record(replayed, r).is_ok());
  EXPECT_EQ(first_difference(read_state(), replayed), "");
}

// A batch large enough for the index pages to be read ahead on several threads: half the
// bodies are referred to (the database holds them), half come as bytes; a second run finds
// every GUID present. Reference counts and the rest are what check verifies.
TEST_F(SnapshotTest, RestoreItemsInOneBatchByReferenceAndByBytes) {
  constexpr int kItems = 300;
  for (int i = 0; i < kItems; ++i)
    ASSERT_TRUE(store_->deliver(alice_, msg("m" + std::to_string(i)), Guid::random()).is_ok());
  DatabaseState before = read_state();
  const FolderState* inbox = before.accounts.at(alice_.guid).folder_named("INBOX");
  ASSERT_EQ(inbox->items.size(), static_cast<size_t>(kItems));
  std::vector<uint32_t> all;
  for (const auto& [uid, item] : inbox->items) all.push_back(uid);
  ASSERT_TRUE(store_->store_flags(alice_, "INBOX", all, FlagOp::kAdd, {"\\Deleted"}).is_ok());
  ASSERT_TRUE(store_->expunge(alice_, "INBOX", std::nullopt).is_ok());
  std::map<Digest, uint64_t> wanted;
  for (const auto& [uid, item] : inbox->items) wanted[item.blob] = item.size;
  auto held = store_->held_messages(alice_, wanted);
  ASSERT_TRUE(held.is_ok()) << held.status().to_string();
  EXPECT_EQ(held->size(), wanted.size());  // expunged, not collected
  std::vector<MailStore::RestoredItem> items;
  int n = 0;
  for (const auto& [uid, item] : inbox->items) {
    if (n++ % 2)
      items.push_back({&item, {}, true});
    else
      items.push_back({&item, raws_[uid - 1], false});
  }
  for (int run = 0; run < 2; ++run) {
    auto saved = store_->restore_items(alice_, "INBOX", items);
    ASSERT_TRUE(saved.is_ok()) << saved.status().to_string();
    ASSERT_EQ(saved->size(), items.size());
    for (const auto& s : *saved) EXPECT_EQ(s.duplicate, run == 1);
  }
  EXPECT_EQ(store_->item_guids(alice_).value().size(), static_cast<size_t>(kItems));
  const CheckReport report = check_database(store_->database_dir("db1"), "db1");
  EXPECT_TRUE(report.ok()) << report.problems.front().location << ": "
                           << report.problems.front().what;
}

}  // namespace
}  // namespace mailark
