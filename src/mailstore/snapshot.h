// The logical state of a database, for backup and point-in-time restore: what a base backup
// reads in one consistent read (at one journal sequence number), what replaying journal
// records changes, and what a restore writes back. Plain values, no SQL outside
// snapshot.cc; the replay rules mirror mail_store.cc operation by operation, and the unit
// test proves it (replaying a database's whole journal yields the state read from it).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "mailstore/mail_store.h"
#include "storage/journal.h"

namespace mailark {

struct ItemState {
  uint32_t uid = 0;
  Guid guid;
  std::optional<Guid> ingress_id;
  Digest blob{};
  uint64_t size = 0;
  int64_t internal_date_ms = 0;
  std::vector<std::string> flags;  // sorted, as stored
  uint64_t modseq = 0;
  int64_t saved_ms = 0;
  // Calendar and address book resources: the resource name and the object's UID and
  // component (empty for mail).
  std::string dav_name;
  std::string component_uid;
  std::string component;
  bool operator==(const ItemState&) const = default;
};

struct FolderState {
  Guid guid;
  std::string name;
  std::string kind = "mail";
  std::string special_use;
  bool subscribed = true;
  uint32_t uidvalidity = 0;
  uint32_t uidnext = 1;
  uint64_t highestmodseq = 1;
  int64_t created_ms = 0;
  std::map<uint32_t, ItemState> items;    // by UID
  std::map<uint32_t, uint64_t> expunged;  // UID -> MODSEQ of the removal
  // Calendars and address books: collection properties, and the names of removed
  // resources with the MODSEQ of the removal (what sync-collection reports as gone).
  std::map<std::string, std::string> props;
  std::map<std::string, uint64_t> gone;
  bool operator==(const FolderState&) const = default;
};

struct DeliveryState {
  Guid item;
  int64_t time_ms = 0;
  bool operator==(const DeliveryState&) const = default;
};

struct AccountState {
  Guid guid;
  std::string address;
  int64_t created_ms = 0;
  uint32_t last_uidvalidity = 0;
  std::map<Guid, FolderState> folders;       // by folder GUID
  std::map<Guid, DeliveryState> deliveries;  // by ingress id
  bool operator==(const AccountState&) const = default;

  const FolderState* folder_named(std::string_view name) const;
  uint64_t items() const;
  uint64_t bytes() const;
};

// State at one journal position. `seq` 0 with a zero `head` is the empty database.
struct DatabaseState {
  int64_t seq = 0;
  Digest head{};                          // hash of record `seq`
  int64_t time_ms = 0;                    // time of record `seq`
  std::map<Guid, AccountState> accounts;  // by account GUID
  bool operator==(const DatabaseState&) const = default;

  const AccountState* account_named(std::string_view address) const;
};

// Applies one journal record: the record must be the successor of `state` (seq + 1, chained
// to `head`), else kCorrupt. A record that does not fit the state (a folder or item that
// does not exist) is kCorrupt naming the record: the journal and the state disagree.
// With `only_account` set, records of other accounts only advance the position.
Status replay_record(DatabaseState& state, const JournalRecord& record,
                     const std::optional<Guid>& only_account = std::nullopt);

// Human-readable description of where two states first differ ("" when equal), for restore
// verification and tests.
std::string first_difference(const DatabaseState& a, const DatabaseState& b);

// A consistent read of one database, valid inside MailStore::read_snapshot's callback.
class DatabaseSnapshot {
 public:
  virtual ~DatabaseSnapshot() = default;
  virtual const std::string& database_guid() const = 0;
  // Journal position of this snapshot, the hash of that record and its time.
  virtual int64_t seq() const = 0;
  virtual const Digest& head() const = 0;
  virtual int64_t time_ms() const = 0;
  // The whole state (every account, or one).
  virtual Result<DatabaseState> state(const std::optional<Guid>& only_account = std::nullopt) = 0;
  // Journal records with seq > after (at most `limit`), in order, as stored.
  virtual Result<std::vector<JournalRecord>> journal(int64_t after, int64_t limit) = 0;
  // Walks the chain up to seq(); `problem` gets every broken link or record. With
  // `from_seq` > 0 only the records after it are walked, the first of them chained to
  // `from_hash` (what an earlier verified walk ended on).
  virtual Result<int64_t> verify_journal(
      const std::function<void(int64_t seq, const std::string&)>& problem, int64_t from_seq = 0,
      const Digest& from_hash = Digest{}) = 0;
  // The message content, verified against its digest (kCorrupt names the blob; kNotFound
  // when the database has no such message).
  virtual Result<std::string> message(const Digest& blob) = 0;
  // message(), plus the zstd frame the store keeps it in ("" when stored uncompressed), so a
  // backup need not compress it again.
  struct StoredMessage {
    std::string content;
    std::string zstd_frame;
  };
  virtual Result<StoredMessage> stored_message(const Digest& blob) = 0;
  // The two halves of stored_message(): the stored bytes as they are (read on this thread),
  // and their verification, a pure function any thread may run (backups verify in parallel).
  struct StoredBytes {
    std::string bytes;
    bool is_file = false;  // a blob file, not inline in the database
  };
  virtual Result<StoredBytes> stored_bytes(const Digest& blob) = 0;
  static Result<StoredMessage> verify_stored(std::string_view stored, const Digest& blob,
                                             bool is_file);
  // Every stored message whose digest is in `wanted`, in the table's order (one scan reads a
  // cold database several times faster than a lookup per message); `fn` gets the stored
  // bytes, unverified. Stops at the first error `fn` returns.
  virtual Status scan_stored(const std::set<Digest>& wanted,
                             const std::function<Status(const Digest&, StoredBytes&&)>& fn) = 0;
  // Last modification of the message's blob file (ms), or 0 when the body is kept inline in
  // the database. Lets an incremental backup re-read files changed since the last one.
  virtual int64_t message_file_mtime(const Digest& blob) = 0;
  // How much the snapshot holds, without reading the state: for a backup driven by the
  // journal, which never builds it.
  struct Totals {
    uint64_t accounts = 0, items = 0, bytes = 0;
  };
  virtual Result<Totals> totals() = 0;
  // Messages kept in blob files whose file was modified at or after `since_ms` (by digest):
  // what such a backup re-reads, since a file changed after its body was backed up is damage.
  virtual Result<std::vector<Digest>> files_modified_since(int64_t since_ms) = 0;
  // From now on reads go through a mapping of the database file: for a reader about to read
  // a large share of the bodies (a scrub slice of 1/8, say), which the page cache and
  // readahead then serve instead of a pread per 4 KiB page. Sparse reads are better off
  // without: readahead around each mapped page can be megabytes (the kernel's read_ahead_kb).
  // scan_stored() and a walk of the whole journal map the file by themselves.
  virtual Status map_file() = 0;
};

}  // namespace mailark
