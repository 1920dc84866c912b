// Database checker. Opens its own read-only connection so it works on a database whose
// server is running (WAL readers do not block writers) and on one that is stopped.
#include "mailstore/check.h"

#include <map>
#include <set>

#include "base/hash.h"
#include "mailstore/header_fields.h"
#include "mailstore/mime.h"
#include "os/file.h"
#include "storage/blob_store.h"
#include "storage/journal.h"
#include "storage/sqlite.h"

namespace mailark {

CheckReport check_database(const std::string& dir, const std::string& name,
                           const std::function<void(const std::string&)>& progress) {
  CheckReport report;
  auto problem = [&](std::string where, std::string what) {
    report.problems.push_back({std::move(where), std::move(what)});
  };
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  std::string path = dir + "/meta.sqlite";
  if (!posix_fs().exists(path)) {
    problem("database " + name, "no meta.sqlite at " + dir);
    return report;
  }
  auto opened = SqliteDb::open(path, false, /*read_only=*/false);
  if (!opened.is_ok()) {
    problem("sqlite file " + path, opened.status().message());
    return report;
  }
  SqliteDb& db = **opened;
  // One read transaction for the whole check: a consistent snapshot even while the server
  // keeps writing.
  if (Status b = db.exec("BEGIN"); !b.is_ok()) {
    problem("sqlite file " + path, b.message());
    return report;
  }

  say("sqlite integrity");
  {
    auto st = db.prepare("PRAGMA integrity_check(100)");
    if (!st.is_ok()) {
      problem("sqlite file " + path, st.status().message());
      return report;
    }
    while (true) {
      auto row = st->step();
      if (!row.is_ok()) {
        problem("sqlite file " + path, row.status().message());
        return report;
      }
      if (!*row) break;
      std::string line = st->column_text(0);
      if (line != "ok") problem("sqlite " + path, line);
    }
    if (!report.problems.empty()) return report;  // nothing below can be trusted
  }

  say("journal chain");
  auto chain = journal::verify_chain(db, [&](int64_t seq, const std::string& what) {
    problem("journal seq " + std::to_string(seq), what);
  });
  if (!chain.is_ok())
    problem("journal", chain.status().message());
  else
    report.journal_records = static_cast<uint64_t>(*chain);
  {
    // meta.journal_head is written with every commit: "seq:HEXHASH" of the newest record.
    auto head = db.prepare(
        "SELECT (SELECT value FROM meta WHERE key='journal_head'),"
        " COALESCE((SELECT seq || ':' || hex(hash) FROM journal ORDER BY seq DESC LIMIT 1), '0:')");
    if (head.is_ok()) {
      auto row = head->step();
      if (row.is_ok() && *row && !head->column_is_null(0)) {
        std::string want = head->column_text(0);
        std::string got = head->column_text(1);
        if (want != got) {
          std::string want_seq = want.substr(0, want.find(':'));
          problem("journal seq " + want_seq,
                  "the journal ends at seq " + got.substr(0, got.find(':')) +
                      " but the last commit recorded seq " + want_seq +
                      " as its head: records are missing or were altered");
        }
      }
    }
  }

  auto run_query = [&](const std::string& sql,
                       const std::function<void(const SqliteStatement&)>& row_fn) {
    auto st = db.prepare(sql);
    if (!st.is_ok()) {
      problem("sqlite", st.status().message());
      return;
    }
    while (true) {
      auto row = st->step();
      if (!row.is_ok()) {
        problem("sqlite", row.status().message());
        return;
      }
      if (!*row) return;
      row_fn(*st);
    }
  };

  say("messages and blobs");
  BlobStore blobs(posix_fs(), dir + "/blobs");
  std::set<Digest> referenced;
  std::set<Digest> inline_blobs;  // content kept in messages.data, so a file would be stray
  std::map<Digest, int64_t> refs_expected;
  run_query("SELECT blob, COUNT(*) FROM items GROUP BY blob", [&](const SqliteStatement& st) {
    auto d = digest_from_bytes(st.column_blob(0));
    if (d) refs_expected[*d] = st.column_int(1);
  });
  // Format version 2 keeps the counts in message_refs; a version 1 database not yet opened
  // by this version of the server keeps them in messages.refs.
  bool refs_table = false;
  run_query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='message_refs'",
            [&](const SqliteStatement&) { refs_table = true; });
  std::string messages_sql = refs_table
                                 ? "SELECT m.blob, m.size, r.refs, m.info, m.data FROM messages m"
                                   " LEFT JOIN message_refs r ON r.blob = m.blob"
                                 : "SELECT blob, size, refs, info, data FROM messages";
  run_query(messages_sql, [&](const SqliteStatement& st) {
    auto d = digest_from_bytes(st.column_blob(0));
    if (!d) {
      problem("messages table", "row with a malformed blob id");
      return;
    }
    std::string where = "blob " + to_hex(*d);
    referenced.insert(*d);
    if (!st.column_is_null(4)) inline_blobs.insert(*d);
    ++report.blobs;
    int64_t refs = st.column_int(2);
    int64_t expected = refs_expected.count(*d) ? refs_expected[*d] : 0;
    if (st.column_is_null(2))
      problem(where, "no reference count (no message_refs row); " + std::to_string(expected) +
                         " items refer to it");
    else if (refs != expected)
      problem(where, "reference count " + std::to_string(refs) + " but " +
                         std::to_string(expected) + " items refer to it");
    if (!deserialize_message_info(st.column_blob(3)).is_ok())
      problem(where, "parse cache entry does not decode");
    if (expected == 0) return;  // unreferenced content may be gone; nothing serves it
    bool is_inline = !st.column_is_null(4);
    auto content = is_inline ? BlobStore::decode_verified(st.column_blob(4), *d) : blobs.get(*d);
    if (!content.is_ok()) {
      problem(
          where + (is_inline ? " (stored in the messages table)" : " (" + blobs.path_of(*d) + ")"),
          content.status().message());
      return;
    }
    if (static_cast<int64_t>(content->size()) != st.column_int(1))
      problem(where, "size differs from the messages table");
  });
  for (const auto& [d, n] : refs_expected)
    if (!referenced.count(d))
      problem("blob " + to_hex(d),
              std::to_string(n) + " items refer to a message that does not exist");
  if (refs_table)
    run_query(
        "SELECT r.blob FROM message_refs r LEFT JOIN messages m ON m.blob = r.blob"
        " WHERE m.blob IS NULL",
        [&](const SqliteStatement& st) {
          auto blob = st.column_blob(0);
          problem("message_refs table",
                  "reference count for a message that does not exist: blob " +
                      to_hex(reinterpret_cast<const uint8_t*>(blob.data()), blob.size()));
        });

  say("header fields records");
  bool has_header_fields = false;
  run_query("SELECT 1 FROM sqlite_master WHERE type='table' AND name='header_fields'",
            [&](const SqliteStatement&) { has_header_fields = true; });
  if (!has_header_fields) {
    report.notes.push_back({"header_fields table",
                            "absent: mailark makes it when it next opens "
                            "the database"});
  } else {
    uint64_t missing = 0;
    HeaderFieldValues fields;
    run_query(
        "SELECT m.blob, m.info, h.fields FROM messages m"
        " LEFT JOIN header_fields h ON h.blob = m.blob"
        " WHERE EXISTS (SELECT 1 FROM items i WHERE i.blob = m.blob)",
        [&](const SqliteStatement& st) {
          auto d = digest_from_bytes(st.column_blob_view(0));
          if (!d) return;  // reported with the messages table
          if (st.column_is_null(2)) {
            ++missing;
            return;
          }
          std::string where = "blob " + to_hex(*d);
          Status decoded = decode_header_fields(st.column_blob_view(2), fields);
          if (!decoded.is_ok()) {
            problem(where, decoded.message());
            return;
          }
          auto info = deserialize_message_info(st.column_blob_view(1));
          if (info.is_ok() && encode_header_fields(info->header) != st.column_blob_view(2))
            problem(where,
                    "header fields record differs from the message's header: searches "
                    "on Subject, From, To... would answer wrongly");
        });
    if (missing)
      report.notes.push_back(
          {"header_fields table", std::to_string(missing) +
                                      " messages have no record (stored by an older mailark; "
                                      "searches make it from the parse cache)"});
  }

  std::vector<std::string> strays;
  auto on_disk = blobs.list(&strays);
  if (on_disk.is_ok()) {
    uint64_t orphans = 0;
    for (const auto& d : *on_disk)
      if (!referenced.count(d) || inline_blobs.count(d)) ++orphans;
    if (orphans)
      report.notes.push_back(
          {"blob store", std::to_string(orphans) +
                             " blob files no item refers to (left by interrupted "
                             "deliveries or expunges; harmless)"});
  }
  for (const auto& s : strays) report.notes.push_back({s, "unexpected file in the blob store"});

  say("accounts, folders, items");
  run_query(
      "SELECT a.address, a.used_bytes, a.used_items,"
      " (SELECT COALESCE(SUM(i.size),0) FROM items i JOIN folders f ON i.folder_id=f.id WHERE "
      "f.account_id=a.id),"
      " (SELECT COUNT(*) FROM items i JOIN folders f ON i.folder_id=f.id WHERE f.account_id=a.id)"
      " FROM accounts a",
      [&](const SqliteStatement& st) {
        ++report.accounts;
        std::string where = "account " + st.column_text(0);
        if (st.column_int(1) != st.column_int(3))
          problem(where, "usage counter says " + std::to_string(st.column_int(1)) +
                             " bytes, items add up to " + std::to_string(st.column_int(3)));
        if (st.column_int(2) != st.column_int(4))
          problem(where, "item counter says " + std::to_string(st.column_int(2)) + ", found " +
                             std::to_string(st.column_int(4)));
      });
  run_query(
      "SELECT a.address, f.name, f.uidnext, f.highestmodseq,"
      " (SELECT COALESCE(MAX(uid),0) FROM items i WHERE i.folder_id=f.id),"
      " (SELECT COALESCE(MAX(modseq),0) FROM items i WHERE i.folder_id=f.id),"
      " (SELECT COALESCE(MAX(uid),0) FROM expunged e WHERE e.folder_id=f.id),"
      " (SELECT COUNT(*) FROM items i WHERE i.folder_id=f.id)"
      " FROM folders f LEFT JOIN accounts a ON f.account_id=a.id",
      [&](const SqliteStatement& st) {
        std::string where = "folder " + st.column_text(0) + "/" + st.column_text(1);
        if (st.column_is_null(0)) problem(where, "folder belongs to no account");
        int64_t uidnext = st.column_int(2);
        if (st.column_int(4) >= uidnext || st.column_int(6) >= uidnext)
          problem(where, "UIDNEXT " + std::to_string(uidnext) + " is not above every UID used");
        if (st.column_int(5) > st.column_int(3))
          problem(where, "an item's MODSEQ is above HIGHESTMODSEQ");
        report.items += static_cast<uint64_t>(st.column_int(7));
      });
  run_query("SELECT COUNT(*) FROM items WHERE folder_id NOT IN (SELECT id FROM folders)",
            [&](const SqliteStatement& st) {
              if (st.column_int(0))
                problem("items table",
                        std::to_string(st.column_int(0)) + " items belong to no folder");
            });
  // Calendars and address books: every item has its resource row and every row its item.
  bool has_dav = false;
  run_query("SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='dav_resources'",
            [&](const SqliteStatement& st) { has_dav = st.column_int(0) > 0; });
  if (has_dav) {
    run_query(
        "SELECT f.name, i.uid FROM items i JOIN folders f ON i.folder_id=f.id WHERE f.kind!='mail'"
        " AND NOT EXISTS (SELECT 1 FROM dav_resources d WHERE d.folder_id=i.folder_id AND"
        " d.uid=i.uid) LIMIT 100",
        [&](const SqliteStatement& st) {
          problem("folder " + st.column_text(0) + " UID " + std::to_string(st.column_int(1)),
                  "calendar or contact item has no resource name");
        });
    run_query(
        "SELECT COALESCE(f.name, '?'), d.name, COALESCE(f.kind, '') FROM dav_resources d"
        " LEFT JOIN folders f ON f.id=d.folder_id WHERE f.kind IS NULL OR f.kind='mail' OR"
        " NOT EXISTS (SELECT 1 FROM items i WHERE i.folder_id=d.folder_id AND i.uid=d.uid)"
        " LIMIT 100",
        [&](const SqliteStatement& st) {
          problem("folder " + st.column_text(0) + " resource " + st.column_text(1),
                  st.column_text(2) == "mail" ? "a mail folder holds a calendar or contact"
                                              : "resource names an item that does not exist");
        });
    // The row's copy of its item's columns (what reads of resources serve) equals the item.
    // (A database last opened by a build before the copy existed has none yet: the next
    // open makes it.)
    bool has_copy = false;
    run_query("SELECT COUNT(*) FROM pragma_table_info('dav_resources') WHERE name='blob'",
              [&](const SqliteStatement& st) { has_copy = st.column_int(0) > 0; });
    if (has_copy)
      run_query(
          "SELECT COALESCE(f.name, '?'), d.name FROM dav_resources d JOIN items i ON"
          " i.folder_id=d.folder_id AND i.uid=d.uid LEFT JOIN folders f ON f.id=d.folder_id"
          " WHERE d.guid IS NOT i.guid OR d.blob IS NOT i.blob OR d.size IS NOT i.size OR"
          " d.modseq IS NOT i.modseq OR d.saved_ms IS NOT i.saved_ms LIMIT 100",
          [&](const SqliteStatement& st) {
            problem("folder " + st.column_text(0) + " resource " + st.column_text(1),
                    "resource row disagrees with its item (guid, blob, size, modseq or saved_ms)");
          });
  }
  return report;
}

Result<DatabaseStats> database_stats(const std::string& dir) {
  MK_ASSIGN_OR_RETURN(auto db, SqliteDb::open(dir + "/meta.sqlite", false));
  DatabaseStats s;
  MK_ASSIGN_OR_RETURN(
      auto st,
      db->prepare("SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM folders),"
                  " (SELECT COUNT(*) FROM items), (SELECT COALESCE(SUM(size),0) FROM items),"
                  " (SELECT COALESCE(SUM(m.size),0) FROM messages m JOIN message_refs r"
                  " ON r.blob=m.blob WHERE r.refs>0),"
                  " (SELECT COALESCE(SUM(stored_size),0) FROM messages),"
                  " (SELECT COUNT(*) FROM journal), (SELECT COALESCE(MAX(seq),0) FROM journal)"));
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return corrupt("stats query returned nothing");
  s.accounts = static_cast<uint64_t>(st.column_int(0));
  s.folders = static_cast<uint64_t>(st.column_int(1));
  s.items = static_cast<uint64_t>(st.column_int(2));
  s.bytes = static_cast<uint64_t>(st.column_int(3));
  s.unique_bytes = static_cast<uint64_t>(st.column_int(4));
  s.stored_bytes = static_cast<uint64_t>(st.column_int(5));
  s.journal_records = static_cast<uint64_t>(st.column_int(6));
  s.last_seq = st.column_int(7);
  return s;
}

}  // namespace mailark
