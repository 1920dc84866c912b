// Calendars and address books in the store: every put outcome and precondition, versions
// keeping their GUID, sync changes, busy time, the reserved folder names, and restoring a
// resource twice without a duplicate.
#include <gtest/gtest.h>

#include <deque>

#include "mailstore/check.h"
#include "mailstore/mail_store.h"
#include "mailstore/snapshot.h"
#include "os/temp_dir.h"
#include "storage/sqlite.h"

namespace mailark {
namespace {

using Outcome = DavPutResult::Outcome;

std::string event(const std::string& uid, const std::string& start, const std::string& extra = {}) {
  return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:" + uid +
         "\r\nDTSTAMP:20261101T000000Z\r\nDTSTART:" + start + "\r\nDURATION:PT1H\r\n" + extra +
         "SUMMARY:Meeting " + uid + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
}

std::string todo(const std::string& uid) {
  return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\nUID:" + uid +
         "\r\nDTSTAMP:20261101T000000Z\r\nSUMMARY:Do it\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
}

class GroupwareStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<MailStore>(posix_fs(), dir_.path());
    ASSERT_TRUE(store_->create_database("db1").is_ok());
    alice_ = store_->create_account("db1", Guid::random(), "alice@acme.test").value();
    ASSERT_TRUE(store_->ensure_default_collections(alice_).is_ok());
    cal_ = store_->collection(alice_, CollectionKind::kCalendar, kDefaultCollection).value();
    book_ = store_->collection(alice_, CollectionKind::kContacts, kDefaultCollection).value();
  }
  DavPutResult put(const DavCollection& c, const std::string& name, const std::string& body,
                   std::optional<Digest> if_match = {}, bool if_none_match = false) {
    bodies_.push_back(body);
    DavPut p;
    p.body = bodies_.back();
    p.if_match = if_match;
    p.if_none_match = if_none_match;
    p.max_size = 4096;
    auto r = store_->put_resource(alice_, c, name, p);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : DavPutResult{};
  }
  DavCollection reload(const DavCollection& c) {
    return store_->collection(alice_, c.kind, c.segment).value();
  }

  TempDir dir_;
  std::unique_ptr<MailStore> store_;
  Account alice_;
  DavCollection cal_, book_;
  std::deque<std::string> bodies_;
};

TEST_F(GroupwareStoreTest, DefaultCollectionsAreCreatedOnce) {
  ASSERT_TRUE(store_->ensure_default_collections(alice_).is_ok());
  EXPECT_EQ(store_->collections(alice_, CollectionKind::kCalendar).value().size(), 1u);
  EXPECT_EQ(store_->collections(alice_, CollectionKind::kContacts).value().size(), 1u);
  EXPECT_EQ(cal_.props.at("{DAV:}displayname"), "Calendar");
  EXPECT_EQ(cal_.components, (std::vector<std::string>{"VEVENT", "VTODO"}));
  // Not mail: IMAP-side operations refuse the reserved names and the folders.
  EXPECT_EQ(store_->create_folder(alice_, "#calendars/x").status().code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->rename_folder(alice_, "#calendars/default", "Cal").code(), ErrorCode::kInvalid);
  EXPECT_EQ(store_->delete_folder(alice_, "#addressbooks/default").code(), ErrorCode::kInvalid);
  MessageInput in;
  in.raw = "Subject: x\r\n\r\nbody\r\n";
  EXPECT_EQ(store_->append(alice_, "#calendars/default", in).status().code(), ErrorCode::kInvalid);
}

TEST_F(GroupwareStoreTest, PutOutcomes) {
  struct Case {
    const char* what;
    std::string name, body;
    Outcome want;
  };
  auto first = put(cal_, "a.ics", event("uid-a", "20261201T090000Z"));
  ASSERT_EQ(first.outcome, Outcome::kCreated);
  const Case cases[] = {
      {"not iCalendar", "x.ics", "hello", Outcome::kInvalid},
      {"UID held by a.ics", "y.ics", event("uid-a", "20261205T090000Z"), Outcome::kUidConflict},
      {"UID of a.ics cannot change", "a.ics", event("uid-other", "20261205T090000Z"),
       Outcome::kUidConflict},
      {"too large", "big.ics",
       event("big", "20261201T090000Z", "DESCRIPTION:" + std::string(5000, 'x') + "\r\n"),
       Outcome::kTooLarge},
      {"vCard in a calendar", "c.ics",
       "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:C\r\nN:C;;;;\r\nEND:VCARD\r\n",
       Outcome::kInvalid},
  };
  for (const auto& c : cases) {
    auto r = put(cal_, c.name, c.body);
    EXPECT_EQ(r.outcome, c.want) << c.what << ": " << r.reason;
  }
  auto conflict = put(cal_, "y.ics", event("uid-a", "20261205T090000Z"));
  EXPECT_EQ(conflict.resource.name, "a.ics");
  // Preconditions: create-only on an existing name, replace-only with a stale ETag.
  EXPECT_EQ(put(cal_, "a.ics", event("uid-a", "20261202T090000Z"), {}, true).outcome,
            Outcome::kPreconditionFailed);
  Digest stale{};
  EXPECT_EQ(put(cal_, "a.ics", event("uid-a", "20261202T090000Z"), stale).outcome,
            Outcome::kPreconditionFailed);
  EXPECT_EQ(put(cal_, "new.ics", event("uid-n", "20261202T090000Z"), first.resource.blob).outcome,
            Outcome::kPreconditionFailed);
  // Nothing of the refusals was stored.
  EXPECT_EQ(store_->resources(alice_, cal_).value().size(), 1u);
  // A task calendar refuses events.
  auto tasks = store_->create_collection(alice_, CollectionKind::kCalendar, "tasks", {}, {"VTODO"});
  ASSERT_TRUE(tasks.is_ok());
  EXPECT_EQ(put(*tasks, "e.ics", event("e", "20261201T090000Z")).outcome,
            Outcome::kUnsupportedComponent);
  EXPECT_EQ(put(*tasks, "t.ics", todo("t")).outcome, Outcome::kCreated);
  // Address books need a UID.
  EXPECT_EQ(
      put(book_, "n.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:No Uid\r\nN:Uid;No;;;\r\nEND:VCARD\r\n")
          .outcome,
      Outcome::kInvalid);
}

TEST_F(GroupwareStoreTest, NewVersionsKeepTheGuidAndSyncChangesFollow) {
  auto a = put(cal_, "a.ics", event("uid-a", "20261201T090000Z"));
  auto b = put(cal_, "b.ics", event("uid-b", "20261202T090000Z"));
  uint64_t token = reload(cal_).folder.highestmodseq;
  auto a2 = put(cal_, "a.ics", event("uid-a", "20261203T090000Z"), a.resource.blob);
  ASSERT_EQ(a2.outcome, Outcome::kReplaced);
  EXPECT_EQ(a2.resource.guid, a.resource.guid);
  EXPECT_NE(a2.resource.uid, a.resource.uid);
  EXPECT_NE(a2.resource.blob, a.resource.blob);
  // The same body again changes nothing.
  auto same = put(cal_, "a.ics", event("uid-a", "20261203T090000Z"));
  EXPECT_EQ(same.outcome, Outcome::kReplaced);
  EXPECT_EQ(same.resource.modseq, a2.resource.modseq);
  ASSERT_TRUE(store_->delete_resource(alice_, cal_, "b.ics").is_ok());
  EXPECT_EQ(store_->delete_resource(alice_, cal_, "b.ics").code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->delete_resource(alice_, cal_, "a.ics", b.resource.blob).code(),
            ErrorCode::kConflict);
  auto changes = store_->resource_changes(alice_, cal_, token).value();
  ASSERT_EQ(changes.changed.size(), 1u);
  EXPECT_EQ(changes.changed[0].name, "a.ics");
  ASSERT_EQ(changes.removed.size(), 1u);
  EXPECT_EQ(changes.removed[0].name, "b.ics");
  EXPECT_EQ(store_->resource_changes(alice_, cal_, changes.highestmodseq).value().changed.size(),
            0u);
  EXPECT_EQ(store_->resource_changes(alice_, cal_, changes.highestmodseq + 1).status().code(),
            ErrorCode::kInvalid);
  // b.ics created again: no longer reported as removed.
  put(cal_, "b.ics", event("uid-b", "20261202T090000Z"));
  changes = store_->resource_changes(alice_, cal_, token).value();
  EXPECT_EQ(changes.removed.size(), 0u);
  EXPECT_EQ(changes.changed.size(), 2u);
  EXPECT_EQ(store_->resource_by_uid(alice_, cal_, "uid-b").value().name, "b.ics");
  // Account-wide: the same UID in a second calendar is found too.
  auto other = store_->create_collection(alice_, CollectionKind::kCalendar, "other", {});
  ASSERT_TRUE(other.is_ok());
  put(*other, "copy.ics", event("uid-b", "20261202T090000Z"));
  auto holders = store_->find_by_uid(alice_, CollectionKind::kCalendar, "uid-b").value();
  ASSERT_EQ(holders.size(), 2u);
  EXPECT_EQ(holders[0].collection.segment, "default");
  EXPECT_EQ(holders[1].resource.name, "copy.ics");
  EXPECT_TRUE(store_->find_by_uid(alice_, CollectionKind::kContacts, "uid-b").value().empty());
}

TEST_F(GroupwareStoreTest, BusyPeriodsAndRangePrefilter) {
  put(cal_, "a.ics", event("a", "20261201T090000Z"));
  put(cal_, "b.ics", event("b", "20261210T090000Z"));
  put(cal_, "free.ics", event("free", "20261201T120000Z", "TRANSP:TRANSPARENT\r\n"));
  put(cal_, "weekly.ics", event("w", "20261102T080000Z", "RRULE:FREQ=WEEKLY;COUNT=10\r\n"));
  int64_t dec1 = 1796083200000;  // 2026-12-01T00:00:00Z
  int64_t dec2 = dec1 + 86400000;
  auto in_range = store_->resources(alice_, cal_, std::make_pair(dec1, dec2)).value();
  std::vector<std::string> names;
  for (const auto& r : in_range) names.push_back(r.name);
  // Weekly (Mondays from 2 Nov, 10 times) may pass the prefilter; b does not.
  EXPECT_EQ(std::count(names.begin(), names.end(), "b.ics"), 0);
  EXPECT_EQ(std::count(names.begin(), names.end(), "a.ics"), 1);
  auto busy = store_->busy_periods(alice_, dec1, dec2).value();
  ASSERT_EQ(busy.size(), 1u);  // a; the transparent one is free; no Monday falls on 1 Dec
  EXPECT_EQ(busy[0].start, dec1 + 9 * 3600000);
  EXPECT_EQ(busy[0].end, dec1 + 10 * 3600000);
  EXPECT_EQ(busy[0].fbtype, "BUSY");
}

TEST_F(GroupwareStoreTest, RestoredResourceIsNotDuplicated) {
  auto a = put(cal_, "a.ics", event("uid-a", "20261201T090000Z"));
  DatabaseState state;
  ASSERT_TRUE(store_
                  ->read_snapshot("db1",
                                  [&](DatabaseSnapshot& snap) -> Status {
                                    MK_ASSIGN_OR_RETURN(state, snap.state());
                                    return Status::ok();
                                  })
                  .is_ok());
  const FolderState* f = state.accounts.at(alice_.guid).folder_named("#calendars/default");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->items.size(), 1u);
  ItemState item = f->items.begin()->second;
  EXPECT_EQ(item.dav_name, "a.ics");
  EXPECT_EQ(item.component_uid, "uid-a");
  std::string raw = event("uid-a", "20261201T090000Z");
  // Present: skipped.
  EXPECT_TRUE(store_->restore_resource(alice_, cal_, item, raw).value().duplicate);
  ASSERT_TRUE(store_->delete_resource(alice_, cal_, "a.ics").is_ok());
  auto back = store_->restore_resource(alice_, cal_, item, raw);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_FALSE(back->duplicate);
  auto restored = store_->resource(alice_, cal_, "a.ics").value();
  EXPECT_EQ(restored.guid, a.resource.guid);
  EXPECT_TRUE(store_->restore_resource(alice_, cal_, item, raw).value().duplicate);
  // An appointment re-created under another name with the same UID is not duplicated.
  ASSERT_TRUE(store_->delete_resource(alice_, cal_, "a.ics").is_ok());
  put(cal_, "renamed.ics", event("uid-a", "20261201T100000Z"));
  EXPECT_TRUE(store_->restore_resource(alice_, cal_, item, raw).value().duplicate);
  EXPECT_EQ(store_->resources(alice_, cal_).value().size(), 1u);
}

// Resource rows copy their item's columns. A database written before the copy existed gets
// the columns and their values when it is opened; the checker compares copy and item.
TEST_F(GroupwareStoreTest, ResourceRowsCopyTheirItemAndOldDatabasesAreFilledAtOpen) {
  const std::string card =
      "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:b\r\nFN:B\r\nN:B;;;;\r\nEND:VCARD\r\n";
  auto a = put(cal_, "a.ics", event("uid-a", "20261201T090000Z"));
  auto b = put(book_, "b.vcf", card);
  auto a2 = put(cal_, "a.ics", event("uid-a", "20261202T090000Z"));
  ASSERT_EQ(a2.outcome, Outcome::kReplaced);
  EXPECT_EQ(a2.resource.guid, a.resource.guid);
  const std::string dir = store_->database_dir("db1");
  EXPECT_TRUE(check_database(dir, "db1").ok());
  // Changes the database with the store closed, then opens it again.
  auto edit = [&](const char* sql) {
    store_.reset();
    auto db = SqliteDb::open(dir + "/meta.sqlite", false);
    ASSERT_TRUE(db.is_ok());
    ASSERT_TRUE((*db)->exec(sql).is_ok()) << sql;
  };
  auto reopen = [&] {
    store_ = std::make_unique<MailStore>(posix_fs(), dir_.path());
    alice_ = store_->account("db1", "alice@acme.test").value();
    cal_ = reload(cal_);
    book_ = reload(book_);
  };
  // The bodies multiget reads, each checked against the resource read alone.
  auto expect_bodies = [&] {
    for (const auto& [c, want] : {std::pair{cal_, a2.resource}, std::pair{book_, b.resource}}) {
      auto got = store_->resource(alice_, c, want.name);
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      EXPECT_EQ(got->uid, want.uid);
      EXPECT_EQ(got->guid, want.guid);
      EXPECT_EQ(got->blob, want.blob);
      EXPECT_EQ(got->size, want.size);
      EXPECT_EQ(got->modseq, want.modseq);
      EXPECT_EQ(got->saved_ms, want.saved_ms);
      std::vector<std::string> bodies;
      auto named = store_->resources_named(alice_, c, {want.name, "absent"}, &bodies);
      ASSERT_TRUE(named.is_ok()) << named.status().to_string();
      ASSERT_EQ(named->size(), 1u);
      EXPECT_EQ((*named)[0].blob, want.blob);
      EXPECT_EQ(bodies[0],
                c.kind == CollectionKind::kCalendar ? event("uid-a", "20261202T090000Z") : card);
    }
  };
  edit(
      "DROP INDEX dav_by_name_all;"
      "ALTER TABLE dav_resources DROP COLUMN guid;"
      "ALTER TABLE dav_resources DROP COLUMN blob;"
      "ALTER TABLE dav_resources DROP COLUMN size;"
      "ALTER TABLE dav_resources DROP COLUMN modseq;"
      "ALTER TABLE dav_resources DROP COLUMN saved_ms;"
      "ALTER TABLE dav_resources DROP COLUMN message_row;");
  EXPECT_TRUE(check_database(dir, "db1").ok()) << "an older database is not a broken one";
  reopen();
  expect_bodies();
  EXPECT_TRUE(check_database(dir, "db1").ok());
  // The message row is a hint: pointing at another body (a rebuilt, renumbered messages
  // table) or at nothing, the body is found by its digest.
  edit(
      "UPDATE dav_resources SET message_row=(SELECT MIN(rowid) FROM messages"
      " WHERE blob IS NOT dav_resources.blob) WHERE name='a.ics';"
      "UPDATE dav_resources SET message_row=NULL WHERE name='b.vcf'");
  reopen();
  expect_bodies();
  edit("UPDATE dav_resources SET size=size+1 WHERE name='b.vcf'");
  CheckReport report = check_database(dir, "db1");
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_NE(report.problems[0].what.find("disagrees with its item"), std::string::npos);
}

// Bodies read once come from memory afterwards (the messages rows are not read again), a
// mix of cached and uncached bodies lands in the right places, each cached body is checked
// against its digest, and the cache stays within its capacity.
TEST_F(GroupwareStoreTest, MultigetBodiesComeFromTheCacheCheckedAgainstTheirDigest) {
  store_->set_body_cache_bytes(1 << 20);
  std::map<std::string, std::string> want;
  for (int i = 0; i < 6; ++i) {
    std::string name = "e" + std::to_string(i) + ".ics";
    want[name] =
        event("cache-" + std::to_string(i), "2026120" + std::to_string(i + 1) + "T090000Z");
    put(cal_, name, want[name]);
  }
  auto read = [&](std::vector<std::string> names) {
    std::vector<std::string> bodies;
    auto named = store_->resources_named(alice_, cal_, names, &bodies);
    EXPECT_TRUE(named.is_ok()) << named.status().to_string();
    std::map<std::string, std::string> got;
    for (size_t i = 0; named.is_ok() && i < named->size(); ++i)
      got[(*named)[i].name] = bodies.at(i);
    return got;
  };
  // Three read (and kept), then all six with 300 names in all: two batches of names, three
  // bodies from memory and three from the database.
  auto first = read({"e1.ics", "e3.ics", "e5.ics"});
  EXPECT_EQ(first.size(), 3u);
  EXPECT_EQ(store_->body_cache().entries(), 3u);
  std::vector<std::string> names;
  for (int i = 0; i < 294; ++i) names.push_back("absent-" + std::to_string(i) + ".ics");
  for (const auto& [name, body] : want) names.push_back(name);
  EXPECT_EQ(read(names), want);
  EXPECT_EQ(store_->body_cache().entries(), 6u);
  // The messages rows emptied behind the store's back: what is in memory still answers.
  {
    auto db = SqliteDb::open(store_->database_dir("db1") + "/meta.sqlite", false);
    ASSERT_TRUE(db.is_ok());
    ASSERT_TRUE((*db)->exec("UPDATE messages SET data=zeroblob(length(data))").is_ok());
  }
  EXPECT_EQ(read(names), want);
  auto blobs = store_->read_messages(alice_, {sha256(want["e0.ics"]), sha256(want["e4.ics"])});
  ASSERT_TRUE(blobs.is_ok()) << blobs.status().to_string();
  EXPECT_EQ((*blobs)[1], want["e4.ics"]);
  // A smaller capacity evicts the least recently used bodies.
  const size_t one = want["e0.ics"].size();
  store_->set_body_cache_bytes(2 * one + one / 2);
  EXPECT_EQ(store_->body_cache().entries(), 2u);
  EXPECT_LE(store_->body_cache().bytes(), 2 * one + one / 2);
}

TEST(BodyCache, ABodyThatNoLongerMatchesItsDigestIsDropped) {
  BodyCache cache;
  cache.set_capacity(1024);
  const std::string body = "BEGIN:VCARD\r\nFN:A\r\nEND:VCARD\r\n";
  cache.put(sha256(body), body);
  std::string out;
  EXPECT_TRUE(cache.get(sha256(body), out));
  EXPECT_EQ(out, body);
  // As if memory were damaged: a body kept under another body's digest.
  cache.put(sha256("other"), body);
  EXPECT_EQ(cache.entries(), 2u);
  EXPECT_FALSE(cache.get(sha256("other"), out));
  EXPECT_EQ(cache.entries(), 1u);
  // Nothing over the capacity or over kMaxBody is kept; capacity 0 keeps nothing.
  cache.put(sha256(std::string(2000, 'x')), std::string(2000, 'x'));
  EXPECT_EQ(cache.entries(), 1u);
  cache.set_capacity(0);
  EXPECT_EQ(cache.entries(), 0u);
  EXPECT_EQ(cache.bytes(), 0u);
}

}  // namespace
}  // namespace mailark
