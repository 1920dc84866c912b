// MailboxView: sequence sets, and the untagged responses for changes made elsewhere,
// including expunges held back while FETCH/STORE/SEARCH run.
#include "protocol/imap/mailbox_view.h"

#include <gtest/gtest.h>

namespace mailark::imap {
namespace {

ItemInfo item(uint32_t uid, uint64_t modseq, std::vector<std::string> flags = {}) {
  ItemInfo i;
  i.uid = uid;
  i.modseq = modseq;
  i.flags = std::move(flags);
  return i;
}

MailboxView make_view(std::vector<uint32_t> uids, uint32_t first_recent = 1000) {
  FolderInfo f;
  f.name = "INBOX";
  f.uidvalidity = 7;
  f.highestmodseq = 10;
  return MailboxView(f, uids, false, first_recent);
}

TEST(MailboxView, Resolve) {
  MailboxView v = make_view({3, 5, 9, 10});
  auto r = v.resolve(*parse_sequence_set("2:*"), false);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, (std::vector<uint32_t>{5, 9, 10}));
  r = v.resolve(*parse_sequence_set("*:3"), false);  // reversed range
  EXPECT_EQ(*r, (std::vector<uint32_t>{9, 10}));
  EXPECT_FALSE(v.resolve(*parse_sequence_set("5"), false).is_ok());  // beyond EXISTS: BAD
  r = v.resolve(*parse_sequence_set("4:9,100:*"), true);
  EXPECT_EQ(*r, (std::vector<uint32_t>{5, 9, 10}));  // '*' = 10, 100:* = 10:100
  EXPECT_EQ(*v.seq_of(9), 3u);
  // Repeated and overlapping ranges are merged before anything is expanded.
  std::string repeated = "1:*";
  for (int i = 0; i < 5000; ++i) repeated += ",1:*";
  r = v.resolve(*parse_sequence_set(repeated), true);
  EXPECT_EQ(*r, (std::vector<uint32_t>{3, 5, 9, 10}));
  r = v.resolve(*parse_sequence_set("1:2,2:3,4"), false);
  EXPECT_EQ(*r, (std::vector<uint32_t>{3, 5, 9, 10}));
  EXPECT_FALSE(v.seq_of(4));
}

TEST(MailboxView, ExpungesHeldBackThenAnnouncedHighestFirst) {
  MailboxView v = make_view({1, 2, 3, 4});
  RecentClaims recent;
  FolderChanges ch;
  ch.highestmodseq = 12;
  ch.vanished = {2, 4};
  ch.changed = {item(3, 11, {"\\Seen"}), item(5, 12)};
  std::string out;
  SyncOptions during_fetch;
  during_fetch.allow_expunge = false;
  v.apply(ch, during_fetch, recent, &out);
  // No EXPUNGE yet; the new message is announced; numbers stay as they were.
  EXPECT_EQ(out, "* 5 EXISTS\r\n* 1 RECENT\r\n* 3 FETCH (FLAGS (\\Seen))\r\n");
  EXPECT_EQ(v.exists(), 5u);
  EXPECT_TRUE(v.is_pending_expunge(2));
  out.clear();
  v.apply(FolderChanges{12, {}, {}}, SyncOptions{}, recent, &out);
  EXPECT_EQ(out, "* 4 EXPUNGE\r\n* 2 EXPUNGE\r\n");
  EXPECT_EQ(v.uids().to_vector(), (std::vector<uint32_t>{1, 3, 5}));
  EXPECT_EQ(v.modseq(), 12u);
}

TEST(MailboxView, QresyncVanishedAndModseq) {
  MailboxView v = make_view({1, 2, 3});
  RecentClaims recent;
  SyncOptions o;
  o.qresync = true;
  o.condstore = true;
  o.recent = false;
  std::string out;
  v.apply(FolderChanges{20, {item(3, 20, {"\\Flagged"})}, {1, 2}}, o, recent, &out);
  EXPECT_EQ(out, "* VANISHED 1:2\r\n* 1 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (20))\r\n");
}

TEST(MailboxView, OwnReportedChangesAreNotRepeated) {
  MailboxView v = make_view({1, 2});
  RecentClaims recent;
  v.reported(1, 15);
  std::string out;
  v.apply(FolderChanges{15, {item(1, 15, {"\\Seen"})}, {}}, SyncOptions{}, recent, &out);
  EXPECT_EQ(out, "");
}

TEST(MailboxView, RecentGoesToTheFirstSession) {
  RecentClaims recent;
  Guid folder = Guid::random();
  EXPECT_EQ(recent.claim(folder, 5), 1u);  // first session: 1..4 are recent for it
  EXPECT_EQ(recent.claim(folder, 5), 5u);  // second: none
  EXPECT_EQ(recent.first_unclaimed(folder), 5u);
  EXPECT_EQ(recent.claim(folder, 7), 5u);  // new mail 5..6 goes to whoever sees it first
}

TEST(MailboxView, UidListRuns) {
  UidList list;
  std::vector<uint32_t> model;
  for (uint32_t u : {1u, 2u, 3u, 7u, 8u, 20u, 21u, 22u, 23u, 100u}) {
    list.push_back(u);
    model.push_back(u);
  }
  EXPECT_EQ(list.runs(), 4u);
  EXPECT_EQ(list.size(), model.size());
  EXPECT_EQ(list.back(), 100u);
  for (uint32_t i = 0; i < model.size(); ++i) {
    EXPECT_EQ(list.at(i), model[i]);
    EXPECT_EQ(list.index_of(model[i]), i);
  }
  EXPECT_FALSE(list.index_of(4));
  EXPECT_FALSE(list.index_of(0));
  EXPECT_FALSE(list.index_of(101));
  std::vector<uint32_t> out;
  list.append_between(3, 21, &out);
  EXPECT_EQ(out, (std::vector<uint32_t>{3, 7, 8, 20, 21}));
  out.clear();
  list.append_positions(2, 7, &out);
  EXPECT_EQ(out, (std::vector<uint32_t>{3, 7, 8, 20, 21}));
  list.erase({2, 8, 22, 50});
  EXPECT_EQ(list.to_vector(), (std::vector<uint32_t>{1, 3, 7, 20, 21, 23, 100}));
  EXPECT_EQ(list.at(4), 21u);
  EXPECT_EQ(list.index_of(23), 5u);
  // A dense folder is one run.
  UidList dense;
  for (uint32_t u = 1; u <= 20000; ++u) dense.push_back(u);
  EXPECT_EQ(dense.runs(), 1u);
  EXPECT_EQ(dense.at(19999), 20000u);
}

TEST(MailboxView, FormatSets) {
  EXPECT_EQ(format_flags({"$Junk", "\\Seen"}, true), "($Junk \\Seen \\Recent)");
  EXPECT_EQ(format_flags({}, false), "()");
}

}  // namespace
}  // namespace mailark::imap
