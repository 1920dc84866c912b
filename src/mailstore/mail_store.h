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
#include "mailstore/body_cache.h"
#include "mailstore/header_fields.h"
#include "mailstore/mime.h"
#include "os/file.h"

namespace mailark {

class BlobReader;
class Database;
struct BlobBuffers;
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

// ---- calendars and address books (CalDAV/CardDAV)
// A collection is a folder of kind "calendar" or "contacts" named "#calendars/<segment>" or
// "#addressbooks/<segment>" (IMAP never lists folders that are not mail, and refuses to
// create or rename folders under these roots). Its resources are items whose content is
// the iCalendar object or vCard exactly as received, addressed by SHA-256 like mail; the
// resource name and the object's UID sit beside the item (docs/formats/database.md).
enum class CollectionKind { kCalendar, kContacts };
inline constexpr std::string_view kCalendarsRoot = "#calendars";
inline constexpr std::string_view kAddressBooksRoot = "#addressbooks";
// The segment of the collection every user has (created on first use).
inline constexpr std::string_view kDefaultCollection = "default";
// Dead and writable properties of a collection ("{DAV:}displayname" -> inner XML or text)
// and, for calendars, "{urn:ietf:params:xml:ns:caldav}supported-calendar-component-set" as
// a comma-separated list of component names.
using CollectionProps = std::map<std::string, std::string>;
inline constexpr std::string_view kComponentSetProp =
    "{urn:ietf:params:xml:ns:caldav}supported-calendar-component-set";

// True for names under the calendar and address book roots (or the roots themselves).
bool is_groupware_folder_name(std::string_view name);
// A collection segment or resource name: 1..255 bytes, no '/', no control characters, not
// "." or "..". kInvalid otherwise.
Status validate_dav_name(std::string_view name);

struct DavCollection {
  FolderInfo folder;
  CollectionKind kind = CollectionKind::kCalendar;
  std::string segment;
  CollectionProps props;
  // Components this calendar accepts (VEVENT, VTODO, VJOURNAL); empty for address books.
  std::vector<std::string> components;
};

struct DavResource {
  std::string name;  // the last path segment, e.g. "9b1d.ics"
  uint32_t uid = 0;  // changes with every new version (items are immutable)
  Guid guid;         // stays for the life of the resource, through edits and restores
  Digest blob{};     // content hash: the strong ETag
  uint64_t size = 0;
  uint64_t modseq = 0;
  int64_t saved_ms = 0;             // Last-Modified
  std::string component_uid;        // iCalendar/vCard UID
  std::string component;            // VEVENT, VTODO, VJOURNAL, VCARD
  int64_t range_start = INT64_MIN;  // instants any occurrence may touch (calendars)
  int64_t range_end = INT64_MAX;
  bool recurring = false;  // RRULE/RDATE or overrides: the range alone decides nothing
};

struct DavPut {
  std::string_view body;
  std::optional<Digest> if_match;  // replace only this version
  bool if_none_match = false;      // create only (If-None-Match: *)
  uint64_t max_size = 0;           // 0 = no limit
};

struct DavPutResult {
  enum class Outcome {
    kCreated,
    kReplaced,
    kPreconditionFailed,    // If-Match / If-None-Match did not hold
    kInvalid,               // not a valid calendar object / vCard (`reason` says why)
    kUnsupportedComponent,  // the calendar does not take this component type
    kUidConflict,           // another resource holds this UID (`resource` is that one)
    kTooLarge,
  };
  Outcome outcome = Outcome::kCreated;
  DavResource resource;  // the stored version, or the conflicting resource
  std::string reason;
};

struct DavChanges {
  uint64_t highestmodseq = 0;
  std::vector<DavResource> changed;  // created or changed after `since`, in MODSEQ order
  struct Removed {
    std::string name;
    uint64_t modseq = 0;
  };
  std::vector<Removed> removed;  // removed after `since` and not present now, MODSEQ order
};

struct BusyPeriod {
  int64_t start = 0;
  int64_t end = 0;
  std::string fbtype;  // BUSY, BUSY-TENTATIVE, BUSY-UNAVAILABLE
};

class MailStore {
 public:
  // `root` holds one directory per database.
  MailStore(FileSystem& fs, std::string root);
  ~MailStore();

  // Memory for recently read calendar objects and contacts (resources_named, read_messages);
  // 0, the default, keeps none. The server sets [dav] body_cache.
  void set_body_cache_bytes(size_t bytes) { body_cache_.set_capacity(bytes); }
  const BodyCache& body_cache() const { return body_cache_; }

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
  // With `counts` false, messages, unseen and bytes are left 0 (they take a pass over the
  // folder's items; SELECT counts from the UID list it reads anyway).
  Result<FolderInfo> folder(const Account& account, std::string_view name, bool counts = true);
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
  // (same order), read in the same query; `infos` is resized to match, and the records it held
  // lend their storage (a caller reading batch after batch passes the same vector).
  Result<std::vector<ItemInfo>> fetch(const Account& account, std::string_view folder,
                                      uint32_t lo = 1, uint32_t hi = UINT32_MAX,
                                      std::vector<MessageInfo>* infos = nullptr);
  // The same one item at a time, inside one read: `visit` gets each item and what `detail`
  // asks for beside it (else nullptr), all valid only during the call (the parse cache may be
  // moved from); an error it returns ends the scan and is returned.
  enum class ScanDetail {
    kItem,          // the item row only
    kHeaderFields,  // and its message's header fields record (header_fields.h)
    kParseCache,    // and its message's parse cache
  };
  using ItemVisitor =
      std::function<Status(const ItemInfo&, MessageInfo*, const HeaderFieldValues*)>;
  Status scan(const Account& account, std::string_view folder, uint32_t lo, uint32_t hi,
              ScanDetail detail, const ItemVisitor& visit);
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
  // The same into `buffers.content`, reusing their memory: for reading many messages in turn.
  Status read_message(const Account& account, const Digest& blob, BlobBuffers& buffers);
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
  // With `by_reference` (and no `raw`) the item refers to the body the database still holds
  // (see held_messages()), as a COPY does: nothing is read, parsed or written but the item.
  struct RestoredItem {
    const ItemState* item;
    std::string_view raw;
    bool by_reference = false;
  };
  Result<std::vector<SavedItem>> restore_items(const Account& account, std::string_view folder,
                                               const std::vector<RestoredItem>& items);
  // Every item GUID of the account (for restore dry runs).
  Result<std::set<Guid>> item_guids(const Account& account);
  // Which of `blobs` (digest -> size) the account's database still holds, referenced or not
  // (an expunged message's body stays until it is collected): a restore refers to those
  // instead of reading them from a backup.
  Result<std::set<Digest>> held_messages(const Account& account,
                                         const std::map<Digest, uint64_t>& blobs);
  // Reads, on a few threads, the index pages that inserting items with these GUIDs and
  // bodies will change. The keys are random, so each lands on a page of its own; the one
  // writer then finds them in the page cache instead of waiting for each from the disk in
  // turn (restoring 500 held messages: 1,600 cold reads). Best effort: a failure only costs
  // time, and it is logged at debug level.
  void prefetch_item_pages(const Account& account,
                           const std::vector<std::pair<Guid, Digest>>& keys);

  // ---- calendars and address books (groupware_store.cc)
  // Creates the default calendar and address book when the account has none of that kind.
  Status ensure_default_collections(const Account& account);
  Result<std::vector<DavCollection>> collections(const Account& account, CollectionKind kind);
  Result<DavCollection> collection(const Account& account, CollectionKind kind,
                                   std::string_view segment);
  // kExists when the segment is taken; `components` empty = VEVENT and VTODO.
  Result<DavCollection> create_collection(const Account& account, CollectionKind kind,
                                          std::string_view segment, const CollectionProps& props,
                                          const std::vector<std::string>& components = {});
  // Sets (non-empty value) and removes (empty value) properties in one journalled change.
  Status update_collection_props(const Account& account, const DavCollection& collection,
                                 const CollectionProps& changes);
  Status delete_collection(const Account& account, const DavCollection& collection);
  // Every resource of the collection; with `range`, only those whose stored range overlaps
  // [first, second) (a prefilter: callers still evaluate the object itself).
  Result<std::vector<DavResource>> resources(
      const Account& account, const DavCollection& collection,
      const std::optional<std::pair<int64_t, int64_t>>& range = std::nullopt);
  // kNotFound when absent.
  Result<DavResource> resource(const Account& account, const DavCollection& collection,
                               std::string_view name);
  // The resources of these names that exist, in one read (multiget), in name order. With `bodies`,
  // each one's content too (bodies[i] for the i-th resource returned), verified as read_messages.
  Result<std::vector<DavResource>> resources_named(const Account& account,
                                                   const DavCollection& collection,
                                                   const std::vector<std::string>& names,
                                                   std::vector<std::string>* bodies = nullptr);
  // Bodies of many items in one read, each verified against its digest; kCorrupt names the
  // first that fails.
  Result<std::vector<std::string>> read_messages(const Account& account,
                                                 const std::vector<Digest>& blobs);
  // One body from what its messages row holds: `encoded` is the row's inline data, nullopt
  // when the body is a blob file.
  Result<std::string> decode_message(const Account& account, const Digest& blob,
                                     const std::optional<std::string>& encoded);
  // The same from inline data into `content` (kept for its capacity), without a copy of
  // `encoded`.
  Status decode_message(const Account& account, const Digest& blob, std::string_view encoded,
                        std::string& content);
  // The resource holding this iCalendar/vCard UID in the collection; kNotFound when none.
  Result<DavResource> resource_by_uid(const Account& account, const DavCollection& collection,
                                      std::string_view component_uid);
  // Every resource of the account holding this UID, over all its collections of `kind`
  // (recovery de-duplicates appointments by UID across calendars).
  struct UidHolder {
    DavCollection collection;
    DavResource resource;
  };
  Result<std::vector<UidHolder>> find_by_uid(const Account& account, CollectionKind kind,
                                             std::string_view component_uid);
  // Validates the object (iCalendar for calendars, vCard for address books) and stores it
  // under `name`, as a new resource or a new version of the existing one (same GUID, new
  // UID and MODSEQ). Durable when it returns kCreated or kReplaced; anything else changed
  // nothing. An identical body is kReplaced without a change.
  Result<DavPutResult> put_resource(const Account& account, const DavCollection& collection,
                                    std::string_view name, const DavPut& put);
  // Removes the resource; kNotFound when absent, kConflict when `if_match` is not its ETag.
  Status delete_resource(const Account& account, const DavCollection& collection,
                         std::string_view name, const std::optional<Digest>& if_match = {});
  // A resource brought back from a backup, keeping its GUID, with a new UID. Skipped
  // (duplicate = true) when the account holds an item with this GUID or the collection an
  // object with its UID, so restoring twice changes nothing; renamed to "<GUID>.ics" (or
  // .vcf) when its name is taken by another object.
  Result<SavedItem> restore_resource(const Account& account, const DavCollection& collection,
                                     const ItemState& item, std::string_view raw);
  // What changed after MODSEQ `since` (a sync token); kInvalid when `since` is ahead of the
  // collection.
  Result<DavChanges> resource_changes(const Account& account, const DavCollection& collection,
                                      uint64_t since);
  // The account's busy time between start and end (ms) over all its calendars: events that
  // are not transparent or cancelled, recurrences expanded. kTooLarge when an event has too
  // many instances in the range to list (a narrower range works).
  Result<std::vector<BusyPeriod>> busy_periods(const Account& account, int64_t start, int64_t end);

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

  // A body encoded and stored, ready to be inserted (internal; defined in store_sql.h).
  struct PreparedSave;

 private:
  Result<SavedItem> save(const Account& account, std::string_view folder, const MessageInput& input,
                         const std::optional<Guid>& ingress_id, const Guid& guid, const char* op);
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
  Status remove_folder(const Account& account, const std::string& normalized_name);
  Result<DavPutResult> store_resource(const Account& account, const DavCollection& collection,
                                      std::string_view name, const DavPut& put,
                                      const Guid* keep_guid);
  Status remove_tree(const std::string& dir);
  Status fill_database(const std::string& build_dir, const std::string& name,
                       const DatabaseState& state, const std::vector<JournalRecord>& journal,
                       const std::string& restored_from, const MessageSource& messages,
                       const std::function<void(uint64_t, uint64_t)>& progress);

  FileSystem& fs_;
  std::string root_;
  BodyCache body_cache_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Database>> databases_;
  std::mutex listeners_mu_;
  std::map<int, Listener> listeners_;
  int next_listener_ = 1;
};

}  // namespace mailark
