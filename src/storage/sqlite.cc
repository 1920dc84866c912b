// SQLite wrapper implementation.
#include "storage/sqlite.h"

#include <sqlite3.h>

namespace mailark {

Result<std::unique_ptr<SqliteDb>> SqliteDb::open(const std::string& path, bool create,
                                                 bool read_only) {
  sqlite3* db = nullptr;
  int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (create && !read_only) flags |= SQLITE_OPEN_CREATE;
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    if (rc == SQLITE_CANTOPEN) return not_found("cannot open database " + path + ": " + msg);
    return io_error("cannot open database " + path + ": " + msg);
  }
  std::unique_ptr<SqliteDb> out(new SqliteDb(db, path));
  sqlite3_busy_timeout(db, 30000);
  sqlite3_extended_result_codes(db, 1);
  if (!read_only) {
    MK_RETURN_IF_ERROR(out->exec("PRAGMA journal_mode=WAL"));
  }
  // FULL: every commit fsyncs the WAL; an acknowledgement is durable (invariant 1).
  MK_RETURN_IF_ERROR(out->exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON"));
  return out;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, c] : cache_) sqlite3_finalize(c.stmt);
  sqlite3_close_v2(db_);
}

void SqliteDb::give_back(const std::string& sql, sqlite3_stmt* stmt) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  auto it = cache_.find(sql);
  if (it != cache_.end() && it->second.stmt == stmt)
    it->second.in_use = false;
  else
    sqlite3_finalize(stmt);
}

Status SqliteDb::error(std::string_view what) const {
  int code = sqlite3_errcode(db_);
  std::string msg = std::string(what) + " (" + path_ + "): " + sqlite3_errmsg(db_);
  int primary = code & 0xff;
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return corrupt(msg);
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return temporary(msg);
  if (primary == SQLITE_CONSTRAINT) return conflict(msg);
  if (primary == SQLITE_FULL) return io_error(msg);
  return io_error(msg);
}

Status SqliteDb::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    Status st = error("exec");
    sqlite3_free(err);
    return st;
  }
  return Status::ok();
}

Result<SqliteStatement> SqliteDb::prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return SqliteStatement(this, it->second.stmt, &it->first);
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return error("prepare " + std::string(sql.substr(0, 60)));
  if (it == cache_.end()) {
    auto [pos, inserted] = cache_.emplace(std::string(sql), Cached{stmt, true});
    return SqliteStatement(this, stmt, &pos->first);
  }
  return SqliteStatement(this, stmt);  // the cached one is busy: a private copy
}

int64_t SqliteDb::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}
int SqliteDb::changes() const {
  return sqlite3_changes(db_);
}
int64_t SqliteDb::total_changes() const {
  return sqlite3_total_changes64(db_);
}

SqliteStatement::SqliteStatement(SqliteStatement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), cached_sql_(other.cached_sql_) {
  other.stmt_ = nullptr;
}
SqliteStatement::~SqliteStatement() {
  if (!stmt_) return;
  if (cached_sql_)
    db_->give_back(*cached_sql_, stmt_);
  else
    sqlite3_finalize(stmt_);
}

SqliteStatement& SqliteStatement::bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}
SqliteStatement& SqliteStatement::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}
SqliteStatement& SqliteStatement::bind_static(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  return *this;
}
SqliteStatement& SqliteStatement::bind_blob(int index, std::string_view bytes) {
  sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}
SqliteStatement& SqliteStatement::bind_null(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Result<bool> SqliteStatement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return db_->error("step");
}

Status SqliteStatement::run() {
  while (true) {
    auto r = step();
    if (!r.is_ok()) return r.status();
    if (!*r) return Status::ok();
  }
}

void SqliteStatement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t SqliteStatement::column_int(int index) const {
  return sqlite3_column_int64(stmt_, index);
}
std::string SqliteStatement::column_text(int index) const {
  const unsigned char* t = sqlite3_column_text(stmt_, index);
  if (!t) return {};
  return std::string(reinterpret_cast<const char*>(t),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, index)));
}
std::string SqliteStatement::column_blob(int index) const {
  const void* b = sqlite3_column_blob(stmt_, index);
  if (!b) return {};
  return std::string(static_cast<const char*>(b),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, index)));
}
std::string_view SqliteStatement::column_blob_view(int index) const {
  const void* b = sqlite3_column_blob(stmt_, index);
  if (!b) return {};
  return {static_cast<const char*>(b), static_cast<size_t>(sqlite3_column_bytes(stmt_, index))};
}
bool SqliteStatement::column_is_null(int index) const {
  return sqlite3_column_type(stmt_, index) == SQLITE_NULL;
}

SqliteTransaction::~SqliteTransaction() {
  if (open_) (void)db_->exec("ROLLBACK");
}
Status SqliteTransaction::begin() {
  MK_RETURN_IF_ERROR(db_->exec("BEGIN IMMEDIATE"));
  open_ = true;
  return Status::ok();
}
Status SqliteTransaction::commit() {
  Status s = db_->exec("COMMIT");
  if (s.is_ok()) open_ = false;
  return s;
}

}  // namespace mailark
