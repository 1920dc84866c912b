// Database lifecycle, schema and group commit.
//
// Group commit: writers enqueue a closure and block; one committer thread takes everything
// queued, fsyncs the blob directories the batch needs, runs each closure under its own
// SAVEPOINT inside one BEGIN IMMEDIATE .. COMMIT, and wakes the writers. With
// synchronous=FULL the COMMIT is one WAL fsync shared by the whole batch. (Letting the
// first waiting writer lead the commit on its own thread instead was tried on 2026-12-01:
// APPEND on 8 connections lost 11-45% in the bench, on one connection nothing was gained.)
#include "storage/database.h"

#include <atomic>
#include <exception>

#include "base/hash.h"
#include "base/log.h"
#include "base/time.h"

namespace mailark {

constexpr size_t kMaxBatch = 512;
// Idle reader connections kept for reuse. Few: each maps the database file, and a burst of
// work opens more for a moment.
constexpr size_t kMaxReaders = 8;
std::atomic<int64_t> g_reader_mmap_bytes{0};
// The write-ahead log is truncated once it grows past this (see checkpointer_loop).
constexpr uint64_t kWalRestartBytes = 64u << 20;
constexpr int kWalRestartWaitMs = 200;

static Result<bool> has_column(SqliteDb& db, std::string_view table, std::string_view column) {
  MK_ASSIGN_OR_RETURN(auto st,
                      db.prepare("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name=?"));
  st.bind(1, table).bind(2, column);
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  return row && st.column_int(0) > 0;
}

Result<JournalRecord> WriteTx::journal(std::string op, const Guid& account, const Guid& item,
                                       std::string payload) {
  JournalRecord r;
  r.time_ms = time_ms_;
  r.op = std::move(op);
  r.account = account;
  r.item = item;
  r.payload = std::move(payload);
  return journal::append(db_, std::move(r));
}

// The columns of `messages`, for its creation and for replacing an older layout of it.
constexpr const char* kMessagesColumns = R"sql((
  blob BLOB PRIMARY KEY,
  size INTEGER NOT NULL,
  stored_size INTEGER NOT NULL,
  info BLOB NOT NULL,
  data BLOB))sql";

// A message's reference count, kept apart from its row: the row holds the parse cache and a
// small body inline, and SQLite rewrites a whole row (overflow pages included) to change one
// column of it. Every COPY, expunge and restore by reference changes a count.
constexpr const char* kMessageRefsTable =
    "CREATE TABLE message_refs(blob BLOB PRIMARY KEY, refs INTEGER NOT NULL) WITHOUT ROWID";

Status create_database_schema(SqliteDb& db) {
  MK_RETURN_IF_ERROR(db.exec(std::string("CREATE TABLE messages") + kMessagesColumns));
  MK_RETURN_IF_ERROR(db.exec(kMessageRefsTable));
  MK_RETURN_IF_ERROR(db.exec(R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts(
  id INTEGER PRIMARY KEY,
  guid BLOB NOT NULL UNIQUE,
  address TEXT NOT NULL UNIQUE,
  created_ms INTEGER NOT NULL,
  used_bytes INTEGER NOT NULL DEFAULT 0,
  used_items INTEGER NOT NULL DEFAULT 0,
  last_uidvalidity INTEGER NOT NULL DEFAULT 0);
CREATE TABLE folders(
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  guid BLOB NOT NULL UNIQUE,
  name TEXT NOT NULL,
  kind TEXT NOT NULL DEFAULT 'mail',
  special_use TEXT,
  subscribed INTEGER NOT NULL DEFAULT 1,
  uidvalidity INTEGER NOT NULL,
  uidnext INTEGER NOT NULL,
  highestmodseq INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  UNIQUE(account_id, name));
CREATE TABLE items(
  id INTEGER PRIMARY KEY,
  folder_id INTEGER NOT NULL REFERENCES folders(id),
  uid INTEGER NOT NULL,
  guid BLOB NOT NULL,
  ingress_id BLOB,
  blob BLOB NOT NULL REFERENCES messages(blob),
  size INTEGER NOT NULL,
  internal_date_ms INTEGER NOT NULL,
  flags TEXT NOT NULL DEFAULT '',
  modseq INTEGER NOT NULL,
  saved_ms INTEGER NOT NULL,
  UNIQUE(folder_id, uid));
CREATE INDEX items_by_modseq ON items(folder_id, modseq);
CREATE INDEX items_by_guid ON items(guid);
CREATE INDEX items_by_blob ON items(blob);
CREATE TABLE expunged(
  folder_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  modseq INTEGER NOT NULL,
  PRIMARY KEY(folder_id, uid)) WITHOUT ROWID;
CREATE TABLE deliveries(
  account_id INTEGER NOT NULL REFERENCES accounts(id),
  ingress_id BLOB NOT NULL,
  item_guid BLOB NOT NULL,
  time_ms INTEGER NOT NULL,
  PRIMARY KEY(account_id, ingress_id)) WITHOUT ROWID;
)sql"));
  return journal::create_schema(db);
}

Database::Database(FileSystem& fs, std::string dir, std::string name)
    : fs_(fs), dir_(std::move(dir)), name_(std::move(name)), blobs_(fs, dir_ + "/blobs") {}

Database::~Database() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  checkpoint_cv_.notify_all();
  if (committer_.joinable()) committer_.join();
  if (checkpointer_.joinable()) checkpointer_.join();
  // Never waits for readers of other processes; the last connection to close checkpoints
  // the rest and removes the WAL by itself.
  if (writer_) (void)writer_->exec("PRAGMA wal_checkpoint(PASSIVE)");
}

Result<std::unique_ptr<Database>> Database::create(FileSystem& fs, const std::string& dir,
                                                   const std::string& name) {
  if (fs.exists(dir + "/meta.sqlite")) return exists_error("database " + name + " already exists");
  MK_RETURN_IF_ERROR(fs.make_dirs(dir));
  std::unique_ptr<Database> db(new Database(fs, dir, name));
  MK_RETURN_IF_ERROR(db->blobs_.create_layout());
  {
    MK_ASSIGN_OR_RETURN(auto sql, SqliteDb::open(db->sqlite_path(), /*create=*/true));
    SqliteTransaction tx(sql.get());
    MK_RETURN_IF_ERROR(tx.begin());
    MK_RETURN_IF_ERROR(create_database_schema(*sql));
    MK_ASSIGN_OR_RETURN(auto meta, sql->prepare("INSERT INTO meta VALUES (?, ?)"));
    const std::pair<std::string, std::string> rows[] = {
        {"format_version", std::to_string(kDatabaseFormatVersion)},
        {"database_guid", Guid::random().hex()},
        {"name", name},
        {"created_ms", std::to_string(now_ms())}};
    for (const auto& [k, v] : rows) {
      meta.bind(1, k).bind(2, v);
      MK_RETURN_IF_ERROR(meta.run());
      meta.reset();
    }
    MK_RETURN_IF_ERROR(tx.commit());
  }
  MK_RETURN_IF_ERROR(fs.sync_dir(dir));
  MK_RETURN_IF_ERROR(fs.sync_dir(parent_dir(dir)));
  MK_RETURN_IF_ERROR(db->open_connections(false));
  return db;
}

Result<std::unique_ptr<Database>> Database::open(FileSystem& fs, const std::string& dir,
                                                 const std::string& name) {
  if (!fs.exists(dir + "/meta.sqlite"))
    return not_found("database " + name + " has no files at " + dir);
  std::unique_ptr<Database> db(new Database(fs, dir, name));
  MK_RETURN_IF_ERROR(db->open_connections(false));
  int stale = db->blobs_.remove_stale_temporaries(now_ms(), 3'600'000);
  if (stale)
    MK_LOG_INFO("database {}: removed {} temporary blob files left by a crash", name, stale);
  return db;
}

Status Database::open_connections(bool create) {
  MK_ASSIGN_OR_RETURN(writer_, SqliteDb::open(sqlite_path(), create));
  MK_ASSIGN_OR_RETURN(auto st,
                      writer_->prepare("SELECT value FROM meta WHERE key='format_version'"));
  auto row = st.step();
  if (!row.is_ok()) return corrupt("database " + name_ + ": " + row.status().message());
  if (!*row) return corrupt("database " + name_ + ": no format_version in meta");
  int version = std::atoi(st.column_text(0).c_str());
  if (version != 1 && version != kDatabaseFormatVersion)
    return invalid("database " + name_ + " has format version " + std::to_string(version) +
                   ", this mailark reads versions 1 to " + std::to_string(kDatabaseFormatVersion));
  st.reset();
  // Indexes added after format version 1 was written; derived data, so adding them keeps the
  // format (docs/formats/database.md). items_uid_flags_size covers IMAP SELECT's reads of a
  // folder: its UIDs and flags, and its counters (messages, unseen, bytes), each one index
  // scan instead of a walk over the wide item rows. It replaces items_uid_flags (no size).
  MK_RETURN_IF_ERROR(writer_->exec(
      "CREATE INDEX IF NOT EXISTS items_uid_flags_size ON items(folder_id, uid, flags, size);"
      "DROP INDEX IF EXISTS items_uid_flags"));
  // Calendars and address books (CalDAV/CardDAV) came after format version 1 was written.
  // Tables that only hold rows for folders of those kinds: a database that has none is
  // exactly a version 1 database, so adding them empty keeps the format.
  MK_RETURN_IF_ERROR(writer_->exec(R"sql(
CREATE TABLE IF NOT EXISTS dav_resources(
  folder_id INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  name TEXT NOT NULL,
  component_uid TEXT NOT NULL,
  component TEXT NOT NULL,
  range_start INTEGER NOT NULL,
  range_end INTEGER NOT NULL,
  recurring INTEGER NOT NULL DEFAULT 0,
  guid BLOB,
  blob BLOB,
  size INTEGER,
  modseq INTEGER,
  saved_ms INTEGER,
  message_row INTEGER,
  PRIMARY KEY(folder_id, uid)) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS dav_by_name ON dav_resources(folder_id, name);
CREATE UNIQUE INDEX IF NOT EXISTS dav_by_component_uid ON dav_resources(folder_id, component_uid);
CREATE TABLE IF NOT EXISTS dav_gone(
  folder_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  modseq INTEGER NOT NULL,
  PRIMARY KEY(folder_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS folder_props(
  folder_id INTEGER PRIMARY KEY,
  props TEXT NOT NULL);
)sql"));
  // Derived from `messages` (docs/formats/header-fields.md), added after format version 1:
  // the mail store fills it for older databases when it opens them.
  MK_RETURN_IF_ERROR(writer_->exec(R"sql(
CREATE TABLE IF NOT EXISTS header_fields(
  blob BLOB PRIMARY KEY,
  fields BLOB NOT NULL) WITHOUT ROWID;
)sql"));
  // dav_resources of development builds before `recurring` existed.
  MK_ASSIGN_OR_RETURN(bool has_recurring, has_column(*writer_, "dav_resources", "recurring"));
  if (!has_recurring)
    MK_RETURN_IF_ERROR(
        writer_->exec("ALTER TABLE dav_resources ADD COLUMN recurring INTEGER NOT NULL DEFAULT 0"));
  // messages first: filling the resources' message_row reads its rowids.
  if (version == 1) MK_RETURN_IF_ERROR(upgrade_to_version_2());
  MK_RETURN_IF_ERROR(add_resource_item_columns());
  // Checkpoints are the checkpointer thread's job (see checkpointer_loop).
  MK_RETURN_IF_ERROR(writer_->exec("PRAGMA wal_autocheckpoint=0"));
  // A statement that may abort midway (any insert checked by a foreign key) keeps the pages
  // it changes in a statement journal, which SQLite moves to a temporary file once a large
  // transaction makes it exceed 64 KiB; it is discarded with the statement. In memory: the
  // writer's sorts are small (one account's items at most).
  MK_RETURN_IF_ERROR(writer_->exec("PRAGMA temp_store=MEMORY"));
  // The writer maps the file like the server's readers: a commit reads the index pages it
  // changes (random digests land on random pages), a pread each from its small page cache.
  if (int64_t bytes = g_reader_mmap_bytes.load(); bytes > 0)
    MK_RETURN_IF_ERROR(writer_->exec("PRAGMA mmap_size=" + std::to_string(bytes)));
  committer_ = std::thread([this] { committer_loop(); });
  checkpointer_ = std::thread([this] { checkpointer_loop(); });
  return Status::ok();
}

Status Database::write(const std::function<Status(WriteTx&)>& fn, std::set<std::string> sync_dirs) {
  PendingWrite pending{&fn, std::move(sync_dirs)};
  std::unique_lock lock(mu_);
  if (stopping_) return temporary("database " + name_ + " is closing");
  queue_.push_back(&pending);
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return pending.done; });
  return pending.result;
}

// A resource row carries a copy of its item's guid, blob, size, modseq and saved_ms (items of
// calendars and address books never change: a new version is a new item), the rowid of its
// `messages` row as a hint (verified on use: a rebuilt table may renumber), and
// dav_by_name_all covers the row. A calendar-multiget then finds each resource and its body
// in two b-tree descents instead of six (name index, resource row, item index, item row,
// message index, message row). Rows of databases written before 2026-12-01 get the columns
// and their values at open, once, in one transaction.
Status Database::add_resource_item_columns() {
  static constexpr std::pair<const char*, const char*> kColumns[] = {
      {"guid", "BLOB"},      {"blob", "BLOB"},        {"size", "INTEGER"},
      {"modseq", "INTEGER"}, {"saved_ms", "INTEGER"}, {"message_row", "INTEGER"}};
  std::vector<std::pair<const char*, const char*>> missing;
  for (const auto& column : kColumns) {
    MK_ASSIGN_OR_RETURN(bool has, has_column(*writer_, "dav_resources", column.first));
    if (!has) missing.push_back(column);
  }
  MK_ASSIGN_OR_RETURN(auto index, writer_->prepare("SELECT 1 FROM sqlite_master WHERE"
                                                   " type='index' AND name='dav_by_name_all'"));
  MK_ASSIGN_OR_RETURN(bool indexed, index.step());
  index.reset();  // no statement left running across the schema changes below
  if (missing.empty() && indexed) return Status::ok();  // no write lock at every open
  SqliteTransaction tx(writer_.get());
  MK_RETURN_IF_ERROR(tx.begin());
  for (const auto& [column, type] : missing)
    MK_RETURN_IF_ERROR(
        writer_->exec(std::string("ALTER TABLE dav_resources ADD COLUMN ") + column + " " + type));
  if (!missing.empty()) {
    MK_LOG_INFO("database {}: copying item columns into dav_resources (once)", name_);
    MK_RETURN_IF_ERROR(writer_->exec(R"sql(
UPDATE dav_resources AS d SET guid=i.guid, blob=i.blob, size=i.size, modseq=i.modseq,
  saved_ms=i.saved_ms FROM items i WHERE i.folder_id=d.folder_id AND i.uid=d.uid;
UPDATE dav_resources AS d SET message_row=m.rowid FROM messages m WHERE m.blob=d.blob;
DROP INDEX IF EXISTS dav_by_name_all;
)sql"));
  }
  MK_RETURN_IF_ERROR(writer_->exec(
      "CREATE INDEX IF NOT EXISTS dav_by_name_all ON dav_resources(folder_id, name, uid, guid,"
      " blob, size, modseq, saved_ms, component_uid, component, range_start, range_end,"
      " recurring, message_row)"));
  return tx.commit();
}

// Version 1 kept each message's reference count in its `messages` row. Version 2 keeps it
// in `message_refs` (see kMessageRefsTable); the upgrade moves the counts, in one
// transaction, once. It rewrites the messages table: logged, as it takes a while on a large
// database.
//
// Version 1 databases written before 2026-11-30 also keep `messages` as a WITHOUT ROWID
// table. Its rows hold the parse cache and small bodies inline, so the b-tree's interior
// cells are whole rows: a few per page, a deep tree, and every key comparison copies a row
// out of its overflow pages (a multiget of 100 events spent a quarter of its time there). As
// an ordinary table, the lookup by digest goes through a small index instead; the upgrade
// converts such a table on the way.
Status Database::upgrade_to_version_2() {
  MK_ASSIGN_OR_RETURN(auto st, writer_->prepare("SELECT sql FROM sqlite_master WHERE type='table'"
                                                " AND name='messages'"));
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return corrupt("database " + name_ + ": no messages table");
  bool without_rowid = st.column_text(0).find("WITHOUT ROWID") != std::string::npos;
  st.reset();
  MK_LOG_INFO(
      "database {}: upgrading from format version 1 to 2, moving reference counts out"
      " of the messages table (once)",
      name_);
  // items.blob references messages: a table is replaced with foreign keys off (SQLite's
  // procedure for changing a table's definition), and they are back on whatever happens.
  MK_RETURN_IF_ERROR(writer_->exec("PRAGMA foreign_keys=OFF"));
  Status s = move_reference_counts(without_rowid);
  Status on = writer_->exec("PRAGMA foreign_keys=ON");
  if (!s.is_ok()) return s;
  MK_RETURN_IF_ERROR(on);
  MK_LOG_INFO("database {}: now format version 2", name_);
  return Status::ok();
}

Status Database::move_reference_counts(bool without_rowid) {
  SqliteTransaction tx(writer_.get());
  MK_RETURN_IF_ERROR(tx.begin());
  MK_RETURN_IF_ERROR(writer_->exec(kMessageRefsTable));
  MK_RETURN_IF_ERROR(writer_->exec("INSERT INTO message_refs SELECT blob, refs FROM messages"));
  if (without_rowid) {
    MK_RETURN_IF_ERROR(writer_->exec(std::string("CREATE TABLE messages_new") + kMessagesColumns));
    MK_RETURN_IF_ERROR(writer_->exec(R"sql(
INSERT INTO messages_new(blob, size, stored_size, info, data)
  SELECT blob, size, stored_size, info, data FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
)sql"));
  } else {
    // Keeps the rowids, which dav_resources.message_row names.
    MK_RETURN_IF_ERROR(writer_->exec("ALTER TABLE messages DROP COLUMN refs"));
  }
  MK_RETURN_IF_ERROR(writer_->exec("UPDATE meta SET value='2' WHERE key='format_version'"));
  return tx.commit();
}

void Database::committer_loop() {
  std::vector<PendingWrite*> batch;
  while (true) {
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    bool committed = commit_batch(batch);
    {
      std::lock_guard lock(mu_);
      stats_.transactions += batch.size();
      if (committed) stats_.commits += 1;
      for (auto* p : batch) p->done = true;
    }
    done_cv_.notify_all();
    batch.clear();
  }
}

void Database::begin_bulk_load() {
  bulk_wanted_ = true;
}

Status Database::end_bulk_load() {
  bulk_wanted_ = false;
  // The committer switches back before this (empty) transaction; see commit_batch.
  return write([](WriteTx&) { return Status::ok(); });
}

// Back to synchronous=FULL after a bulk load, then every frame the WAL holds is copied into
// the database file by a checkpoint, which with FULL syncs the WAL before and the file after.
// (A commit alone would not do: an empty transaction writes no frame and syncs nothing.)
Status Database::leave_bulk_load() {
  MK_RETURN_IF_ERROR(writer_->exec("PRAGMA synchronous=FULL; PRAGMA cache_size=-2000"));
  // SQLite answers busy at once while the checkpointer thread runs a checkpoint of its own
  // (every 200 ms, for milliseconds): tried again for up to 30 s.
  for (int attempt = 0; attempt < 3000; ++attempt) {
    MK_ASSIGN_OR_RETURN(auto st, writer_->prepare("PRAGMA wal_checkpoint(TRUNCATE)"));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (row && st.column_int(0) == 0) return Status::ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return io_error("database " + name_ + ": the bulk-loaded pages could not be checkpointed");
}

bool Database::commit_batch(const std::vector<PendingWrite*>& batch) {
  if (bool want = bulk_wanted_.load(); want != bulk_applied_) {
    // Outside any transaction (SQLite refuses to change the safety level inside one).
    Status s = want ? writer_->exec("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144")
                    : leave_bulk_load();
    if (s.is_ok()) {
      bulk_applied_ = want;
    } else {
      for (auto* p : batch) p->result = s;
      return false;
    }
  }
  std::set<std::string> dirs;
  for (auto* p : batch) dirs.insert(p->sync_dirs.begin(), p->sync_dirs.end());
  Status batch_status = blobs_.sync_dirs(dirs);
  if (batch_status.is_ok()) batch_status = writer_->exec("BEGIN IMMEDIATE");
  if (!batch_status.is_ok()) {
    for (auto* p : batch) p->result = batch_status;
    return false;
  }
  bool any_ok = false;
  WriteTx tx(*writer_, now_ms());
  for (auto* p : batch) {
    Status s = writer_->exec("SAVEPOINT w");
    if (s.is_ok()) {
      // A closure that throws fails alone; the others in the batch still commit.
      try {
        s = (*p->fn)(tx);
      } catch (const std::exception& e) {
        s = temporary(std::string("write failed: ") + e.what());
      }
    }
    if (s.is_ok()) {
      s = writer_->exec("RELEASE w");
      any_ok = any_ok || s.is_ok();
    } else {
      (void)writer_->exec("ROLLBACK TO w");
      (void)writer_->exec("RELEASE w");
    }
    p->result = s;
  }
  // The journal head is kept in meta too, so a lost tail of the journal is detectable.
  Status c = any_ok ? record_journal_head() : Status::ok();
  if (c.is_ok()) c = writer_->exec("COMMIT");
  if (!c.is_ok()) {
    MK_LOG_ERROR("database {}: group commit failed: {}", name_, c.to_string());
    (void)writer_->exec("ROLLBACK");
    for (auto* p : batch)
      if (p->result.is_ok()) p->result = c;
    return false;
  }
  return any_ok;
}

Status Database::record_journal_head() {
  MK_ASSIGN_OR_RETURN(
      auto st,
      writer_->prepare(
          "INSERT OR REPLACE INTO meta(key, value) SELECT 'journal_head', seq || ':' || hex(hash)"
          " FROM journal ORDER BY seq DESC LIMIT 1"));
  return st.run();
}

void Database::checkpointer_loop() {
  // Its own connection: a PASSIVE checkpoint copies committed WAL frames into the database
  // file without blocking the committer, every 200 ms while there is work.
  auto db = SqliteDb::open(sqlite_path(), false);
  if (!db.is_ok()) {
    MK_LOG_ERROR("database {}: no checkpoint connection: {}", name_, db.status().to_string());
    return;
  }
  // A PASSIVE checkpoint never makes writers wait, but under a steady stream of commits the
  // log is never found fully copied at the start of a write, so SQLite keeps appending to it
  // (seen: a 5.7 GB WAL while a store was being filled). Past kWalRestartBytes the log is
  // truncated with a TRUNCATE checkpoint, which waits at most kWalRestartWaitMs for the
  // writer and old readers (a long backup read may hold it off; then it is tried again).
  (void)(*db)->exec("PRAGMA busy_timeout=" + std::to_string(kWalRestartWaitMs));
  std::string wal_path = sqlite_path() + "-wal";
  std::unique_lock lock(mu_);
  uint64_t seen = stats_.commits;
  while (!stopping_) {
    checkpoint_cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (stopping_ || stats_.commits == seen) continue;
    seen = stats_.commits;
    lock.unlock();
    Status s = (*db)->exec("PRAGMA wal_checkpoint(PASSIVE)");
    if (!s.is_ok()) MK_LOG_WARN("database {}: checkpoint failed: {}", name_, s.to_string());
    auto wal_size = fs_.file_size(wal_path);
    if (wal_size.is_ok() && *wal_size > kWalRestartBytes) {
      Status t = (*db)->exec("PRAGMA wal_checkpoint(TRUNCATE)");
      if (!t.is_ok())
        MK_LOG_DEBUG("database {}: WAL truncation postponed: {}", name_, t.to_string());
    }
    lock.lock();
  }
}

GroupCommitStats Database::commit_stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

Result<std::unique_ptr<SqliteDb>> Database::acquire_reader() {
  {
    std::lock_guard lock(readers_mu_);
    if (!readers_.empty()) {
      auto db = std::move(readers_.back());
      readers_.pop_back();
      return db;
    }
  }
  MK_ASSIGN_OR_RETURN(auto db, SqliteDb::open(sqlite_path(), false));
  // The server's readers map the file: IMAP walks the parse caches of thousands of messages
  // per command, and through mmap those pages come from the shared page cache instead of a
  // pread each (and no per-connection copy in SQLite's own cache).
  if (int64_t bytes = g_reader_mmap_bytes.load(); bytes > 0)
    MK_RETURN_IF_ERROR(db->exec("PRAGMA mmap_size=" + std::to_string(bytes)));
  return db;
}

void Database::release_reader(std::unique_ptr<SqliteDb> db) {
  std::lock_guard lock(readers_mu_);
  if (readers_.size() < kMaxReaders) readers_.push_back(std::move(db));
}

// Runs `fn` inside BEGIN ... COMMIT on `db` (one consistent snapshot).
// BEGIN and COMMIT go through the connection's statement cache: every read pays for them.
static Status in_read_transaction(SqliteDb& db, const std::function<Status(SqliteDb&)>& fn) {
  auto run = [&db](const char* sql) -> Status {
    MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
    return st.run();
  };
  Status s = run("BEGIN");
  if (s.is_ok()) {
    s = fn(db);
    Status e = run("COMMIT");
    if (s.is_ok()) s = e;
  }
  return s;
}

void set_reader_mmap_bytes(int64_t bytes) {
  g_reader_mmap_bytes.store(bytes);
}

Status Database::read_bulk(const std::function<Status(SqliteDb&)>& fn) {
  MK_ASSIGN_OR_RETURN(auto db, SqliteDb::open(sqlite_path(), false));
  // Room for every interior page of the message table (a few MB per GB of mail), so the
  // lookups of a bulk read do not go back to the file for the upper levels of the tree.
  MK_RETURN_IF_ERROR(db->exec("PRAGMA cache_size=-65536"));
  return in_read_transaction(*db, fn);
}

Status Database::read(const std::function<Status(SqliteDb&)>& fn) {
  MK_ASSIGN_OR_RETURN(auto db, acquire_reader());
  Status s = in_read_transaction(*db, fn);
  release_reader(std::move(db));
  return s;
}

}  // namespace mailark
