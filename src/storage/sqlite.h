// A thin RAII layer over SQLite: one connection, prepared statements, errors as Status.
// A connection is used by one thread at a time; the caller serializes access.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace mailark {

class SqliteStatement;

class SqliteDb {
 public:
  // Opens (creating if `create`) the file, in WAL mode with synchronous=FULL, foreign keys on
  // and a busy timeout, so other processes (admin CLI, server) can share it.
  static Result<std::unique_ptr<SqliteDb>> open(const std::string& path, bool create,
                                                bool read_only = false);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  Status exec(std::string_view sql);
  // Prepared statements are cached per connection: a statement whose SQL was prepared before
  // and is not in use is reset and handed out again instead of being compiled anew.
  Result<SqliteStatement> prepare(std::string_view sql);
  int64_t last_insert_rowid() const;
  int changes() const;
  // Rows changed by this connection since it opened (inserts, updates, deletes).
  int64_t total_changes() const;
  const std::string& path() const { return path_; }
  sqlite3* raw() { return db_; }
  Status error(std::string_view what) const;

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  friend class SqliteStatement;
  void give_back(const std::string& sql, sqlite3_stmt* stmt);

  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  sqlite3* db_;
  std::string path_;
  std::map<std::string, Cached, std::less<>> cache_;
};

// A prepared statement; bind with 1-based indexes, then step().
class SqliteStatement {
 public:
  SqliteStatement(SqliteDb* db, sqlite3_stmt* stmt, const std::string* cached_sql = nullptr)
      : db_(db), stmt_(stmt), cached_sql_(cached_sql) {}
  SqliteStatement(SqliteStatement&& other) noexcept;
  SqliteStatement& operator=(SqliteStatement&&) = delete;
  ~SqliteStatement();

  SqliteStatement& bind(int index, int64_t value);
  SqliteStatement& bind(int index, std::string_view text);
  // The same without a copy: `text` must stay as it is until the statement is reset,
  // rebound or destroyed.
  SqliteStatement& bind_static(int index, std::string_view text);
  SqliteStatement& bind_blob(int index, std::string_view bytes);
  SqliteStatement& bind_null(int index);

  // True when a row is available, false when done; errors become a Status.
  Result<bool> step();
  // Steps to completion, for statements that return no rows.
  Status run();
  void reset();

  int64_t column_int(int index) const;
  std::string column_text(int index) const;
  std::string column_blob(int index) const;
  // The same bytes without a copy; valid until the next step() or reset().
  std::string_view column_blob_view(int index) const;
  bool column_is_null(int index) const;

 private:
  SqliteDb* db_;
  sqlite3_stmt* stmt_;
  const std::string* cached_sql_;  // key in the connection's cache, or null if not cached
};

// BEGIN IMMEDIATE ... COMMIT, rolled back if commit() is not reached.
class SqliteTransaction {
 public:
  explicit SqliteTransaction(SqliteDb* db) : db_(db) {}
  ~SqliteTransaction();
  Status begin();
  Status commit();

 private:
  SqliteDb* db_;
  bool open_ = false;
};

}  // namespace mailark
