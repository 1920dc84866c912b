// Mail store implementation: SQL over the database schema (docs/formats/database.md),
// journal payloads in JSON, in-process change notification.
#include "mailstore/mail_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/log.h"
#include "base/time.h"
#include "mailstore/snapshot.h"
#include "mailstore/store_sql.h"
#include "storage/blob_store.h"
#include "storage/database.h"

namespace mailark {

using namespace store_sql;

const SpecialFolder kDefaultFolders[6] = {{"INBOX", ""},          {"Sent", "\\Sent"},
                                          {"Drafts", "\\Drafts"}, {"Trash", "\\Trash"},
                                          {"Junk", "\\Junk"},     {"Archive", "\\Archive"}};

namespace store_sql {

bool has_flag(const std::vector<std::string>& flags, std::string_view flag) {
  for (const auto& f : flags)
    if (f.size() == flag.size() && std::equal(f.begin(), f.end(), flag.begin(), [](char a, char b) {
          return std::tolower(a) == std::tolower(b);
        }))
      return true;
  return false;
}

Result<FolderRow> load_folder(SqliteDb& db, int64_t account_id, std::string_view name) {
  MK_ASSIGN_OR_RETURN(auto st,
                      db.prepare("SELECT id, guid, name, uidvalidity, uidnext, highestmodseq,"
                                 " kind FROM folders WHERE account_id=? AND name=?"));
  st.bind(1, account_id).bind(2, name);
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return not_found("folder " + std::string(name) + " does not exist");
  FolderRow f;
  f.id = st.column_int(0);
  f.guid = Guid::from_bytes(st.column_blob(1)).value_or(Guid{});
  f.name = st.column_text(2);
  f.uidvalidity = static_cast<uint32_t>(st.column_int(3));
  f.uidnext = static_cast<uint32_t>(st.column_int(4));
  f.highestmodseq = static_cast<uint64_t>(st.column_int(5));
  f.kind = st.column_text(6);
  return f;
}

Status save_folder_counters(SqliteDb& db, const FolderRow& f) {
  MK_ASSIGN_OR_RETURN(auto st,
                      db.prepare("UPDATE folders SET uidnext=?, highestmodseq=? WHERE id=?"));
  st.bind(1, static_cast<int64_t>(f.uidnext))
      .bind(2, static_cast<int64_t>(f.highestmodseq))
      .bind(3, f.id);
  return st.run();
}

Result<uint32_t> next_uidvalidity(SqliteDb& db, int64_t account_id, int64_t time_ms) {
  MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT last_uidvalidity FROM accounts WHERE id=?"));
  st.bind(1, account_id);
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return not_found("account vanished");
  int64_t last = st.column_int(0);
  // Time-based so a recreated account or folder never repeats an earlier value.
  int64_t v = std::max<int64_t>(time_ms / 1000, last + 1);
  if (v > UINT32_MAX) v = last + 1;
  if (v > UINT32_MAX) return conflict("uidvalidity space exhausted");
  MK_ASSIGN_OR_RETURN(auto up, db.prepare("UPDATE accounts SET last_uidvalidity=? WHERE id=?"));
  up.bind(1, v).bind(2, account_id);
  MK_RETURN_IF_ERROR(up.run());
  return static_cast<uint32_t>(v);
}

Result<FolderRow> insert_folder(WriteTx& tx, const Account& account, const std::string& name,
                                std::string_view special_use, std::string_view kind) {
  FolderRow f;
  f.guid = Guid::random();
  f.name = name;
  MK_ASSIGN_OR_RETURN(f.uidvalidity, next_uidvalidity(tx.db(), account.id, tx.time_ms()));
  f.uidnext = 1;
  f.highestmodseq = 1;
  MK_ASSIGN_OR_RETURN(
      auto st,
      tx.db().prepare(
          "INSERT INTO folders(account_id, guid, name, kind, special_use, subscribed, uidvalidity,"
          " uidnext, highestmodseq, created_ms) VALUES (?,?,?,?,?,1,?,?,?,?)"));
  st.bind(1, account.id).bind_blob(2, f.guid.raw()).bind(3, name).bind(4, kind);
  if (special_use.empty())
    st.bind_null(5);
  else
    st.bind(5, special_use);
  st.bind(6, static_cast<int64_t>(f.uidvalidity))
      .bind(7, static_cast<int64_t>(f.uidnext))
      .bind(8, static_cast<int64_t>(f.highestmodseq))
      .bind(9, tx.time_ms());
  Status s = st.run();
  if (s.code() == ErrorCode::kConflict) return exists_error("folder " + name + " already exists");
  MK_RETURN_IF_ERROR(s);
  f.id = tx.db().last_insert_rowid();
  json payload = {{"folder", f.guid.hex()},
                  {"name", name},
                  {"special_use", special_use},
                  {"uidvalidity", f.uidvalidity}};
  // Absent means "mail" (records written before calendars and address books).
  if (kind != "mail") payload["kind"] = kind;
  MK_ASSIGN_OR_RETURN(auto rec, tx.journal("folder.create", account.guid, Guid{}, payload.dump()));
  (void)rec;
  return f;
}

ItemInfo row_to_item(const SqliteStatement& st, int first) {
  ItemInfo it;
  it.uid = static_cast<uint32_t>(st.column_int(first));
  it.guid = Guid::from_bytes(st.column_blob(first + 1)).value_or(Guid{});
  if (!st.column_is_null(first + 2)) it.ingress_id = Guid::from_bytes(st.column_blob(first + 2));
  it.blob = digest_from_bytes(st.column_blob(first + 3)).value_or(Digest{});
  it.size = static_cast<uint64_t>(st.column_int(first + 4));
  it.internal_date_ms = st.column_int(first + 5);
  it.flags = split_flags(st.column_text(first + 6));
  it.modseq = static_cast<uint64_t>(st.column_int(first + 7));
  return it;
}
const char* const kItemColumns =
    "uid, guid, ingress_id, blob, size, internal_date_ms, flags, modseq";

Status adjust_usage(SqliteDb& db, int64_t account_id, int64_t bytes, int64_t items) {
  MK_ASSIGN_OR_RETURN(
      auto st,
      db.prepare(
          "UPDATE accounts SET used_bytes=used_bytes+?, used_items=used_items+? WHERE id=?"));
  st.bind(1, bytes).bind(2, items).bind(3, account_id);
  return st.run();
}

Status check_quota(SqliteDb& db, const Account& account, uint64_t extra) {
  if (account.quota_bytes == 0) return Status::ok();
  MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT used_bytes FROM accounts WHERE id=?"));
  st.bind(1, account.id);
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return not_found("account vanished");
  uint64_t used = static_cast<uint64_t>(st.column_int(0));
  if (used + extra > account.quota_bytes) {
    if (used >= account.quota_bytes)
      return over_quota("mailbox of " + account.address + " is full (" + std::to_string(used) +
                        " of " + std::to_string(account.quota_bytes) + " bytes used)");
    return over_quota("message of " + std::to_string(extra) + " bytes does not fit in the " +
                      std::to_string(account.quota_bytes - used) +
                      " bytes left in the mailbox of " + account.address);
  }
  return Status::ok();
}

Status ref_message(SqliteDb& db, const Digest& blob, int64_t delta) {
  MK_ASSIGN_OR_RETURN(auto st, db.prepare("UPDATE message_refs SET refs=refs+? WHERE blob=?"));
  st.bind(1, delta).bind_blob(2, as_bytes(blob));
  MK_RETURN_IF_ERROR(st.run());
  if (db.changes() != 1) return corrupt("item references unknown message " + to_hex(blob));
  return Status::ok();
}

Status insert_item(SqliteDb& db, int64_t folder_id, const ItemInfo& it, int64_t saved_ms) {
  MK_ASSIGN_OR_RETURN(
      auto st,
      db.prepare(
          "INSERT INTO items(folder_id, uid, guid, ingress_id, blob, size, internal_date_ms, flags,"
          " modseq, saved_ms) VALUES (?,?,?,?,?,?,?,?,?,?)"));
  st.bind(1, folder_id).bind(2, static_cast<int64_t>(it.uid)).bind_blob(3, it.guid.raw());
  if (it.ingress_id)
    st.bind_blob(4, it.ingress_id->raw());
  else
    st.bind_null(4);
  st.bind_blob(5, as_bytes(it.blob))
      .bind(6, static_cast<int64_t>(it.size))
      .bind(7, it.internal_date_ms)
      .bind(8, join_flags(it.flags))
      .bind(9, static_cast<int64_t>(it.modseq))
      .bind(10, saved_ms);
  return st.run();
}

Result<std::vector<ItemInfo>> select_items(SqliteDb& db, int64_t folder_id,
                                           const std::vector<uint32_t>& uids) {
  MK_ASSIGN_OR_RETURN(auto st, db.prepare(std::string("SELECT ") + kItemColumns +
                                          " FROM items WHERE folder_id=? AND uid=?"));
  std::vector<uint32_t> sorted = uids;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::vector<ItemInfo> out;
  for (uint32_t uid : sorted) {
    st.bind(1, folder_id).bind(2, static_cast<int64_t>(uid));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (row) out.push_back(row_to_item(st, 0));
    st.reset();
  }
  return out;
}

Status delete_items(WriteTx& tx, const Account& account, FolderRow& folder,
                    const std::vector<ItemInfo>& items, const char* op, bool journal_each) {
  if (items.empty()) return Status::ok();
  SqliteDb& db = tx.db();
  folder.highestmodseq += 1;
  MK_ASSIGN_OR_RETURN(auto del, db.prepare("DELETE FROM items WHERE folder_id=? AND uid=?"));
  MK_ASSIGN_OR_RETURN(auto exp, db.prepare("INSERT OR REPLACE INTO expunged VALUES (?,?,?)"));
  int64_t bytes = 0;
  json uids = json::array();
  for (const auto& it : items) {
    del.bind(1, folder.id).bind(2, static_cast<int64_t>(it.uid));
    MK_RETURN_IF_ERROR(del.run());
    del.reset();
    exp.bind(1, folder.id)
        .bind(2, static_cast<int64_t>(it.uid))
        .bind(3, static_cast<int64_t>(folder.highestmodseq));
    MK_RETURN_IF_ERROR(exp.run());
    exp.reset();
    MK_RETURN_IF_ERROR(ref_message(db, it.blob, -1));
    bytes += static_cast<int64_t>(it.size);
    uids.push_back(it.uid);
    if (journal_each) {
      json p = {{"folder", folder.guid.hex()}, {"uid", it.uid}, {"modseq", folder.highestmodseq}};
      MK_RETURN_IF_ERROR(tx.journal(op, account.guid, it.guid, p.dump()).status());
    }
  }
  MK_RETURN_IF_ERROR(adjust_usage(db, account.id, -bytes, -static_cast<int64_t>(items.size())));
  return save_folder_counters(db, folder);
}

Status upsert_message(SqliteDb& db, const MailStore::PreparedSave& p) {
  // A duplicate's fresh inline copy replaces the stored one (self-heal, as for files); a
  // duplicate stored as a file leaves the row as it is.
  MK_ASSIGN_OR_RETURN(auto msg,
                      db.prepare("INSERT INTO messages(blob, size, stored_size, info, data)"
                                 " VALUES (?,?,?,?,?) ON CONFLICT(blob) DO UPDATE SET"
                                 " data=excluded.data WHERE excluded.data IS NOT NULL"));
  msg.bind_blob(1, as_bytes(p.put.digest))
      .bind(2, static_cast<int64_t>(p.size))
      .bind(3, static_cast<int64_t>(p.put.stored_size))
      .bind_blob(4, p.info_bytes);
  if (p.inline_data.empty())
    msg.bind_null(5);
  else
    msg.bind_blob(5, p.inline_data);
  MK_RETURN_IF_ERROR(msg.run());
  MK_ASSIGN_OR_RETURN(auto ref, db.prepare("INSERT INTO message_refs VALUES (?,1)"
                                           " ON CONFLICT(blob) DO UPDATE SET refs=refs+1"));
  ref.bind_blob(1, as_bytes(p.put.digest));
  MK_RETURN_IF_ERROR(ref.run());
  // A duplicate's fresh record replaces the stored one too.
  return put_header_fields(db, p.put.digest, p.header_fields);
}

Status put_header_fields(SqliteDb& db, const Digest& blob, std::string_view record) {
  MK_ASSIGN_OR_RETURN(auto st, db.prepare("INSERT OR REPLACE INTO header_fields VALUES (?,?)"));
  st.bind_blob(1, as_bytes(blob)).bind_blob(2, record);
  return st.run();
}

bool valid_flag(const std::string& f) {
  if (f.empty() || f.size() > 255) return false;
  for (size_t i = 0; i < f.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(f[i]);
    if (c <= 0x20 || c >= 0x7f) return false;
    if (c == '(' || c == ')' || c == '{' || c == '%' || c == '*' || c == '"' || c == ']' ||
        c == '\\')
      if (!(c == '\\' && i == 0)) return false;
  }
  return true;
}

}  // namespace store_sql

std::string join_flags(const std::vector<std::string>& flags) {
  std::string out;
  for (const auto& f : flags) {
    if (!out.empty()) out += ' ';
    out += f;
  }
  return out;
}

std::vector<std::string> split_flags(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t sp = text.find(' ', pos);
    if (sp == std::string_view::npos) sp = text.size();
    if (sp > pos) out.emplace_back(text.substr(pos, sp - pos));
    pos = sp + 1;
  }
  return out;
}

std::vector<std::string> normalize_flags(std::vector<std::string> flags) {
  static const char* kSystem[] = {"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"};
  for (auto& f : flags) {
    for (const char* s : kSystem)
      if (has_flag({f}, s)) f = s;
  }
  std::sort(flags.begin(), flags.end());
  flags.erase(std::unique(flags.begin(), flags.end()), flags.end());
  return flags;
}

Result<std::string> normalize_folder_name(std::string_view name) {
  if (name.empty()) return invalid("empty folder name");
  if (name.size() > 1024) return invalid("folder name too long");
  std::string out;
  size_t level_start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '/') {
      size_t len = i - level_start;
      if (len == 0) return invalid("folder name has an empty hierarchy level");
      if (len > 255) return invalid("folder name level too long");
      level_start = i + 1;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f) return invalid("folder name contains control characters");
  }
  out = name;
  if (out.size() >= 5) {
    std::string head = out.substr(0, 5);
    for (char& c : head) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (head == "INBOX" && (out.size() == 5 || out[5] == '/')) out.replace(0, 5, "INBOX");
  }
  return out;
}

MailStore::MailStore(FileSystem& fs, std::string root) : fs_(fs), root_(std::move(root)) {}
MailStore::~MailStore() = default;

// The meta row saying that every `messages` row has its header fields record of this version
// (each writer of one writes both since the table exists).
constexpr const char* kHeaderFieldsKey = "header_fields_version";
constexpr const char* kHeaderFieldsVersion = "1";

// Databases written before the header_fields table existed: their records, made once from the
// parse caches (which hold the raw header), a few thousand messages per transaction so the
// write-ahead log stays small; about 35 µs a message. Until it is done, searches make a
// missing record from the parse cache themselves.
static Status fill_header_fields(Database& db, const std::string& name) {
  constexpr int kPerTransaction = 4096;
  bool filled = false;
  MK_RETURN_IF_ERROR(db.read([&](SqliteDb& sql) -> Status {
    MK_ASSIGN_OR_RETURN(auto st, sql.prepare("SELECT value FROM meta WHERE key=?"));
    st.bind(1, std::string_view(kHeaderFieldsKey));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    filled = row && st.column_text(0) == kHeaderFieldsVersion;
    return Status::ok();
  }));
  if (filled) return Status::ok();
  int64_t made = 0, undecodable = 0;
  std::string after;  // the last blob id looked at, in blob order
  bool done = false;
  while (!done) {
    MK_RETURN_IF_ERROR(db.write([&](WriteTx& tx) -> Status {
      SqliteDb& sql = tx.db();
      MK_ASSIGN_OR_RETURN(auto st,
                          sql.prepare("SELECT blob, info FROM messages WHERE blob > ? AND NOT"
                                      " EXISTS (SELECT 1 FROM header_fields h WHERE h.blob ="
                                      " messages.blob) ORDER BY blob LIMIT ?"));
      st.bind_blob(1, after).bind(2, int64_t{kPerTransaction});
      MessageInfo info;
      int rows = 0;
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        ++rows;
        after = std::string(st.column_blob_view(0));
        auto blob = digest_from_bytes(after);
        if (!blob || !deserialize_message_info(st.column_blob_view(1), info).is_ok()) {
          ++undecodable;  // `mailark check` reports it; searches read the parse cache and fail
          continue;
        }
        MK_RETURN_IF_ERROR(put_header_fields(sql, *blob, encode_header_fields(info.header)));
        ++made;
      }
      done = rows < kPerTransaction;
      if (!done) return Status::ok();
      MK_ASSIGN_OR_RETURN(auto meta, sql.prepare("INSERT OR REPLACE INTO meta VALUES (?,?)"));
      meta.bind(1, std::string_view(kHeaderFieldsKey))
          .bind(2, std::string_view(kHeaderFieldsVersion));
      return meta.run();
    }));
  }
  if (made || undecodable)
    MK_LOG_INFO(
        "database {}: made the header fields records of {} messages ({} parse caches "
        "did not decode)",
        name, made, undecodable);
  return Status::ok();
}

Status MailStore::create_database(const std::string& name) {
  std::lock_guard lock(mu_);
  MK_ASSIGN_OR_RETURN(auto db, Database::create(fs_, database_dir(name), name));
  MK_RETURN_IF_ERROR(fill_header_fields(*db, name));
  databases_[name] = std::move(db);
  return Status::ok();
}

Result<Database*> MailStore::database(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = databases_.find(name);
  if (it != databases_.end()) return it->second.get();
  MK_ASSIGN_OR_RETURN(auto db, Database::open(fs_, database_dir(name), name));
  MK_RETURN_IF_ERROR(fill_header_fields(*db, name));
  Database* raw = db.get();
  databases_[name] = std::move(db);
  return raw;
}

std::vector<std::string> MailStore::database_names() {
  std::vector<std::string> out;
  auto names = fs_.list_dir(root_);
  if (!names.is_ok()) return out;
  for (const auto& n : *names)
    if (fs_.exists(database_dir(n) + "/meta.sqlite")) out.push_back(n);
  std::sort(out.begin(), out.end());
  return out;
}

// ---------------------------------------------------------------- accounts

Result<Account> MailStore::create_account(const std::string& db_name, const Guid& guid,
                                          const std::string& address) {
  MK_ASSIGN_OR_RETURN(Database * db, database(db_name));
  Account account;
  account.db = db;
  account.guid = guid;
  account.address = address;
  Status s = db->write([&](WriteTx& tx) -> Status {
    MK_ASSIGN_OR_RETURN(
        auto st, tx.db().prepare("INSERT INTO accounts(guid, address, created_ms) VALUES (?,?,?)"));
    st.bind_blob(1, guid.raw()).bind(2, address).bind(3, tx.time_ms());
    Status ins = st.run();
    if (ins.code() == ErrorCode::kConflict)
      return exists_error("account " + address + " already exists in database " + db_name);
    MK_RETURN_IF_ERROR(ins);
    account.id = tx.db().last_insert_rowid();
    json p = {{"address", address}};
    MK_RETURN_IF_ERROR(tx.journal("account.create", guid, Guid{}, p.dump()).status());
    for (const auto& f : kDefaultFolders)
      MK_RETURN_IF_ERROR(insert_folder(tx, account, f.name, f.special_use).status());
    return Status::ok();
  });
  MK_RETURN_IF_ERROR(s);
  notify({db_name, guid, Guid{}, 0});
  return account;
}

Result<Account> MailStore::account(const std::string& db_name, const std::string& address) {
  MK_ASSIGN_OR_RETURN(Database * db, database(db_name));
  Account account;
  account.db = db;
  MK_RETURN_IF_ERROR(db->read([&](SqliteDb& sql) -> Status {
    MK_ASSIGN_OR_RETURN(auto st,
                        sql.prepare("SELECT id, guid, address FROM accounts WHERE address=?"));
    st.bind(1, address);
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return not_found("no account " + address + " in database " + db_name);
    account.id = st.column_int(0);
    account.guid = Guid::from_bytes(st.column_blob(1)).value_or(Guid{});
    account.address = st.column_text(2);
    return Status::ok();
  }));
  return account;
}

Result<Account> MailStore::open_or_create_account(const std::string& db, const Guid& guid,
                                                  const std::string& address) {
  auto a = account(db, address);
  if (a.is_ok() || a.status().code() != ErrorCode::kNotFound) return a;
  auto created = create_account(db, guid, address);
  if (created.status().code() == ErrorCode::kExists) return account(db, address);
  return created;
}

Status MailStore::delete_account(const Account& account) {
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    SqliteDb& db = tx.db();
    MK_ASSIGN_OR_RETURN(
        auto refs,
        db.prepare("SELECT i.blob, COUNT(*) FROM items i JOIN folders f ON i.folder_id=f.id"
                   " WHERE f.account_id=? GROUP BY i.blob"));
    refs.bind(1, account.id);
    MK_ASSIGN_OR_RETURN(auto dec, db.prepare("UPDATE message_refs SET refs=refs-? WHERE blob=?"));
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, refs.step());
      if (!row) break;
      dec.bind(1, refs.column_int(1)).bind_blob(2, refs.column_blob(0));
      MK_RETURN_IF_ERROR(dec.run());
      dec.reset();
    }
    const char* statements[] = {
        "DELETE FROM items WHERE folder_id IN (SELECT id FROM folders WHERE account_id=?1)",
        "DELETE FROM expunged WHERE folder_id IN (SELECT id FROM folders WHERE account_id=?1)",
        "DELETE FROM dav_resources WHERE folder_id IN"
        " (SELECT id FROM folders WHERE account_id=?1)",
        "DELETE FROM dav_gone WHERE folder_id IN (SELECT id FROM folders WHERE account_id=?1)",
        "DELETE FROM folder_props WHERE folder_id IN (SELECT id FROM folders WHERE account_id=?1)",
        "DELETE FROM folders WHERE account_id=?1",
        "DELETE FROM deliveries WHERE account_id=?1",
        "DELETE FROM accounts WHERE id=?1"};
    for (const char* sql : statements) {
      MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
      st.bind(1, account.id);
      MK_RETURN_IF_ERROR(st.run());
    }
    json p = {{"address", account.address}};
    return tx.journal("account.delete", account.guid, Guid{}, p.dump()).status();
  }));
  notify({account.db->name(), account.guid, Guid{}, 0});
  return Status::ok();
}

Result<MailStore::Usage> MailStore::usage(const Account& account) {
  Usage u;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st,
                        db.prepare("SELECT used_bytes, used_items FROM accounts WHERE id=?"));
    st.bind(1, account.id);
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return not_found("account " + account.address + " vanished");
    u.bytes = static_cast<uint64_t>(st.column_int(0));
    u.items = static_cast<uint64_t>(st.column_int(1));
    return Status::ok();
  }));
  return u;
}

// ---------------------------------------------------------------- folders

// Folders of the account (all, or the one named `only`), with their counters from one pass
// over each folder's items when `counts`, else with counters of 0.
static Status read_folders(SqliteDb& db, int64_t account_id, const std::string* only,
                           std::vector<FolderInfo>* out, bool counts = true) {
  std::string sql =
      "SELECT f.id, f.guid, f.name, f.kind, COALESCE(f.special_use,''), f.subscribed,"
      " f.uidvalidity, f.uidnext, f.highestmodseq, ";
  sql += counts
             ? "COUNT(i.id), COALESCE(SUM(i.id IS NOT NULL AND instr(i.flags, '\\Seen') = 0), 0),"
               " COALESCE(SUM(i.size), 0)"
               " FROM folders f LEFT JOIN items i ON i.folder_id = f.id WHERE f.account_id=?"
             : "0, 0, 0 FROM folders f WHERE f.account_id=?";
  if (only) sql += " AND f.name=?";
  sql += " GROUP BY f.id ORDER BY f.name";
  MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
  st.bind(1, account_id);
  if (only) st.bind(2, *only);
  while (true) {
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    FolderInfo f;
    f.id = st.column_int(0);
    f.guid = Guid::from_bytes(st.column_blob(1)).value_or(Guid{});
    f.name = st.column_text(2);
    f.kind = st.column_text(3);
    f.special_use = st.column_text(4);
    f.subscribed = st.column_int(5) != 0;
    f.uidvalidity = static_cast<uint32_t>(st.column_int(6));
    f.uidnext = static_cast<uint32_t>(st.column_int(7));
    f.highestmodseq = static_cast<uint64_t>(st.column_int(8));
    f.messages = static_cast<uint32_t>(st.column_int(9));
    f.unseen = static_cast<uint32_t>(st.column_int(10));
    f.bytes = static_cast<uint64_t>(st.column_int(11));
    out->push_back(std::move(f));
  }
  return Status::ok();
}

Result<std::vector<FolderInfo>> MailStore::list_folders(const Account& account) {
  std::vector<FolderInfo> out;
  MK_RETURN_IF_ERROR(account.db->read(
      [&](SqliteDb& db) -> Status { return read_folders(db, account.id, nullptr, &out); }));
  return out;
}

Result<FolderInfo> MailStore::folder(const Account& account, std::string_view name, bool counts) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(name));
  std::vector<FolderInfo> out;
  MK_RETURN_IF_ERROR(account.db->read(
      [&](SqliteDb& db) -> Status { return read_folders(db, account.id, &norm, &out, counts); }));
  if (out.empty()) return not_found("folder " + norm + " does not exist");
  return std::move(out.front());
}

Result<FolderInfo> MailStore::create_folder(const Account& account, std::string_view name,
                                            std::string_view special_use) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(name));
  if (is_groupware_folder_name(norm))
    return invalid("folder names under " + std::string(kCalendarsRoot) + " and " +
                   std::string(kAddressBooksRoot) + " are reserved for calendars and contacts");
  Guid folder_guid;
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    // Create missing superior levels too (RFC 3501 6.3.3).
    for (size_t pos = norm.find('/'); pos != std::string::npos; pos = norm.find('/', pos + 1)) {
      std::string parent = norm.substr(0, pos);
      auto existing = load_folder(tx.db(), account.id, parent);
      if (existing.is_ok()) continue;
      if (existing.status().code() != ErrorCode::kNotFound) return existing.status();
      MK_RETURN_IF_ERROR(insert_folder(tx, account, parent, "").status());
    }
    MK_ASSIGN_OR_RETURN(auto f, insert_folder(tx, account, norm, special_use));
    folder_guid = f.guid;
    return Status::ok();
  }));
  notify({account.db->name(), account.guid, Guid{}, 0});
  return folder(account, norm);
}

Status MailStore::rename_folder(const Account& account, std::string_view from_name,
                                std::string_view to_name) {
  MK_ASSIGN_OR_RETURN(std::string from, normalize_folder_name(from_name));
  MK_ASSIGN_OR_RETURN(std::string to, normalize_folder_name(to_name));
  if (is_groupware_folder_name(from) || is_groupware_folder_name(to))
    return invalid("calendars and address books are not renamed as mail folders");
  if (from == to) return exists_error("folder " + to + " already exists");
  if (to.size() > from.size() && to.compare(0, from.size() + 1, from + "/") == 0)
    return invalid("cannot rename a folder into itself");
  if (to == "INBOX") return exists_error("folder INBOX already exists");
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    SqliteDb& db = tx.db();
    MK_ASSIGN_OR_RETURN(FolderRow src, load_folder(db, account.id, from));
    auto clash = load_folder(db, account.id, to);
    if (clash.is_ok()) return exists_error("folder " + to + " already exists");
    for (size_t pos = to.find('/'); pos != std::string::npos; pos = to.find('/', pos + 1)) {
      std::string parent = to.substr(0, pos);
      if (load_folder(db, account.id, parent).is_ok()) continue;
      MK_RETURN_IF_ERROR(insert_folder(tx, account, parent, "").status());
    }
    if (from == "INBOX") {
      // INBOX itself stays; its messages move to the new folder with new UIDs.
      MK_ASSIGN_OR_RETURN(FolderRow dst, insert_folder(tx, account, to, ""));
      MK_ASSIGN_OR_RETURN(auto st, db.prepare(std::string("SELECT ") + kItemColumns +
                                              " FROM items WHERE folder_id=? ORDER BY uid"));
      st.bind(1, src.id);
      std::vector<ItemInfo> items;
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        items.push_back(row_to_item(st, 0));
      }
      dst.highestmodseq += 1;
      for (auto it : items) {
        it.uid = dst.uidnext++;
        it.modseq = dst.highestmodseq;
        MK_RETURN_IF_ERROR(insert_item(db, dst.id, it, tx.time_ms()));
        MK_RETURN_IF_ERROR(ref_message(db, it.blob, +1));
      }
      MK_RETURN_IF_ERROR(save_folder_counters(db, dst));
      // delete_items adjusts usage down; compensate the move by adding it back first.
      int64_t bytes = 0;
      for (const auto& it : items) bytes += static_cast<int64_t>(it.size);
      MK_RETURN_IF_ERROR(adjust_usage(db, account.id, bytes, static_cast<int64_t>(items.size())));
      MK_RETURN_IF_ERROR(delete_items(tx, account, src, items, "expunge", false));
      json p = {{"from", from}, {"to", to}, {"folder", dst.guid.hex()}, {"count", items.size()}};
      return tx.journal("folder.rename_inbox", account.guid, Guid{}, p.dump()).status();
    }
    MK_ASSIGN_OR_RETURN(auto kids, db.prepare("SELECT id, name, guid FROM folders WHERE "
                                              "account_id=? AND (name=? OR substr(name,1,?)=?)"));
    kids.bind(1, account.id)
        .bind(2, from)
        .bind(3, static_cast<int64_t>(from.size() + 1))
        .bind(4, from + "/");
    std::vector<std::tuple<int64_t, std::string, std::string>> rows;
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, kids.step());
      if (!row) break;
      rows.emplace_back(kids.column_int(0), kids.column_text(1), kids.column_blob(2));
    }
    MK_ASSIGN_OR_RETURN(auto up, db.prepare("UPDATE folders SET name=? WHERE id=?"));
    for (const auto& [id, name, guid] : rows) {
      std::string new_name = to + name.substr(from.size());
      if (new_name != to && load_folder(db, account.id, new_name).is_ok())
        return exists_error("folder " + new_name + " already exists");
      up.bind(1, new_name).bind(2, id);
      Status s = up.run();
      if (s.code() == ErrorCode::kConflict)
        return exists_error("folder " + new_name + " already exists");
      MK_RETURN_IF_ERROR(s);
      up.reset();
      json p = {{"folder", Guid::from_bytes(guid).value_or(Guid{}).hex()},
                {"from", name},
                {"to", new_name}};
      MK_RETURN_IF_ERROR(tx.journal("folder.rename", account.guid, Guid{}, p.dump()).status());
    }
    return Status::ok();
  }));
  notify({account.db->name(), account.guid, Guid{}, 0});
  return Status::ok();
}

Status MailStore::delete_folder(const Account& account, std::string_view name) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(name));
  if (norm == "INBOX") return conflict("INBOX cannot be deleted");
  if (is_groupware_folder_name(norm))
    return invalid("calendars and address books are not deleted as mail folders");
  return remove_folder(account, norm);
}

Status MailStore::remove_folder(const Account& account, const std::string& norm) {
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    SqliteDb& db = tx.db();
    MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(db, account.id, norm));
    MK_ASSIGN_OR_RETURN(auto st, db.prepare(std::string("SELECT ") + kItemColumns +
                                            " FROM items WHERE folder_id=?"));
    st.bind(1, f.id);
    std::vector<ItemInfo> items;
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      items.push_back(row_to_item(st, 0));
    }
    MK_RETURN_IF_ERROR(delete_items(tx, account, f, items, "expunge", false));
    for (const char* sql :
         {"DELETE FROM expunged WHERE folder_id=?", "DELETE FROM dav_resources WHERE folder_id=?",
          "DELETE FROM dav_gone WHERE folder_id=?", "DELETE FROM folder_props WHERE folder_id=?",
          "DELETE FROM folders WHERE id=?"}) {
      MK_ASSIGN_OR_RETURN(auto del, db.prepare(sql));
      del.bind(1, f.id);
      MK_RETURN_IF_ERROR(del.run());
    }
    json p = {{"folder", f.guid.hex()}, {"name", norm}, {"items", items.size()}};
    return tx.journal("folder.delete", account.guid, Guid{}, p.dump()).status();
  }));
  notify({account.db->name(), account.guid, Guid{}, 0});
  return Status::ok();
}

Status MailStore::set_subscribed(const Account& account, std::string_view name, bool subscribed) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(name));
  if (is_groupware_folder_name(norm))
    return invalid("calendars and address books are not subscribed to as mail folders");
  return account.db->write([&](WriteTx& tx) -> Status {
    MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(tx.db(), account.id, norm));
    MK_ASSIGN_OR_RETURN(auto st, tx.db().prepare("UPDATE folders SET subscribed=? WHERE id=?"));
    st.bind(1, subscribed ? 1 : 0).bind(2, f.id);
    MK_RETURN_IF_ERROR(st.run());
    json p = {{"folder", f.guid.hex()}, {"subscribed", subscribed}};
    return tx.journal("folder.subscribe", account.guid, Guid{}, p.dump()).status();
  });
}

// ---------------------------------------------------------------- items

Result<SavedItem> MailStore::deliver(const Account& account, const MessageInput& input,
                                     const Guid& ingress_id, std::string_view folder) {
  std::string seed = "deliver:";
  seed.append(ingress_id.raw());
  seed.append(account.guid.raw());
  return save(account, folder, input, ingress_id, Guid::derived(seed), "deliver");
}

Result<SavedItem> MailStore::append(const Account& account, std::string_view folder,
                                    const MessageInput& input) {
  return save(account, folder, input, std::nullopt, Guid::random(), "append");
}

Result<SavedItem> MailStore::restore_item(const Account& account, std::string_view folder,
                                          const ItemState& item, std::string_view raw) {
  if (sha256(raw) != item.blob)
    return corrupt("restored message " + to_hex(item.blob) + " does not match its digest");
  MK_ASSIGN_OR_RETURN(auto saved, restore_items(account, folder, {RestoredItem{&item, raw}}));
  return saved.front();
}

Result<std::set<Guid>> MailStore::item_guids(const Account& account) {
  std::set<Guid> out;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT i.guid FROM items i JOIN folders f ON"
                                            " i.folder_id=f.id WHERE f.account_id=?"));
    st.bind(1, account.id);
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      if (auto g = Guid::from_bytes(st.column_blob(0))) out.insert(*g);
    }
    return Status::ok();
  }));
  return out;
}

Result<std::set<Digest>> MailStore::held_messages(const Account& account,
                                                  const std::map<Digest, uint64_t>& blobs) {
  std::set<Digest> out;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    // message_refs has a row for each messages row, and the restore's reference counts
    // come back to the same pages. A body of at most kInlineBodyLimit is in the messages row
    // (docs/formats/database.md), a larger one counts while its file is there.
    MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT 1 FROM message_refs WHERE blob=?"));
    for (const auto& [d, size] : blobs) {
      st.reset();
      st.bind_blob(1, as_bytes(d));
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (row && (size <= kInlineBodyLimit || account.db->blobs().contains(d))) out.insert(d);
    }
    return Status::ok();
  }));
  return out;
}

namespace {

// The item's side of a save, the same whether its body is new or one the database holds: the
// folder (normalized), the flags (checked), and what identifies and dates the item.
Result<MailStore::PreparedSave> prepare_item(std::string_view folder_name,
                                             const std::vector<std::string>& flags, uint64_t size,
                                             int64_t internal_date_ms,
                                             const std::optional<Guid>& ingress_id,
                                             const Guid& guid, const char* op) {
  MailStore::PreparedSave p;
  MK_ASSIGN_OR_RETURN(p.folder, normalize_folder_name(folder_name));
  for (const auto& f : flags)
    if (!valid_flag(f)) return invalid("invalid flag " + f);
  p.flags = normalize_flags(flags);
  p.size = size;
  p.internal_date_ms = internal_date_ms;
  p.ingress_id = ingress_id;
  p.guid = guid;
  p.op = op;
  return p;
}

}  // namespace

Result<MailStore::PreparedSave> MailStore::prepare_save(const Account& account,
                                                        std::string_view folder_name,
                                                        const MessageInput& input,
                                                        const std::optional<Guid>& ingress_id,
                                                        const Guid& guid, const char* op) {
  MK_ASSIGN_OR_RETURN(PreparedSave p, prepare_item(folder_name, input.flags, input.raw.size(),
                                                   input.internal_date_ms, ingress_id, guid, op));
  MessageInfo parsed;
  const MessageInfo* info = input.info;
  if (!info) {
    parsed = parse_message(input.raw);
    info = &parsed;
  }
  p.info_bytes = serialize_message_info(*info);
  p.header_fields = encode_header_fields(info->header);
  // Small messages (most mail) live inside the database row, committed and fsynced with the
  // metadata in one group commit. Larger ones get a blob file, written and fsynced before
  // the metadata that references it; its directory entry is made durable by the group
  // commit (sync_dirs) right before the SQLite commit.
  if (input.raw.size() <= kInlineBodyLimit) {
    p.put.digest = input.digest ? *input.digest : sha256(input.raw);
    p.inline_data = BlobStore::encode(input.raw);
    p.put.stored_size = p.inline_data.size();
  } else {
    MK_ASSIGN_OR_RETURN(p.put, account.db->blobs().put(input.raw, input.digest));
  }
  return p;
}

Status MailStore::insert_prepared(WriteTx& tx, const Account& account, const PreparedSave& p,
                                  SavedItem* saved, Guid* folder_guid) {
  SqliteDb& db = tx.db();
  const bool restoring = std::string_view(p.op) == "restore";
  saved->guid = p.guid;
  if (restoring) {
    // A restored item is identified by its GUID: present anywhere in the account means
    // already restored (or never lost).
    MK_ASSIGN_OR_RETURN(auto dup, db.prepare("SELECT 1 FROM items i JOIN folders f ON"
                                             " i.folder_id=f.id WHERE i.guid=? AND"
                                             " f.account_id=? LIMIT 1"));
    dup.bind_blob(1, p.guid.raw()).bind(2, account.id);
    MK_ASSIGN_OR_RETURN(bool seen, dup.step());
    if (seen) {
      saved->duplicate = true;
      return Status::ok();
    }
  } else if (p.ingress_id) {
    MK_ASSIGN_OR_RETURN(auto dup,
                        db.prepare("SELECT 1 FROM deliveries WHERE account_id=? AND ingress_id=?"));
    dup.bind(1, account.id).bind_blob(2, p.ingress_id->raw());
    MK_ASSIGN_OR_RETURN(bool seen, dup.step());
    if (seen) {
      saved->duplicate = true;
      return Status::ok();
    }
  }
  if (!restoring) MK_RETURN_IF_ERROR(check_quota(db, account, p.size));
  MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(db, account.id, p.folder));
  if (f.kind != "mail") return invalid("folder " + f.name + " does not hold mail");
  *folder_guid = f.guid;
  if (p.by_reference)
    MK_RETURN_IF_ERROR(ref_message(db, p.put.digest, +1));
  else
    MK_RETURN_IF_ERROR(upsert_message(db, p));
  ItemInfo it;
  it.uid = f.uidnext++;
  it.guid = p.guid;
  it.ingress_id = p.ingress_id;
  it.blob = p.put.digest;
  it.size = p.size;
  it.internal_date_ms = p.internal_date_ms ? p.internal_date_ms : tx.time_ms();
  it.flags = p.flags;
  it.modseq = ++f.highestmodseq;
  MK_RETURN_IF_ERROR(insert_item(db, f.id, it, tx.time_ms()));
  MK_RETURN_IF_ERROR(save_folder_counters(db, f));
  MK_RETURN_IF_ERROR(adjust_usage(db, account.id, static_cast<int64_t>(it.size), 1));
  if (p.ingress_id) {
    MK_ASSIGN_OR_RETURN(auto d, db.prepare("INSERT OR IGNORE INTO deliveries VALUES (?,?,?,?)"));
    d.bind(1, account.id)
        .bind_blob(2, p.ingress_id->raw())
        .bind_blob(3, p.guid.raw())
        .bind(4, tx.time_ms());
    MK_RETURN_IF_ERROR(d.run());
  }
  json payload = {{"folder", f.guid.hex()},
                  {"uid", it.uid},
                  {"blob", to_hex(it.blob)},
                  {"size", it.size},
                  {"internal_date_ms", it.internal_date_ms},
                  {"flags", p.flags},
                  {"modseq", it.modseq}};
  if (p.ingress_id) payload["ingress"] = p.ingress_id->hex();
  MK_RETURN_IF_ERROR(tx.journal(p.op, account.guid, p.guid, payload.dump()).status());
  saved->uidvalidity = f.uidvalidity;
  saved->uid = it.uid;
  saved->modseq = it.modseq;
  return Status::ok();
}

Result<SavedItem> MailStore::save(const Account& account, std::string_view folder_name,
                                  const MessageInput& input, const std::optional<Guid>& ingress_id,
                                  const Guid& guid, const char* op) {
  MK_ASSIGN_OR_RETURN(PreparedSave p,
                      prepare_save(account, folder_name, input, ingress_id, guid, op));
  SavedItem saved;
  Guid folder_guid;
  Status s = account.db->write(
      [&](WriteTx& tx) -> Status {
        saved = SavedItem{};
        return insert_prepared(tx, account, p, &saved, &folder_guid);
      },
      p.put.dir_to_sync.empty() ? std::set<std::string>{}
                                : std::set<std::string>{p.put.dir_to_sync});
  MK_RETURN_IF_ERROR(s);
  if (!saved.duplicate) notify({account.db->name(), account.guid, folder_guid, saved.modseq});
  return saved;
}

Result<std::vector<SavedItem>> MailStore::restore_items(const Account& account,
                                                        std::string_view folder,
                                                        const std::vector<RestoredItem>& items) {
  std::vector<PreparedSave> prepared;
  std::set<std::string> dirs;
  for (const auto& r : items) {
    if (r.by_reference) {
      MK_ASSIGN_OR_RETURN(PreparedSave p, prepare_item(folder, r.item->flags, r.item->size,
                                                       r.item->internal_date_ms, r.item->ingress_id,
                                                       r.item->guid, "restore"));
      p.put.digest = r.item->blob;
      p.by_reference = true;
      prepared.push_back(std::move(p));
      continue;
    }
    MessageInput input;
    input.raw = r.raw;
    input.internal_date_ms = r.item->internal_date_ms;
    input.flags = r.item->flags;
    input.digest = &r.item->blob;
    MK_ASSIGN_OR_RETURN(PreparedSave p, prepare_save(account, folder, input, r.item->ingress_id,
                                                     r.item->guid, "restore"));
    if (!p.put.dir_to_sync.empty()) dirs.insert(p.put.dir_to_sync);
    prepared.push_back(std::move(p));
  }
  std::vector<std::pair<Guid, Digest>> keys;
  keys.reserve(items.size());
  for (const auto& r : items) keys.emplace_back(r.item->guid, r.item->blob);
  prefetch_item_pages(account, keys);
  std::vector<SavedItem> out;
  Guid folder_guid;
  MK_RETURN_IF_ERROR(account.db->write(
      [&](WriteTx& tx) -> Status {
        out.assign(prepared.size(), SavedItem{});
        for (size_t i = 0; i < prepared.size(); ++i)
          MK_RETURN_IF_ERROR(insert_prepared(tx, account, prepared[i], &out[i], &folder_guid));
        return Status::ok();
      },
      dirs));
  notify({account.db->name(), account.guid, folder_guid, 0});
  return out;
}

void MailStore::prefetch_item_pages(const Account& account,
                                    const std::vector<std::pair<Guid, Digest>>& keys) {
  constexpr size_t kPerThread = 64, kMaxThreads = 8;
  const size_t threads = std::min(kMaxThreads, keys.size() / kPerThread);
  if (threads < 2) return;  // a few pages: the writer reads them itself
  auto lookups = [&](size_t first) -> Status {
    return account.db->read([&](SqliteDb& db) -> Status {
      // Each query reads the b-tree path its index key leads to: where the insert goes.
      static constexpr const char* kByBlob[] = {"SELECT 1 FROM message_refs WHERE blob=?",
                                                "SELECT 1 FROM messages WHERE blob=?",
                                                "SELECT 1 FROM items WHERE blob=? LIMIT 1"};
      std::vector<SqliteStatement> by_blob;
      for (const char* sql : kByBlob) {
        MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
        by_blob.push_back(std::move(st));
      }
      MK_ASSIGN_OR_RETURN(auto by_guid, db.prepare("SELECT 1 FROM items WHERE guid=? LIMIT 1"));
      for (size_t i = first; i < keys.size(); i += threads) {
        for (auto& st : by_blob) {
          st.reset();
          st.bind_blob(1, as_bytes(keys[i].second));
          MK_RETURN_IF_ERROR(st.step().status());
        }
        by_guid.reset();
        by_guid.bind_blob(1, keys[i].first.raw());
        MK_RETURN_IF_ERROR(by_guid.step().status());
      }
      return Status::ok();
    });
  };
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back([&lookups, t] {
      if (Status s = lookups(t); !s.is_ok())
        MK_LOG_DEBUG("prefetch of index pages: {}", s.to_string());
    });
  for (auto& th : pool) th.join();
}

Result<CopyResult> MailStore::copy(const Account& account, std::string_view from,
                                   const std::vector<uint32_t>& uids, std::string_view to) {
  return copy_or_move(account, from, uids, to, false);
}

Result<CopyResult> MailStore::move(const Account& account, std::string_view from,
                                   const std::vector<uint32_t>& uids, std::string_view to) {
  return copy_or_move(account, from, uids, to, true);
}

Result<CopyResult> MailStore::copy_or_move(const Account& account, std::string_view from_name,
                                           const std::vector<uint32_t>& uids,
                                           std::string_view to_name, bool is_move) {
  MK_ASSIGN_OR_RETURN(std::string from, normalize_folder_name(from_name));
  MK_ASSIGN_OR_RETURN(std::string to, normalize_folder_name(to_name));
  CopyResult result;
  Guid src_guid, dst_guid;
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    result.items.clear();
    SqliteDb& db = tx.db();
    MK_ASSIGN_OR_RETURN(FolderRow src, load_folder(db, account.id, from));
    MK_ASSIGN_OR_RETURN(FolderRow dst, load_folder(db, account.id, to));
    if (src.kind != "mail" || dst.kind != "mail")
      return invalid("calendars and address books are not copied as mail");
    src_guid = src.guid;
    dst_guid = dst.guid;
    MK_ASSIGN_OR_RETURN(auto items, select_items(db, src.id, uids));
    if (items.empty()) return Status::ok();
    uint64_t bytes = 0;
    for (const auto& it : items) bytes += it.size;
    if (!is_move || src.id == dst.id) MK_RETURN_IF_ERROR(check_quota(db, account, bytes));
    dst.highestmodseq += 1;
    // The MODSEQ delete_items below gives the move's removal from the source (journalled so
    // a replay reproduces the source folder's expunge record exactly).
    uint64_t from_modseq = (src.id == dst.id ? dst.highestmodseq : src.highestmodseq) + 1;
    for (const auto& it : items) {
      ItemInfo copy = it;
      copy.uid = dst.uidnext++;
      copy.modseq = dst.highestmodseq;
      if (!is_move) copy.guid = Guid::random();
      MK_RETURN_IF_ERROR(insert_item(db, dst.id, copy, tx.time_ms()));
      MK_RETURN_IF_ERROR(ref_message(db, copy.blob, +1));
      result.items.push_back({it.uid, copy.uid});
      json p = {{"from_folder", src.guid.hex()}, {"from_uid", it.uid},
                {"folder", dst.guid.hex()},      {"uid", copy.uid},
                {"source_item", it.guid.hex()},  {"blob", to_hex(copy.blob)},
                {"flags", copy.flags},           {"modseq", copy.modseq}};
      if (is_move) p["from_modseq"] = from_modseq;
      MK_RETURN_IF_ERROR(
          tx.journal(is_move ? "move" : "copy", account.guid, copy.guid, p.dump()).status());
    }
    MK_RETURN_IF_ERROR(save_folder_counters(db, dst));
    MK_RETURN_IF_ERROR(adjust_usage(db, account.id, static_cast<int64_t>(bytes),
                                    static_cast<int64_t>(items.size())));
    if (is_move) {
      if (src.id == dst.id) {
        MK_ASSIGN_OR_RETURN(src, load_folder(db, account.id, from));
      }
      MK_RETURN_IF_ERROR(delete_items(tx, account, src, items, "expunge", false));
    }
    result.dest_uidvalidity = dst.uidvalidity;
    return Status::ok();
  }));
  notify({account.db->name(), account.guid, dst_guid, 0});
  if (is_move) notify({account.db->name(), account.guid, src_guid, 0});
  return result;
}

Result<FlagChanges> MailStore::store_flags(const Account& account, std::string_view folder_name,
                                           const std::vector<uint32_t>& uids, FlagOp op,
                                           const std::vector<std::string>& flags_in,
                                           uint64_t unchanged_since) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(folder_name));
  for (const auto& f : flags_in)
    if (!valid_flag(f)) return invalid("invalid flag " + f);
  std::vector<std::string> flags = normalize_flags(flags_in);
  FlagChanges out;
  Guid folder_guid;
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    out = FlagChanges{};
    SqliteDb& db = tx.db();
    MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(db, account.id, norm));
    // Items of calendars and address books never change (their resource rows copy them).
    if (f.kind != "mail") return invalid("folder " + f.name + " does not hold mail");
    folder_guid = f.guid;
    MK_ASSIGN_OR_RETURN(auto items, select_items(db, f.id, uids));
    MK_ASSIGN_OR_RETURN(
        auto up, db.prepare("UPDATE items SET flags=?, modseq=? WHERE folder_id=? AND uid=?"));
    bool bumped = false;
    for (auto& it : items) {
      if (unchanged_since && it.modseq > unchanged_since) {
        out.failed_uids.push_back(it.uid);
        continue;
      }
      std::vector<std::string> next;
      if (op == FlagOp::kReplace) {
        next = flags;
      } else if (op == FlagOp::kAdd) {
        next = it.flags;
        next.insert(next.end(), flags.begin(), flags.end());
        next = normalize_flags(next);
      } else {
        for (const auto& existing : it.flags)
          if (!has_flag(flags, existing)) next.push_back(existing);
      }
      if (next == it.flags) continue;
      if (!bumped) {
        f.highestmodseq += 1;
        bumped = true;
      }
      it.flags = next;
      it.modseq = f.highestmodseq;
      up.bind(1, join_flags(next))
          .bind(2, static_cast<int64_t>(it.modseq))
          .bind(3, f.id)
          .bind(4, static_cast<int64_t>(it.uid));
      MK_RETURN_IF_ERROR(up.run());
      up.reset();
      json p = {{"folder", f.guid.hex()}, {"uid", it.uid}, {"flags", next}, {"modseq", it.modseq}};
      MK_RETURN_IF_ERROR(tx.journal("flags", account.guid, it.guid, p.dump()).status());
      out.changed.push_back(it);
    }
    if (bumped) MK_RETURN_IF_ERROR(save_folder_counters(db, f));
    return Status::ok();
  }));
  if (!out.changed.empty()) notify({account.db->name(), account.guid, folder_guid, 0});
  return out;
}

Result<std::vector<uint32_t>> MailStore::expunge(const Account& account,
                                                 std::string_view folder_name,
                                                 const std::optional<std::vector<uint32_t>>& uids) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(folder_name));
  std::vector<uint32_t> out;
  Guid folder_guid;
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    out.clear();
    SqliteDb& db = tx.db();
    MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(db, account.id, norm));
    folder_guid = f.guid;
    std::vector<ItemInfo> candidates;
    if (uids) {
      MK_ASSIGN_OR_RETURN(candidates, select_items(db, f.id, *uids));
    } else {
      // The UIDs first, from the covering (folder_id, uid, flags, size) index: CLOSE runs
      // this on every folder a client leaves, nearly always to find nothing, and reading the
      // item rows of a large folder for it held the writer for milliseconds.
      MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT uid FROM items WHERE folder_id=? AND"
                                              " flags LIKE '%\\Deleted%'"));
      st.bind(1, f.id);
      std::vector<uint32_t> deleted;
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        deleted.push_back(static_cast<uint32_t>(st.column_int(0)));
      }
      MK_ASSIGN_OR_RETURN(candidates, select_items(db, f.id, deleted));
    }
    std::vector<ItemInfo> doomed;
    for (auto& it : candidates)
      if (has_flag(it.flags, "\\Deleted")) doomed.push_back(it);
    MK_RETURN_IF_ERROR(delete_items(tx, account, f, doomed, "expunge", true));
    for (const auto& it : doomed) out.push_back(it.uid);
    return Status::ok();
  }));
  if (!out.empty()) notify({account.db->name(), account.guid, folder_guid, 0});
  return out;
}

Result<std::vector<ItemInfo>> MailStore::fetch(const Account& account, std::string_view folder_name,
                                               uint32_t lo, uint32_t hi,
                                               std::vector<MessageInfo>* infos) {
  std::vector<ItemInfo> out;
  MK_RETURN_IF_ERROR(scan(account, folder_name, lo, hi,
                          infos ? ScanDetail::kParseCache : ScanDetail::kItem,
                          [&](const ItemInfo& item, MessageInfo* info, const HeaderFieldValues*) {
                            if (infos) {
                              // Swapped, so scan decodes the next record into the storage of
                              // a record from the caller's previous call.
                              if (out.size() < infos->size())
                                std::swap((*infos)[out.size()], *info);
                              else
                                infos->push_back(std::move(*info));
                            }
                            out.push_back(item);
                            return Status::ok();
                          }));
  if (infos) infos->resize(out.size());
  return out;
}

Status MailStore::scan(const Account& account, std::string_view folder_name, uint32_t lo,
                       uint32_t hi, ScanDetail detail, const ItemVisitor& visit) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(folder_name));
  return account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(db, account.id, norm));
    std::string sql = std::string("SELECT ") + kItemColumns;
    if (detail == ScanDetail::kParseCache)
      sql += ", (SELECT info FROM messages WHERE messages.blob = items.blob)";
    if (detail == ScanDetail::kHeaderFields)
      sql += ", (SELECT fields FROM header_fields WHERE header_fields.blob = items.blob)";
    sql += " FROM items WHERE folder_id=? AND uid BETWEEN ? AND ? ORDER BY uid";
    MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
    st.bind(1, f.id).bind(2, static_cast<int64_t>(lo)).bind(3, static_cast<int64_t>(hi));
    // One record for the whole scan: deserializing into it reuses its strings and vectors.
    MessageInfo info;
    HeaderFieldValues fields;
    std::string rebuilt;  // a header fields record made from the parse cache
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      const ItemInfo item = row_to_item(st, 0);
      if (detail == ScanDetail::kParseCache) {
        Status s = deserialize_message_info(st.column_blob_view(8), info);
        if (!s.is_ok()) return corrupt("parse cache of " + to_hex(item.blob) + ": " + s.message());
      }
      if (detail == ScanDetail::kHeaderFields &&
          (st.column_is_null(8) || !decode_header_fields(st.column_blob_view(8), fields).is_ok())) {
        // A message stored by a mailark without the record, or a damaged one (derived data):
        // made again from the parse cache, which has the raw header.
        if (!st.column_is_null(8))
          MK_LOG_WARN("header fields record of {} does not decode; using the parse cache",
                      to_hex(item.blob));
        MK_ASSIGN_OR_RETURN(auto pc, db.prepare("SELECT info FROM messages WHERE blob=?"));
        pc.bind_blob(1, as_bytes(item.blob));
        MK_ASSIGN_OR_RETURN(bool found, pc.step());
        if (!found) return corrupt("message " + to_hex(item.blob) + " is missing");
        Status s = deserialize_message_info(pc.column_blob_view(0), info);
        if (!s.is_ok()) return corrupt("parse cache of " + to_hex(item.blob) + ": " + s.message());
        rebuilt = encode_header_fields(info.header);
        MK_RETURN_IF_ERROR(decode_header_fields(rebuilt, fields));
      }
      MK_RETURN_IF_ERROR(visit(item, detail == ScanDetail::kParseCache ? &info : nullptr,
                               detail == ScanDetail::kHeaderFields ? &fields : nullptr));
    }
    return Status::ok();
  });
}

Result<std::vector<MailStore::UidFlags>> MailStore::uids_and_flags(const Account& account,
                                                                   std::string_view folder_name) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(folder_name));
  std::vector<UidFlags> out;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(db, account.id, norm));
    out.reserve(std::min<uint32_t>(f.uidnext, 1 << 20));
    MK_ASSIGN_OR_RETURN(auto st,
                        db.prepare("SELECT uid, flags FROM items WHERE folder_id=? ORDER BY uid"));
    st.bind(1, f.id);
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.push_back(UidFlags{static_cast<uint32_t>(st.column_int(0)), st.column_text(1)});
    }
    return Status::ok();
  }));
  return out;
}

Result<FolderChanges> MailStore::changes_since(const Account& account, std::string_view folder_name,
                                               uint64_t modseq) {
  MK_ASSIGN_OR_RETURN(std::string norm, normalize_folder_name(folder_name));
  FolderChanges out;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(db, account.id, norm));
    out.highestmodseq = f.highestmodseq;
    MK_ASSIGN_OR_RETURN(auto st,
                        db.prepare(std::string("SELECT ") + kItemColumns +
                                   " FROM items WHERE folder_id=? AND modseq>? ORDER BY uid"));
    st.bind(1, f.id).bind(2, static_cast<int64_t>(modseq));
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.changed.push_back(row_to_item(st, 0));
    }
    MK_ASSIGN_OR_RETURN(
        auto ex,
        db.prepare("SELECT uid FROM expunged WHERE folder_id=? AND modseq>? ORDER BY uid"));
    ex.bind(1, f.id).bind(2, static_cast<int64_t>(modseq));
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, ex.step());
      if (!row) break;
      out.vanished.push_back(static_cast<uint32_t>(ex.column_int(0)));
    }
    return Status::ok();
  }));
  return out;
}

// The encoded form of a message kept inline in its database row; nullopt when it is a file.
static Result<std::optional<std::string>> inline_message(const Account& account,
                                                         const Digest& blob) {
  std::optional<std::string> out;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT data FROM messages WHERE blob=?"));
    st.bind_blob(1, as_bytes(blob));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (row && !st.column_is_null(0)) out = st.column_blob(0);
    return Status::ok();
  }));
  return out;
}

Result<std::string> MailStore::read_message(const Account& account, const Digest& blob) {
  MK_ASSIGN_OR_RETURN(std::optional<std::string> encoded, inline_message(account, blob));
  return decode_message(account, blob, encoded);
}

Status MailStore::read_message(const Account& account, const Digest& blob, BlobBuffers& buffers) {
  bool is_inline = false;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT data FROM messages WHERE blob=?"));
    st.bind_blob(1, as_bytes(blob));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    is_inline = row && !st.column_is_null(0);
    if (is_inline) buffers.encoded.assign(st.column_blob_view(0));
    return Status::ok();
  }));
  Status s = is_inline ? BlobStore::decode_verified(buffers.encoded, blob, buffers.content)
                       : account.db->blobs().get(blob, buffers);
  if (s.code() == ErrorCode::kCorrupt)
    MK_LOG_ERROR("database {}: {}", account.db->name(), s.message());
  return s;
}

Result<std::vector<std::string>> MailStore::read_messages(const Account& account,
                                                          const std::vector<Digest>& blobs) {
  std::vector<std::string> out(blobs.size());
  std::vector<size_t> misses;
  for (size_t i = 0; i < blobs.size(); ++i)
    if (!body_cache_.get(blobs[i], out[i])) misses.push_back(i);
  if (misses.empty()) return out;
  std::vector<size_t> in_files;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT data FROM messages WHERE blob=?"));
    for (size_t i : misses) {
      st.bind_blob(1, as_bytes(blobs[i]));
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (row && !st.column_is_null(0)) {
        MK_RETURN_IF_ERROR(decode_message(account, blobs[i], st.column_blob_view(0), out[i]));
        body_cache_.put(blobs[i], out[i]);
      } else {
        in_files.push_back(i);  // a blob file, or no such body (kNotFound below)
      }
      st.reset();
    }
    return Status::ok();
  }));
  for (size_t i : in_files) {
    MK_ASSIGN_OR_RETURN(out[i], decode_message(account, blobs[i], std::nullopt));
  }
  return out;
}

Result<std::string> MailStore::decode_message(const Account& account, const Digest& blob,
                                              const std::optional<std::string>& encoded) {
  if (encoded) {
    std::string content;
    MK_RETURN_IF_ERROR(decode_message(account, blob, *encoded, content));
    return content;
  }
  auto r = account.db->blobs().get(blob);
  if (!r.is_ok() && r.status().code() == ErrorCode::kCorrupt)
    MK_LOG_ERROR("database {}: {}", account.db->name(), r.status().message());
  return r;
}

Status MailStore::decode_message(const Account& account, const Digest& blob,
                                 std::string_view encoded, std::string& content) {
  Status s = BlobStore::decode_verified(encoded, blob, content);
  if (s.code() == ErrorCode::kCorrupt)
    MK_LOG_ERROR("database {}: {}", account.db->name(), s.message());
  return s;
}

Result<std::unique_ptr<BlobReader>> MailStore::open_message(const Account& account,
                                                            const Digest& blob) {
  MK_ASSIGN_OR_RETURN(std::optional<std::string> encoded, inline_message(account, blob));
  if (encoded) return BlobReader::open_encoded(std::move(*encoded), blob);
  return account.db->blobs().open(blob);
}

Result<MessageInfo> MailStore::message_info(const Account& account, const Digest& blob) {
  std::string bytes;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT info FROM messages WHERE blob=?"));
    st.bind_blob(1, as_bytes(blob));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return not_found("no message " + to_hex(blob));
    bytes = st.column_blob(0);
    return Status::ok();
  }));
  return deserialize_message_info(bytes);
}

Result<bool> MailStore::has_delivery(const Account& account, const Guid& ingress_id) {
  bool found = false;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st,
                        db.prepare("SELECT 1 FROM deliveries WHERE account_id=? AND ingress_id=?"));
    st.bind(1, account.id).bind_blob(2, ingress_id.raw());
    MK_ASSIGN_OR_RETURN(found, st.step());
    return Status::ok();
  }));
  return found;
}

Result<bool> MailStore::has_content_since(const Account& account, const Digest& blob,
                                          int64_t since_ms) {
  bool found = false;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st,
                        db.prepare("SELECT 1 FROM items i JOIN folders f ON i.folder_id=f.id"
                                   " WHERE i.blob=? AND f.account_id=? AND i.saved_ms>=? LIMIT 1"));
    st.bind_blob(1, as_bytes(blob)).bind(2, account.id).bind(3, since_ms);
    MK_ASSIGN_OR_RETURN(found, st.step());
    return Status::ok();
  }));
  return found;
}

int MailStore::subscribe(Listener listener) {
  std::lock_guard lock(listeners_mu_);
  int id = next_listener_++;
  listeners_[id] = std::move(listener);
  return id;
}

void MailStore::unsubscribe(int id) {
  std::lock_guard lock(listeners_mu_);
  listeners_.erase(id);
}

void MailStore::notify(const ChangeEvent& event) {
  std::vector<Listener> copy;
  {
    std::lock_guard lock(listeners_mu_);
    for (auto& [id, l] : listeners_) copy.push_back(l);
  }
  for (auto& l : copy) l(event);
}

}  // namespace mailark
