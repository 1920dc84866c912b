// The journal of one database: an ordered, hash-chained log of every change, appended in the
// same SQLite transaction as the change itself (invariant 4). Record format and chain rule:
// docs/formats/journal.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"

namespace mailark {

class SqliteDb;

struct JournalRecord {
  int64_t seq = 0;      // 1, 2, 3, ... without gaps
  int64_t time_ms = 0;  // wall clock when the change was made
  std::string op;       // "deliver", "append", "flags", "expunge", "folder.create", ...
  Guid account;         // zero for database-wide records
  Guid item;            // zero when the change is not about one item
  std::string payload;  // JSON with what a replay needs
  Digest prev_hash{};   // hash of record seq-1 (zeros for the first record)
  Digest hash{};        // SHA-256 over all fields above, see compute_hash
};

namespace journal {

Status create_schema(SqliteDb& db);

// SHA-256 of the canonical encoding of a record's fields (everything but `hash`).
Digest compute_hash(const JournalRecord& record);

// Appends a record inside the caller's open write transaction; fills seq, prev_hash, hash.
Result<JournalRecord> append(SqliteDb& db, JournalRecord record);

// Inserts a record exactly as given (seq, hashes and all), inside the caller's open write
// transaction: a restored database takes the source's records verbatim.
Status insert(SqliteDb& db, const JournalRecord& record);

// Highest sequence number, 0 for an empty journal.
Result<int64_t> last_seq(SqliteDb& db);
Result<int64_t> count(SqliteDb& db);

// Records with seq > after, at most `limit`, in order.
Result<std::vector<JournalRecord>> read(SqliteDb& db, int64_t after, int64_t limit);

// Walks the chain and calls `problem` for every record that breaks it (a gap, a wrong
// prev_hash, a hash that does not match its fields). Returns the number of records read.
// With `after` > 0 only the records after it are walked: record `after` must still hash to
// `after_hash` (what an earlier walk ended on) and the next one must chain to it.
Result<int64_t> verify_chain(SqliteDb& db,
                             const std::function<void(int64_t seq, const std::string&)>& problem,
                             int64_t after = 0, const Digest& after_hash = Digest{});

}  // namespace journal
}  // namespace mailark
