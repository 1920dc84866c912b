// Directory implementation over its own SQLite file.
#include "directory/directory.h"

#include <algorithm>
#include <cctype>

#include "base/time.h"
#include "directory/password.h"
#include "storage/sqlite.h"

namespace mailark {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

constexpr const char* kUserColumns = "guid, address, domain, database, quota_bytes, created_ms";

User row_to_user(const SqliteStatement& st) {
  User u;
  u.guid = Guid::from_bytes(st.column_blob(0)).value_or(Guid{});
  u.address = st.column_text(1);
  u.domain = st.column_text(2);
  u.database = st.column_text(3);
  u.quota_bytes = static_cast<uint64_t>(st.column_int(4));
  u.created_ms = st.column_int(5);
  return u;
}

}  // namespace

Result<std::string> normalize_domain(std::string_view domain_in) {
  std::string d = lower(domain_in);
  if (d.empty() || d.size() > 253) return invalid("domain must have 1 to 253 characters");
  size_t label = 0;
  for (size_t i = 0; i <= d.size(); ++i) {
    if (i == d.size() || d[i] == '.') {
      if (label == 0) return invalid("domain " + d + " has an empty label");
      if (label > 63) return invalid("domain " + d + " has a label longer than 63");
      if (d[i - 1] == '-' || d[i - label] == '-')
        return invalid("domain label may not start or end with '-'");
      label = 0;
      continue;
    }
    char c = d[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-'))
      return invalid("domain " + d + " contains '" + std::string(1, c) + "'");
    ++label;
  }
  return d;
}

Result<std::string> normalize_address(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0) return invalid("address must look like name@domain");
  std::string local = lower(address.substr(0, at));
  if (local.size() > 64) return invalid("local part longer than 64 characters");
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string::npos)
    return invalid("local part has a misplaced dot");
  for (char c : local) {
    if (std::isalnum(static_cast<unsigned char>(c))) continue;
    if (std::string_view("!#$%&'*+/=?^_`{|}~.-").find(c) == std::string_view::npos)
      return invalid("local part contains '" + std::string(1, c) + "'");
  }
  MK_ASSIGN_OR_RETURN(std::string domain, normalize_domain(address.substr(at + 1)));
  return local + "@" + domain;
}

Status validate_database_name(std::string_view name) {
  if (name.empty() || name.size() > 64)
    return invalid("database name must have 1 to 64 characters");
  if (!std::isalnum(static_cast<unsigned char>(name[0])))
    return invalid("database name must start with a letter or digit");
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
      return invalid("database name may hold only a-z, 0-9, '-' and '_'");
  return Status::ok();
}

Directory::Directory(std::unique_ptr<SqliteDb> db) : db_(std::move(db)) {}
Directory::~Directory() = default;

Result<std::unique_ptr<Directory>> Directory::open(const std::string& path, bool create) {
  MK_ASSIGN_OR_RETURN(auto db, SqliteDb::open(path, create));
  if (create) {
    MK_RETURN_IF_ERROR(db->exec(R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('format_version', '1');
CREATE TABLE IF NOT EXISTS tenants(
  domain TEXT PRIMARY KEY,
  created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS databases(
  name TEXT PRIMARY KEY,
  created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users(
  address TEXT PRIMARY KEY,
  guid BLOB NOT NULL UNIQUE,
  domain TEXT NOT NULL REFERENCES tenants(domain),
  database TEXT NOT NULL REFERENCES databases(name),
  password_hash TEXT NOT NULL,
  quota_bytes INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS users_by_database ON users(database);
)sql"));
  }
  MK_ASSIGN_OR_RETURN(auto st, db->prepare("SELECT value FROM meta WHERE key='format_version'"));
  auto row = st.step();
  if (!row.is_ok() || !*row) return corrupt("directory " + path + " is not a mailark directory");
  if (st.column_text(0) != "1")
    return invalid("directory " + path + " has unsupported format version " + st.column_text(0));
  return std::unique_ptr<Directory>(new Directory(std::move(db)));
}

Status Directory::add_tenant(std::string_view domain_in) {
  MK_ASSIGN_OR_RETURN(std::string domain, normalize_domain(domain_in));
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare("INSERT INTO tenants VALUES (?, ?)"));
  st.bind(1, domain).bind(2, now_ms());
  Status s = st.run();
  if (s.code() == ErrorCode::kConflict) return exists_error("tenant " + domain + " already exists");
  return s;
}

Status Directory::remove_tenant(std::string_view domain_in) {
  MK_ASSIGN_OR_RETURN(std::string domain, normalize_domain(domain_in));
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(auto count, db_->prepare("SELECT COUNT(*) FROM users WHERE domain=?"));
  count.bind(1, domain);
  MK_ASSIGN_OR_RETURN(bool row, count.step());
  int64_t users = row ? count.column_int(0) : 0;
  count.reset();  // see add_user
  if (users > 0)
    return conflict("tenant " + domain + " still has " + std::to_string(users) +
                    " users; delete them first");
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare("DELETE FROM tenants WHERE domain=?"));
  st.bind(1, domain);
  MK_RETURN_IF_ERROR(st.run());
  if (db_->changes() == 0) return not_found("no tenant " + domain);
  return Status::ok();
}

Result<std::vector<Tenant>> Directory::tenants() {
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "SELECT t.domain, t.created_ms, (SELECT COUNT(*) FROM users u WHERE u.domain=t.domain)"
          " FROM tenants t ORDER BY t.domain"));
  std::vector<Tenant> out;
  while (true) {
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back({st.column_text(0), st.column_int(1), st.column_int(2)});
  }
  return out;
}

Status Directory::add_database(std::string_view name) {
  MK_RETURN_IF_ERROR(validate_database_name(name));
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare("INSERT INTO databases VALUES (?, ?)"));
  st.bind(1, name).bind(2, now_ms());
  Status s = st.run();
  if (s.code() == ErrorCode::kConflict)
    return exists_error("database " + std::string(name) + " already exists");
  return s;
}

Result<std::vector<DatabaseEntry>> Directory::databases() {
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(
      auto st,
      db_->prepare(
          "SELECT d.name, d.created_ms, (SELECT COUNT(*) FROM users u WHERE u.database=d.name)"
          " FROM databases d ORDER BY d.name"));
  std::vector<DatabaseEntry> out;
  while (true) {
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back({st.column_text(0), st.column_int(1), st.column_int(2)});
  }
  return out;
}

Result<std::string> Directory::least_loaded_database() {
  MK_ASSIGN_OR_RETURN(auto all, databases());
  if (all.empty()) return not_found("no database exists; create one with 'mailark db add NAME'");
  auto best = std::min_element(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.users < b.users || (a.users == b.users && a.name < b.name);
  });
  return best->name;
}

Result<User> Directory::add_user(std::string_view address_in, std::string_view password,
                                 uint64_t quota_bytes, std::string_view database) {
  MK_ASSIGN_OR_RETURN(std::string address, normalize_address(address_in));
  if (password.empty()) return invalid("password must not be empty");
  User u;
  u.address = address;
  u.domain = address.substr(address.find('@') + 1);
  u.guid = Guid::random();
  u.quota_bytes = quota_bytes;
  u.created_ms = now_ms();
  if (database.empty()) {
    MK_ASSIGN_OR_RETURN(u.database, least_loaded_database());
  } else {
    u.database = database;
  }
  MK_ASSIGN_OR_RETURN(std::string hash, hash_password(password));
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(auto t, db_->prepare("SELECT 1 FROM tenants WHERE domain=?"));
  t.bind(1, u.domain);
  MK_ASSIGN_OR_RETURN(bool tenant_exists, t.step());
  // Ends the read before the write: a read transaction left open would make the INSERT fail
  // at once with SQLITE_BUSY_SNAPSHOT when another process wrote in between.
  t.reset();
  if (!tenant_exists)
    return not_found("no tenant " + u.domain + "; create it with 'mailark tenant add " + u.domain +
                     "'");
  MK_ASSIGN_OR_RETURN(auto d, db_->prepare("SELECT 1 FROM databases WHERE name=?"));
  d.bind(1, u.database);
  MK_ASSIGN_OR_RETURN(bool db_exists, d.step());
  d.reset();
  if (!db_exists) return not_found("no database " + u.database);
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare("INSERT INTO users(address, guid, domain, database, "
                                            "password_hash, quota_bytes, created_ms)"
                                            " VALUES (?,?,?,?,?,?,?)"));
  st.bind(1, u.address)
      .bind_blob(2, u.guid.raw())
      .bind(3, u.domain)
      .bind(4, u.database)
      .bind(5, hash)
      .bind(6, static_cast<int64_t>(quota_bytes))
      .bind(7, u.created_ms);
  Status s = st.run();
  if (s.code() == ErrorCode::kConflict)
    return exists_error("user " + u.address + " already exists");
  MK_RETURN_IF_ERROR(s);
  return u;
}

Result<User> Directory::find_user(std::string_view address_in) {
  MK_ASSIGN_OR_RETURN(std::string address, normalize_address(address_in));
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(
      auto st, db_->prepare(std::string("SELECT ") + kUserColumns + " FROM users WHERE address=?"));
  st.bind(1, address);
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return not_found("no user " + address);
  return row_to_user(st);
}

Result<std::vector<User>> Directory::users(std::string_view domain) {
  std::lock_guard lock(mu_);
  std::string sql = std::string("SELECT ") + kUserColumns + " FROM users";
  if (!domain.empty()) sql += " WHERE domain=?";
  sql += " ORDER BY address";
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare(sql));
  if (!domain.empty()) st.bind(1, lower(domain));
  std::vector<User> out;
  while (true) {
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back(row_to_user(st));
  }
  return out;
}

Status Directory::remove_user(std::string_view address_in) {
  MK_ASSIGN_OR_RETURN(std::string address, normalize_address(address_in));
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare("DELETE FROM users WHERE address=?"));
  st.bind(1, address);
  MK_RETURN_IF_ERROR(st.run());
  if (db_->changes() == 0) return not_found("no user " + address);
  return Status::ok();
}

Status Directory::set_password(std::string_view address_in, std::string_view password) {
  MK_ASSIGN_OR_RETURN(std::string address, normalize_address(address_in));
  if (password.empty()) return invalid("password must not be empty");
  MK_ASSIGN_OR_RETURN(std::string hash, hash_password(password));
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare("UPDATE users SET password_hash=? WHERE address=?"));
  st.bind(1, hash).bind(2, address);
  MK_RETURN_IF_ERROR(st.run());
  if (db_->changes() == 0) return not_found("no user " + address);
  return Status::ok();
}

Status Directory::set_quota(std::string_view address_in, uint64_t quota_bytes) {
  MK_ASSIGN_OR_RETURN(std::string address, normalize_address(address_in));
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare("UPDATE users SET quota_bytes=? WHERE address=?"));
  st.bind(1, static_cast<int64_t>(quota_bytes)).bind(2, address);
  MK_RETURN_IF_ERROR(st.run());
  if (db_->changes() == 0) return not_found("no user " + address);
  return Status::ok();
}

Result<uint64_t> Directory::generation() {
  std::lock_guard lock(mu_);
  // data_version changes with other connections' commits, total_changes with this one's.
  MK_ASSIGN_OR_RETURN(auto st, db_->prepare("PRAGMA data_version"));
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return io_error("directory: PRAGMA data_version returned nothing");
  uint64_t others = static_cast<uint64_t>(st.column_int(0));
  uint64_t own = static_cast<uint64_t>(db_->total_changes());
  return (others << 32) ^ own;
}

Result<bool> Directory::authenticate(std::string_view address_in, std::string_view password) {
  auto address = normalize_address(address_in);
  if (!address.is_ok()) return false;
  std::string hash;
  {
    std::lock_guard lock(mu_);
    MK_ASSIGN_OR_RETURN(auto st, db_->prepare("SELECT password_hash FROM users WHERE address=?"));
    st.bind(1, *address);
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (row) hash = st.column_text(0);
  }
  // Hash even for unknown users so timing does not reveal which addresses exist.
  static const std::string kDummy = hash_password("mailark-dummy").value();
  bool ok = verify_password(password, hash.empty() ? kDummy : hash);
  return ok && !hash.empty();
}

}  // namespace mailark
