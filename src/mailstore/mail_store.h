// The mail store API: accounts, folders and items on top of the databases. Every protocol
// (LMTP, IMAP, DAV), backup and recovery goes through it; none of them touches SQL. Every
// mutation is one group-committed transaction that also appends its journal record, and it
// returns only once durable. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "mailstore/mime.h"
#include "os/file.h"

namespace mailark {

class BlobReader;
class Database;
class WriteTx;
class DatabaseSnapshot;
struct DatabaseState;
struct ItemState;
struct JournalRecord;

// Provides message bodies to a restore (from a backup repository); the store verifies each
// against its digest.
using MessageSource = std::function<Result<std::string>(const Digest&)>;

// An account opened in its database. Cheap to copy; valid while the MailStore lives.
struct Account {
  Database* db = nullptr;
  int64_t id = 0;
  Guid guid;
  std::string address;
  uint64_t quota_bytes = 0;  // 0 = unlimited; set by the caller from the directory
};

struct FolderInfo {
  int64_t id = 0;
  Guid guid;
  std::string name;         // hierarchy separator '/'; "INBOX" is always spelled so
  std::string kind;         // "mail", later "calendar" / "contacts"
  std::string special_use;  // "\\Sent", ... or empty
  bool subscribed = true;
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 1;
  uint64_t highestmodseq = 0;
  uint32_t messages = 0;
  uint32_t unseen = 0;
  uint64_t bytes = 0;
};

struct ItemInfo {
  uint32_t uid = 0;
  Guid guid;
  std::optional<Guid> ingress_id;
  Digest blob{};
  uint64_t size = 0;
  int64_t internal_date_ms = 0;
  std::vector<std::string> flags;  // sorted, e.g. "\\Seen", "$Label1"
  uint64_t modseq = 0;
};

struct SavedItem {
  uint32_t uidvalidity = 0;
  uint32_t uid = 0;
  Guid guid;
  uint64_t modseq = 0;
  bool duplicate = false;  // deliver(): this ingress id was already delivered; nothing changed
};

struct CopiedItem {
  uint32_t source_uid = 0;
  uint32_t dest_uid = 0;
};

struct CopyResult {
  uint32_t dest_uidvalidity = 0;
  std::vector<CopiedItem> items;
};

enum class FlagOp { kReplace, kAdd, kRemove };

struct FlagChanges {
  std::vector<ItemInfo> changed;      // new flags and modseq
  std::vector<uint32_t> failed_uids;  // CONDSTORE: modseq above unchanged_since
};

struct FolderChanges {
  uint64_t highestmodseq = 0;
  std::vector<ItemInfo> changed;   // items whose modseq > since (new or flag changes)
  std::vector<uint32_t> vanished;  // expunged with modseq > since
};

// What happened, for sessions that watch a folder (IMAP IDLE, DAV push later).
struct ChangeEvent {
  std::string database;
  Guid account;
  Guid folder;  // zero for folder list changes
  uint64_t modseq = 0;
};

struct MessageInput {
  std::string_view raw;
  const MessageInfo* info = nullptr;  // parsed once by the caller; parsed here when null
  int64_t internal_date_ms = 0;       // 0 = now
  std::vector<std::string> flags;
  // SHA-256 of `raw` when the caller already computed it (delivery does, for the ingress
  // record); computed here when absent. Must be the true digest: it becomes the address.
  const Digest* digest = nullptr;
};

// Folder names of the special-use folders created with every account (RFC 6154).
struct SpecialFolder {
  const char* name;
  const char* special_use;
};
extern const SpecialFolder kDefaultFolders[6];

// Validates and normalizes a folder name: non-empty, no NUL/CR/LF, no empty hierarchy
// level, at most 255 bytes a level; any case of "inbox" becomes "INBOX".
Result<std::string> normalize_folder_name(std::string_view name);
std::vector<std::string> normalize_flags(std::vector<std::string> flags);
// Flags as stored: one space between them ("\\Seen $Work").
std::string join_flags(const std::vector<std::string>& flags);
std::vector<std::string> split_flags(std::string_view text);

// Message bodies up to this size are kept inside the database row; larger ones are blob
// files (docs/formats/database.md).
inline constexpr size_t kInlineBodyLimit = 64 * 1024;

class MailStore {
 public:
  // `root` holds one directory per database.
  MailStore(FileSystem& fs, std::string root);
  ~MailStore();

  Status create_database(const std::string& name);
  // Opens the named database once and keeps it open. kNotFound if it does not exist.
  Result<Database*> database(const std::string& name);
  std::vector<std::string> database_names();
  std::string database_dir(const std::string& name) const { return root_ + "/" + name; }

  // ---- accounts
  // Creates the account with INBOX and the special-use folders; kExists if present.
  Result<Account> create_account(const std::string& db, const Guid& guid,
                                 const std::string& address);
  Result<Account> account(const std::string& db, const std::string& address);
  Result<Account> open_or_create_account(const std::string& db, const Guid& guid,
                                         const std::string& address);
  Status delete_account(const Account& account);
  struct Usage {
    uint64_t bytes = 0;
    uint64_t items = 0;
  };
  Result<Usage> usage(const Account& account);

  // ---- folders
  Result<std::vector<FolderInfo>> list_folders(const Account& account);
  Result<FolderInfo> folder(const Account& account, std::string_view name);
  Result<FolderInfo> create_folder(const Account& account, std::string_view name,
                                   std::string_view special_use = {});
  // Renames a folder and its children. Renaming INBOX moves its messages into a new folder
  // and leaves INBOX empty (RFC 3501 6.3.5).
  Status rename_folder(const Account& account, std::string_view from, std::string_view to);
  // Deletes a folder and its items; kConflict for INBOX.
  Status delete_folder(const Account& account, std::string_view name);
  Status set_subscribed(const Account& account, std::string_view name, bool subscribed);

  // ---- items
  // Delivers a message received from the network into INBOX. The item GUID is derived from
  // the ingress id and the account, so a replay of the same ingress record yields the same
  // item; an ingress id already delivered to this account is skipped (duplicate = true).
  Result<SavedItem> deliver(const Account& account, const MessageInput& input,
                            const Guid& ingress_id, std::string_view folder = "INBOX");
  // IMAP APPEND and every other client-side save.
  Result<SavedItem> append(const Account& account, std::string_view folder,
                           const MessageInput& input);
  Result<CopyResult> copy(const Account& account, std::string_view from,
                          const std::vector<uint32_t>& uids, std::string_view to);
  // Moves keeping each item's GUID.
  Result<CopyResult> move(const Account& account, std::string_view from,
                          const std::vector<uint32_t>& uids, std::string_view to);
  // unchanged_since = 0 means no CONDSTORE condition.
  Result<FlagChanges> store_flags(const Account& account, std::string_view folder,
                                  const std::vector<uint32_t>& uids, FlagOp op,
                                  const std::vector<std::string>& flags,
                                  uint64_t unchanged_since = 0);
  // Removes the items with \Deleted (restricted to `uids` when given). Returns expunged UIDs.
  Result<std::vector<uint32_t>> expunge(const Account& account, std::string_view folder,
                                        const std::optional<std::vector<uint32_t>>& uids);

  // Items with lo <= uid <= hi, in UID order. With `infos`, also each item's parse cache
  // (same order), read in the same query.
  Result<std::vector<ItemInfo>> fetch(const Account& account, std::string_view folder,
                                      uint32_t lo = 1, uint32_t hi = UINT32_MAX,
                                      std::vector<MessageInfo>* infos = nullptr);
  // UIDs and flags (space-separated, as stored) of the whole folder in UID order: what
  // IMAP SELECT needs, much cheaper than fetch() for a large folder.
  struct UidFlags {
    uint32_t uid = 0;
    std::string flags;
  };
  Result<std::vector<UidFlags>> uids_and_flags(const Account& account, std::string_view folder);
  Result<FolderChanges> changes_since(const Account& account, std::string_view folder,
                                      uint64_t modseq);
  // The raw message, verified against its hash (kCorrupt if it does not match).
  Result<std::string> read_message(const Account& account, const Digest& blob);
  // The raw message as a stream, for large messages (see BlobReader: a hash mismatch shows
  // only at the end, so read it through once before sending anything).
  Result<std::unique_ptr<BlobReader>> open_message(const Account& account, const Digest& blob);
  Result<MessageInfo> message_info(const Account& account, const Digest& blob);
  // True when this ingress id has been delivered to the account.
  Result<bool> has_delivery(const Account& account, const Guid& ingress_id);
  // True when the account holds an item with exactly this content saved at or after
  // `since_ms` (an MTA's retry of a delivery that got no reply, for replay).
  Result<bool> has_content_since(const Account& account, const Digest& blob, int64_t since_ms);

  // Saves an item brought back from a backup into a live account, keeping its GUID (and
  // ingress id) with a new UID. Skipped (duplicate = true) when the account already holds an
  // item with this GUID, so restoring twice changes nothing. Not held to the quota: the
  // operator restores what the user had. Journalled as "restore".
  Result<SavedItem> restore_item(const Account& account, std::string_view folder,
                                 const ItemState& item, std::string_view raw);
  // restore_item for many items of one folder in one transaction (one fsync). Each raw body
  // must hash to its item's blob digest: the caller verified it (a restore reads through the
  // repository's verification); it becomes the content address.
  struct RestoredItem {
    const ItemState* item;
    std::string_view raw;
  };
  Result<std::vector<SavedItem>> restore_items(const Account& account, std::string_view folder,
                                               const std::vector<RestoredItem>& items);
  // Every item GUID of the account (for restore dry runs).
  Result<std::set<Guid>> item_guids(const Account& account);

  // ---- backup and restore (mailstore/snapshot.h)
  // Runs `fn` on a consistent read of the database: one read transaction, one journal
  // position, while writers go on.
  Status read_snapshot(const std::string& db, const std::function<Status(DatabaseSnapshot&)>& fn);
  // Creates database `name` holding exactly `state` and the journal records `journal`
  // (verbatim; they must end at state.seq). Bodies come from `messages` and are verified.
  // Built in a scratch directory and published by one rename, so a crash never leaves a
  // partial database. kExists when the name is taken. `progress(done, total)` counts items.
  Status build_database(const std::string& name, const DatabaseState& state,
                        const std::vector<JournalRecord>& journal, const std::string& restored_from,
                        const MessageSource& messages,
                        const std::function<void(uint64_t, uint64_t)>& progress = {});

  // ---- change notification (in-process)
  using Listener = std::function<void(const ChangeEvent&)>;
  int subscribe(Listener listener);
  void unsubscribe(int id);

 private:
  Result<SavedItem> save(const Account& account, std::string_view folder, const MessageInput& input,
                         const std::optional<Guid>& ingress_id, const Guid& guid, const char* op);
  struct PreparedSave;
  Result<PreparedSave> prepare_save(const Account& account, std::string_view folder,
                                    const MessageInput& input,
                                    const std::optional<Guid>& ingress_id, const Guid& guid,
                                    const char* op);
  Status insert_prepared(WriteTx& tx, const Account& account, const PreparedSave& p,
                         SavedItem* saved, Guid* folder_guid);
  Result<CopyResult> copy_or_move(const Account& account, std::string_view from,
                                  const std::vector<uint32_t>& uids, std::string_view to,
                                  bool move);
  void notify(const ChangeEvent& event);
  Status remove_tree(const std::string& dir);
  Status fill_database(const std::string& build_dir, const std::string& name,
                       const DatabaseState& state, const std::vector<JournalRecord>& journal,
                       const std::string& restored_from, const MessageSource& messages,
                       const std::function<void(uint64_t, uint64_t)>& progress);

  FileSystem& fs_;
  std::string root_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Database>> databases_;
  std::mutex listeners_mu_;
  std::map<int, Listener> listeners_;
  int next_listener_ = 1;
};

}  // namespace mailark
