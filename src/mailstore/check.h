// `mailark check`: verifies one database end to end. SQLite's own integrity check, the
// journal hash chain, every blob against its SHA-256, and every cross-reference (items ->
// messages -> blobs, reference counts, usage counters, UID/MODSEQ counters, parse cache).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace mailark {

class Database;

struct CheckProblem {
  std::string location;  // "blob 3fa4...", "journal seq 17", "sqlite page 12", "item INBOX/42"
  std::string what;
};

struct CheckReport {
  std::vector<CheckProblem> problems;  // any entry makes the database fail the check
  std::vector<CheckProblem> notes;     // harmless findings (e.g. orphan blobs after a crash)
  uint64_t accounts = 0;
  uint64_t items = 0;
  uint64_t blobs = 0;
  uint64_t journal_records = 0;
  bool ok() const { return problems.empty(); }
};

// Runs every check on the database in `dir`, opening it read-only. Never throws away or
// repairs anything. A database that cannot be opened at all yields one problem.
CheckReport check_database(const std::string& dir, const std::string& name,
                           const std::function<void(const std::string&)>& progress = {});

struct DatabaseStats {
  uint64_t accounts = 0;
  uint64_t folders = 0;
  uint64_t items = 0;
  uint64_t bytes = 0;         // sum of item sizes
  uint64_t unique_bytes = 0;  // sum of distinct message sizes
  uint64_t stored_bytes = 0;  // blob files on disk (compressed)
  uint64_t journal_records = 0;
  int64_t last_seq = 0;
};
Result<DatabaseStats> database_stats(const std::string& dir);

}  // namespace mailark
