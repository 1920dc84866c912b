// Journal: SQLite table `journal`, one row per record, chained by SHA-256.
#include "storage/journal.h"

#include "storage/sqlite.h"

namespace mailark::journal {
namespace {

void put_u64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_field(std::string& out, std::string_view bytes) {
  put_u64(out, bytes.size());
  out.append(bytes);
}

JournalRecord row_to_record(const SqliteStatement& st) {
  JournalRecord r;
  r.seq = st.column_int(0);
  r.time_ms = st.column_int(1);
  r.op = st.column_text(2);
  r.account = Guid::from_bytes(st.column_blob(3)).value_or(Guid{});
  r.item = Guid::from_bytes(st.column_blob(4)).value_or(Guid{});
  r.payload = st.column_blob(5);
  r.prev_hash = digest_from_bytes(st.column_blob(6)).value_or(Digest{});
  r.hash = digest_from_bytes(st.column_blob(7)).value_or(Digest{});
  return r;
}

constexpr const char* kColumns = "seq, time_ms, op, account, item, payload, prev_hash, hash";

}  // namespace

Status create_schema(SqliteDb& db) {
  return db.exec(
      "CREATE TABLE IF NOT EXISTS journal("
      " seq INTEGER PRIMARY KEY,"
      " time_ms INTEGER NOT NULL,"
      " op TEXT NOT NULL,"
      " account BLOB NOT NULL,"
      " item BLOB NOT NULL,"
      " payload BLOB NOT NULL,"
      " prev_hash BLOB NOT NULL,"
      " hash BLOB NOT NULL)");
}

Digest compute_hash(const JournalRecord& r) {
  std::string buf = "mailark-journal-v1";
  buf.append(as_bytes(r.prev_hash));
  put_u64(buf, static_cast<uint64_t>(r.seq));
  put_u64(buf, static_cast<uint64_t>(r.time_ms));
  put_field(buf, r.op);
  buf.append(r.account.raw());
  buf.append(r.item.raw());
  put_field(buf, r.payload);
  return sha256(buf);
}

Result<JournalRecord> append(SqliteDb& db, JournalRecord record) {
  MK_ASSIGN_OR_RETURN(auto last,
                      db.prepare("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1"));
  MK_ASSIGN_OR_RETURN(bool has_row, last.step());
  record.seq = 1;
  record.prev_hash = Digest{};
  if (has_row) {
    record.seq = last.column_int(0) + 1;
    auto prev = digest_from_bytes(last.column_blob(1));
    if (!prev) return corrupt("journal record " + std::to_string(record.seq - 1) + " has no hash");
    record.prev_hash = *prev;
  }
  record.hash = compute_hash(record);
  MK_RETURN_IF_ERROR(insert(db, record));
  return record;
}

Status insert(SqliteDb& db, const JournalRecord& record) {
  MK_ASSIGN_OR_RETURN(auto ins, db.prepare("INSERT INTO journal VALUES (?,?,?,?,?,?,?,?)"));
  ins.bind(1, record.seq)
      .bind(2, record.time_ms)
      .bind(3, record.op)
      .bind_blob(4, record.account.raw())
      .bind_blob(5, record.item.raw())
      .bind_blob(6, record.payload)
      .bind_blob(7, as_bytes(record.prev_hash))
      .bind_blob(8, as_bytes(record.hash));
  return ins.run();
}

Result<int64_t> last_seq(SqliteDb& db) {
  MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT COALESCE(MAX(seq), 0) FROM journal"));
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  return row ? st.column_int(0) : 0;
}

Result<int64_t> count(SqliteDb& db) {
  MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT COUNT(*) FROM journal"));
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  return row ? st.column_int(0) : 0;
}

Result<std::vector<JournalRecord>> read(SqliteDb& db, int64_t after, int64_t limit) {
  MK_ASSIGN_OR_RETURN(auto st, db.prepare(std::string("SELECT ") + kColumns +
                                          " FROM journal WHERE seq > ? ORDER BY seq LIMIT ?"));
  st.bind(1, after).bind(2, limit);
  std::vector<JournalRecord> out;
  while (true) {
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    out.push_back(row_to_record(st));
  }
  return out;
}

Result<int64_t> verify_chain(SqliteDb& db,
                             const std::function<void(int64_t, const std::string&)>& problem,
                             int64_t after, const Digest& after_hash) {
  MK_ASSIGN_OR_RETURN(auto st, db.prepare(std::string("SELECT ") + kColumns +
                                          " FROM journal WHERE seq >= ? ORDER BY seq"));
  st.bind(1, after);
  int64_t n = 0;
  int64_t expect_seq = 0;
  Digest prev{};
  bool first = true;
  if (after > 0) {
    // Record `after` itself: unchanged since the earlier walk; the rest chains from it.
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    JournalRecord start = row ? row_to_record(st) : JournalRecord{};
    if (start.seq != after || start.hash != after_hash || compute_hash(start) != start.hash)
      problem(after, "record differs from the one an earlier verification ended on");
    prev = after_hash;
    expect_seq = after + 1;
    first = false;
  }
  while (true) {
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    JournalRecord r = row_to_record(st);
    ++n;
    if (first && r.seq == 1 && r.prev_hash != Digest{})
      problem(r.seq, "broken chain: first record does not start from the zero hash");
    if (!first && r.seq != expect_seq)
      problem(r.seq, "gap in journal: expected seq " + std::to_string(expect_seq));
    if (!first && r.prev_hash != prev)
      problem(r.seq, "broken chain: prev_hash does not match the hash of record " +
                         std::to_string(r.seq - 1));
    if (compute_hash(r) != r.hash) problem(r.seq, "record hash does not match its contents");
    first = false;
    prev = r.hash;
    expect_seq = r.seq + 1;
  }
  return n;
}

}  // namespace mailark::journal
