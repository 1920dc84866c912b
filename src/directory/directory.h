// The directory: tenants, users, credentials, quotas and the route user -> database. It
// lives in its own SQLite file apart from every database (invariant 6), so a lost database
// never takes the knowledge of who lived on it along. Schema: docs/formats/directory.md.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"

namespace mailark {

class SqliteDb;

struct Tenant {
  std::string domain;
  int64_t created_ms = 0;
  int64_t users = 0;
};

struct User {
  Guid guid;
  std::string address;  // lower case local@domain
  std::string domain;
  std::string database;
  uint64_t quota_bytes = 0;  // 0 = unlimited
  int64_t created_ms = 0;
};

struct DatabaseEntry {
  std::string name;
  int64_t created_ms = 0;
  int64_t users = 0;
};

// Lower-cases and validates "local@domain.tld": kInvalid with the reason when malformed.
Result<std::string> normalize_address(std::string_view address);
Result<std::string> normalize_domain(std::string_view domain);
// Database names: 1-64 of [a-z0-9_-], starting with a letter or digit.
Status validate_database_name(std::string_view name);

class Directory {
 public:
  // Opens `path`; creates the schema when `create`. Safe to share between processes.
  static Result<std::unique_ptr<Directory>> open(const std::string& path, bool create);
  ~Directory();

  Status add_tenant(std::string_view domain);
  // kConflict while the tenant still has users.
  Status remove_tenant(std::string_view domain);
  Result<std::vector<Tenant>> tenants();

  // Registers a database name; the caller creates its files.
  Status add_database(std::string_view name);
  Result<std::vector<DatabaseEntry>> databases();
  // The database with the fewest users (ties: first by name). kNotFound when there is none.
  Result<std::string> least_loaded_database();

  // Creates the user on `database` (or the least-loaded one when empty). The tenant of the
  // address's domain must exist.
  Result<User> add_user(std::string_view address, std::string_view password, uint64_t quota_bytes,
                        std::string_view database);
  Result<User> find_user(std::string_view address);
  Result<std::vector<User>> users(std::string_view domain = {});
  Status remove_user(std::string_view address);
  Status set_password(std::string_view address, std::string_view password);
  Status set_quota(std::string_view address, uint64_t quota_bytes);
  // True only for an existing user with that password.
  Result<bool> authenticate(std::string_view address, std::string_view password);
  // A value that differs after any change to the directory: a write through this object, or
  // a commit by another connection (admin commands run in processes of their own). It reads
  // no table, so a cache of lookups can check it on every use.
  Result<uint64_t> generation();

 private:
  explicit Directory(std::unique_ptr<SqliteDb> db);
  std::unique_ptr<SqliteDb> db_;
  std::mutex mu_;  // serializes use of the one connection
};

}  // namespace mailark
