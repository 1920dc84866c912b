// A database: the unit of failure, backup and restore. One SQLite file (WAL mode) holding
// accounts, folders, items, the parse cache and the journal, plus a content-addressed blob
// store. Writers share fsyncs through group commit; readers use pooled connections.
// Schema: docs/formats/database.md.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "os/file.h"
#include "storage/blob_store.h"
#include "storage/journal.h"
#include "storage/sqlite.h"

namespace mailark {

// 2: reference counts moved from `messages` to `message_refs` (docs/formats/database.md);
// a version 1 database is upgraded when it is opened.
inline constexpr int kDatabaseFormatVersion = 2;

// What a write sees: the shared write connection inside an open transaction.
class WriteTx {
 public:
  WriteTx(SqliteDb& db, int64_t time_ms) : db_(db), time_ms_(time_ms) {}
  SqliteDb& db() { return db_; }
  int64_t time_ms() const { return time_ms_; }
  // Appends a journal record with this transaction's time.
  Result<JournalRecord> journal(std::string op, const Guid& account, const Guid& item,
                                std::string payload);

 private:
  SqliteDb& db_;
  int64_t time_ms_;
};

struct GroupCommitStats {
  uint64_t transactions = 0;
  uint64_t commits = 0;  // each commit is one WAL fsync
};

class Database {
 public:
  // Creates the directory layout and schema at `dir` (must not exist yet).
  static Result<std::unique_ptr<Database>> create(FileSystem& fs, const std::string& dir,
                                                  const std::string& name);
  // Opens an existing database; kNotFound if absent, kCorrupt if it is not a mailark database.
  static Result<std::unique_ptr<Database>> open(FileSystem& fs, const std::string& dir,
                                                const std::string& name);
  ~Database();

  const std::string& name() const { return name_; }
  const std::string& dir() const { return dir_; }
  std::string sqlite_path() const { return dir_ + "/meta.sqlite"; }
  BlobStore& blobs() { return blobs_; }

  // Runs `fn` in a write transaction batched with concurrent writers (group commit). The
  // blob directories in `sync_dirs` are fsynced before the commit. Returns ok only once the
  // change is durable; if `fn` fails its changes are rolled back and the others still commit.
  Status write(const std::function<Status(WriteTx&)>& fn, std::set<std::string> sync_dirs = {});
  // For a database no one else can see yet (a restore building it under a private name):
  // until end_bulk_load(), commits do not fsync the WAL, and the writer caches more pages.
  // end_bulk_load() checkpoints everything into the database file with the fsyncs, so all
  // of it is durable when it returns. A crash in between loses the half-built database,
  // which is discarded anyway.
  void begin_bulk_load();
  Status end_bulk_load();

  // Runs `fn` on a read connection inside one read transaction (a consistent snapshot).
  Status read(const std::function<Status(SqliteDb&)>& fn);
  // read() on a connection of its own that does not map the file: for a long read of much of
  // the database (a backup), where mmap's readahead would pull in the bodies stored between
  // the metadata pages and page cache would fill with what is read once. (A backup's
  // snapshot maps it for dense reads; see DatabaseSnapshot::map_file.)
  Status read_bulk(const std::function<Status(SqliteDb&)>& fn);

  GroupCommitStats commit_stats() const;

 private:
  Database(FileSystem& fs, std::string dir, std::string name);
  Status open_connections(bool create);
  Status upgrade_to_version_2();
  Status move_reference_counts(bool without_rowid);
  Status add_resource_item_columns();
  Status record_journal_head();
  Result<std::unique_ptr<SqliteDb>> acquire_reader();
  void release_reader(std::unique_ptr<SqliteDb> db);

  struct PendingWrite;
  void committer_loop();
  Status leave_bulk_load();  // committer thread
  // Commits one batch on writer_ (results in each PendingWrite); true if something committed.
  bool commit_batch(const std::vector<PendingWrite*>& batch);

  struct PendingWrite {
    const std::function<Status(WriteTx&)>* fn;
    std::set<std::string> sync_dirs;
    Status result = Status::ok();
    bool done = false;
  };

  FileSystem& fs_;
  std::string dir_;
  std::string name_;
  BlobStore blobs_;
  std::unique_ptr<SqliteDb> writer_;  // used only by the committer thread
  // begin_bulk_load() asks for it; the committer applies it between transactions.
  std::atomic<bool> bulk_wanted_{false};
  bool bulk_applied_ = false;  // committer thread only

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<PendingWrite*> queue_;
  bool stopping_ = false;
  GroupCommitStats stats_;
  std::thread committer_;
  // WAL checkpoints run here instead of inside a commit, so a batch never waits for one.
  std::thread checkpointer_;
  std::condition_variable checkpoint_cv_;
  void checkpointer_loop();

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<SqliteDb>> readers_;
};

// How much of each database file pooled read connections map (0: none, the default). The
// server maps (IMAP walks parse caches of thousands of messages per command); one-shot
// admin commands do not, since mmap's readahead reads far more than they need from a cold
// cache. Set before databases are opened.
void set_reader_mmap_bytes(int64_t bytes);

// Creates the mail store tables on a fresh database (also used by tests and restore).
Status create_database_schema(SqliteDb& db);

}  // namespace mailark
