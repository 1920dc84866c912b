// SQL building blocks shared by the mail store's implementation files (mail_store.cc for
// mail, groupware_store.cc for calendars and address books). Internal to src/mailstore:
// every function runs inside the caller's open transaction and keeps the counters, quota
// usage and message reference counts consistent with the rows it touches.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "mailstore/mail_store.h"
#include "storage/blob_store.h"
#include "storage/database.h"
#include "storage/sqlite.h"

namespace mailark {

// One item ready to be inserted: its body encoded (small) or already in a durable blob file.
struct MailStore::PreparedSave {
  std::string folder;  // normalized
  std::vector<std::string> flags;
  std::string info_bytes;
  std::string header_fields;  // the header fields record
  BlobStore::PutResult put;
  std::string inline_data;  // empty when the body is a blob file
  uint64_t size = 0;
  int64_t internal_date_ms = 0;
  std::optional<Guid> ingress_id;
  Guid guid;
  const char* op = "append";
  bool by_reference = false;  // the message row exists: only its reference count changes
};

namespace store_sql {

using json = nlohmann::json;

struct FolderRow {
  int64_t id = 0;
  Guid guid;
  std::string name;
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 1;
  uint64_t highestmodseq = 0;
  std::string kind = "mail";
};

bool has_flag(const std::vector<std::string>& flags, std::string_view flag);
// kNotFound when the account has no folder of that name.
Result<FolderRow> load_folder(SqliteDb& db, int64_t account_id, std::string_view name);
Status save_folder_counters(SqliteDb& db, const FolderRow& f);
// Inserts and journals ("folder.create") a folder with a fresh UIDVALIDITY.
Result<FolderRow> insert_folder(WriteTx& tx, const Account& account, const std::string& name,
                                std::string_view special_use, std::string_view kind = "mail");
// Reads the item columns of kItemColumns starting at column `first`.
ItemInfo row_to_item(const SqliteStatement& st, int first);
extern const char* const kItemColumns;
Status adjust_usage(SqliteDb& db, int64_t account_id, int64_t bytes, int64_t items);
// kOverQuota when `extra` bytes do not fit in the account's quota.
Status check_quota(SqliteDb& db, const Account& account, uint64_t extra);
// Adds `delta` to a message's reference count; kCorrupt when there is no such message.
Status ref_message(SqliteDb& db, const Digest& blob, int64_t delta);
Status insert_item(SqliteDb& db, int64_t folder_id, const ItemInfo& it, int64_t saved_ms);
Result<std::vector<ItemInfo>> select_items(SqliteDb& db, int64_t folder_id,
                                           const std::vector<uint32_t>& uids);
// Removes items at one new MODSEQ (recorded in `expunged`), dropping their references and
// usage; journals `op` per item when `journal_each`.
Status delete_items(WriteTx& tx, const Account& account, FolderRow& folder,
                    const std::vector<ItemInfo>& items, const char* op, bool journal_each);
bool valid_flag(const std::string& f);
// Inserts the message row of a prepared save, or adds a reference to the existing one.
Status upsert_message(SqliteDb& db, const MailStore::PreparedSave& p);
// Stores (or replaces) the header fields record of a message; every writer of a `messages`
// row writes this one in the same transaction.
Status put_header_fields(SqliteDb& db, const Digest& blob, std::string_view record);

// The stored time range of a calendar or address book resource (what dav_resources keeps
// for time-range prefilters), derived from its body.
struct ObjectRange {
  int64_t start = INT64_MIN;
  int64_t end = INT64_MAX;
  bool recurring = false;
};
Result<ObjectRange> object_range(std::string_view component, std::string_view body);
// Inserts the dav_resources row of item `r.uid` (with its copy of the item's guid, blob,
// size, modseq and saved_ms); the item row must hold the same values.
Status insert_resource(SqliteDb& db, int64_t folder_id, const DavResource& r);

}  // namespace store_sql
}  // namespace mailark
