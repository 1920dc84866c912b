// Calendars and address books in the mail store: collections are folders of kind "calendar"
// or "contacts", resources are items (content-addressed, journalled, backed up like mail)
// with their resource name and iCalendar/vCard UID in dav_resources. Every change is one
// group-committed transaction with its journal record ("dav.put", "dav.delete",
// "folder.props"); the replay rules in snapshot.cc mirror these functions.
#include <algorithm>

#include "base/log.h"
#include "mailstore/groupware.h"
#include "mailstore/mail_store.h"
#include "mailstore/snapshot.h"
#include "mailstore/store_sql.h"

namespace mailark {

using namespace store_sql;

namespace {

const char* kind_name(CollectionKind kind) {
  return kind == CollectionKind::kCalendar ? "calendar" : "contacts";
}

std::string collection_folder(CollectionKind kind, std::string_view segment) {
  std::string out(kind == CollectionKind::kCalendar ? kCalendarsRoot : kAddressBooksRoot);
  out += '/';
  out += segment;
  return out;
}

std::vector<std::string> split_components(const std::string& list) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    if (comma > pos) out.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

Result<CollectionProps> load_props(SqliteDb& db, int64_t folder_id) {
  CollectionProps props;
  MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT props FROM folder_props WHERE folder_id=?"));
  st.bind(1, folder_id);
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return props;
  json j = json::parse(st.column_text(0), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return corrupt("properties of folder " + std::to_string(folder_id) + " are not JSON");
  for (auto& [k, v] : j.items())
    if (v.is_string()) props[k] = v.get<std::string>();
  return props;
}

// Writes the whole property set and journals it (replay replaces the set).
Status save_props(WriteTx& tx, const Account& account, const FolderRow& f,
                  const CollectionProps& props) {
  json j = json::object();
  for (const auto& [k, v] : props) j[k] = v;
  MK_ASSIGN_OR_RETURN(auto st, tx.db().prepare("INSERT OR REPLACE INTO folder_props VALUES (?,?)"));
  st.bind(1, f.id).bind(2, j.dump());
  MK_RETURN_IF_ERROR(st.run());
  json p = {{"folder", f.guid.hex()}, {"props", j}};
  return tx.journal("folder.props", account.guid, Guid{}, p.dump()).status();
}

// A resource's row holds a copy of its item's columns (the items of calendars and address
// books never change), so reads need no join with items.
constexpr const char* kResourceColumns =
    "d.name, d.uid, d.guid, d.blob, d.size, d.modseq, d.saved_ms, d.component_uid, d.component,"
    " d.range_start, d.range_end, d.recurring";
constexpr const char* kResourceFrom = " FROM dav_resources d";
// Conditions for find_resource. The planner would take the unique dav_by_name and then read
// the row; the covering index answers from one descent.
constexpr const char* kByName = " INDEXED BY dav_by_name_all WHERE d.folder_id=? AND d.name=?";
constexpr const char* kByComponentUid = " WHERE d.folder_id=? AND d.component_uid=?";

DavResource row_to_resource(const SqliteStatement& st) {
  DavResource r;
  r.name = st.column_text(0);
  r.uid = static_cast<uint32_t>(st.column_int(1));
  r.guid = Guid::from_bytes(st.column_blob_view(2)).value_or(Guid{});
  r.blob = digest_from_bytes(st.column_blob_view(3)).value_or(Digest{});
  r.size = static_cast<uint64_t>(st.column_int(4));
  r.modseq = static_cast<uint64_t>(st.column_int(5));
  r.saved_ms = st.column_int(6);
  r.component_uid = st.column_text(7);
  r.component = st.column_text(8);
  r.range_start = st.column_int(9);
  r.range_end = st.column_int(10);
  r.recurring = st.column_int(11) != 0;
  return r;
}

// The resource matching `where` (kByName or kByComponentUid, bound to the folder and `key`),
// if any.
Result<std::optional<DavResource>> find_resource(SqliteDb& db, int64_t folder_id, const char* where,
                                                 std::string_view key) {
  MK_ASSIGN_OR_RETURN(
      auto st, db.prepare(std::string("SELECT ") + kResourceColumns + kResourceFrom + where));
  st.bind(1, folder_id).bind(2, key);
  MK_ASSIGN_OR_RETURN(bool row, st.step());
  if (!row) return std::optional<DavResource>{};
  return std::optional<DavResource>(row_to_resource(st));
}

Result<FolderRow> load_collection_row(SqliteDb& db, const Account& account,
                                      const DavCollection& c) {
  MK_ASSIGN_OR_RETURN(FolderRow f, load_folder(db, account.id, c.folder.name));
  if (f.guid != c.folder.guid) return not_found("collection " + c.segment + " was replaced");
  return f;
}

// What a body says about itself: validation and the fields kept beside the item.
struct ObjectFacts {
  std::string uid;
  std::string component;
  int64_t range_start = INT64_MIN;
  int64_t range_end = INT64_MAX;
  bool recurring = false;
};

Result<ObjectFacts> examine(CollectionKind kind, std::string_view body) {
  ObjectFacts facts;
  if (kind == CollectionKind::kCalendar) {
    MK_ASSIGN_OR_RETURN(CalendarObjectInfo info, parse_calendar_object(body));
    facts.uid = info.uid;
    facts.component = info.component;
    facts.range_start = info.range_start;
    facts.range_end = info.range_end;
    facts.recurring = info.recurring;
  } else {
    MK_ASSIGN_OR_RETURN(ContactInfo info, parse_vcard(body));
    if (info.uid.empty()) return invalid("the vCard has no UID");
    facts.uid = info.uid;
    facts.component = "VCARD";
  }
  return facts;
}

}  // namespace

Result<store_sql::ObjectRange> store_sql::object_range(std::string_view component,
                                                       std::string_view body) {
  if (component == "VCARD") return ObjectRange{};
  MK_ASSIGN_OR_RETURN(ObjectFacts facts, examine(CollectionKind::kCalendar, body));
  return ObjectRange{facts.range_start, facts.range_end, facts.recurring};
}

Status store_sql::insert_resource(SqliteDb& db, int64_t folder_id, const DavResource& r) {
  // The message row exists: every writer stores the body before the resource.
  MK_ASSIGN_OR_RETURN(auto ins, db.prepare("INSERT INTO dav_resources(folder_id, uid, name,"
                                           " component_uid, component, range_start, range_end,"
                                           " recurring, guid, blob, size, modseq, saved_ms,"
                                           " message_row) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,"
                                           " (SELECT rowid FROM messages WHERE blob=?10))"));
  ins.bind(1, folder_id)
      .bind(2, static_cast<int64_t>(r.uid))
      .bind(3, r.name)
      .bind(4, r.component_uid)
      .bind(5, r.component)
      .bind(6, r.range_start)
      .bind(7, r.range_end)
      .bind(8, r.recurring ? 1 : 0)
      .bind_blob(9, r.guid.raw())
      .bind_blob(10, as_bytes(r.blob))
      .bind(11, static_cast<int64_t>(r.size))
      .bind(12, static_cast<int64_t>(r.modseq))
      .bind(13, r.saved_ms);
  return ins.run();
}

bool is_groupware_folder_name(std::string_view name) {
  for (std::string_view root : {kCalendarsRoot, kAddressBooksRoot}) {
    if (name.size() >= root.size() && name.compare(0, root.size(), root) == 0 &&
        (name.size() == root.size() || name[root.size()] == '/'))
      return true;
  }
  return false;
}

Status validate_dav_name(std::string_view name) {
  if (name.empty()) return invalid("empty name");
  if (name.size() > 255) return invalid("name longer than 255 bytes");
  if (name == "." || name == "..") return invalid("name is a relative path segment");
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7f || c == '/' || c == '\\')
      return invalid("name has a '/' or a control character");
  return Status::ok();
}

Status MailStore::ensure_default_collections(const Account& account) {
  for (CollectionKind kind : {CollectionKind::kCalendar, CollectionKind::kContacts}) {
    MK_ASSIGN_OR_RETURN(auto existing, collections(account, kind));
    if (!existing.empty()) continue;
    CollectionProps props;
    props["{DAV:}displayname"] = kind == CollectionKind::kCalendar ? "Calendar" : "Contacts";
    auto created = create_collection(account, kind, kDefaultCollection, props);
    // Another session created it first: fine.
    if (!created.is_ok() && created.status().code() != ErrorCode::kExists) return created.status();
  }
  return Status::ok();
}

namespace {

// Collections of the account (all of a kind, or the one named) with their properties, without
// counting their items (a calendar may hold tens of thousands; DAV never needs the count).
Status read_collections(SqliteDb& db, int64_t account_id, CollectionKind kind,
                        const std::string* only_name, std::vector<DavCollection>* out) {
  std::string sql =
      "SELECT f.id, f.guid, f.name, f.subscribed, f.uidvalidity, f.uidnext, f.highestmodseq,"
      " p.props FROM folders f LEFT JOIN folder_props p ON p.folder_id=f.id"
      " WHERE f.account_id=? AND f.kind=?";
  sql += only_name ? " AND f.name=?" : " ORDER BY f.name";
  MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
  st.bind(1, account_id).bind(2, kind_name(kind));
  if (only_name) st.bind(3, *only_name);
  std::string prefix = collection_folder(kind, "");
  while (true) {
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) break;
    DavCollection c;
    c.kind = kind;
    c.folder.id = st.column_int(0);
    c.folder.guid = Guid::from_bytes(st.column_blob(1)).value_or(Guid{});
    c.folder.name = st.column_text(2);
    if (c.folder.name.compare(0, prefix.size(), prefix) != 0) continue;
    c.segment = c.folder.name.substr(prefix.size());
    c.folder.kind = kind_name(kind);
    c.folder.subscribed = st.column_int(3) != 0;
    c.folder.uidvalidity = static_cast<uint32_t>(st.column_int(4));
    c.folder.uidnext = static_cast<uint32_t>(st.column_int(5));
    c.folder.highestmodseq = static_cast<uint64_t>(st.column_int(6));
    if (!st.column_is_null(7)) {
      json j = json::parse(st.column_text(7), nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return corrupt("properties of " + c.folder.name + " are not JSON");
      for (auto& [k, v] : j.items())
        if (v.is_string()) c.props[k] = v.get<std::string>();
    }
    if (kind == CollectionKind::kCalendar)
      c.components = split_components(c.props[std::string(kComponentSetProp)]);
    out->push_back(std::move(c));
  }
  return Status::ok();
}

}  // namespace

Result<std::vector<DavCollection>> MailStore::collections(const Account& account,
                                                          CollectionKind kind) {
  std::vector<DavCollection> out;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    return read_collections(db, account.id, kind, nullptr, &out);
  }));
  return out;
}

Result<DavCollection> MailStore::collection(const Account& account, CollectionKind kind,
                                            std::string_view segment) {
  MK_RETURN_IF_ERROR(validate_dav_name(segment));
  std::string name = collection_folder(kind, segment);
  std::vector<DavCollection> out;
  MK_RETURN_IF_ERROR(account.db->read(
      [&](SqliteDb& db) -> Status { return read_collections(db, account.id, kind, &name, &out); }));
  if (out.empty()) return not_found("no collection " + std::string(segment));
  return std::move(out.front());
}

Result<DavCollection> MailStore::create_collection(const Account& account, CollectionKind kind,
                                                   std::string_view segment,
                                                   const CollectionProps& given,
                                                   const std::vector<std::string>& components) {
  MK_RETURN_IF_ERROR(validate_dav_name(segment));
  CollectionProps props = given;
  if (kind == CollectionKind::kCalendar) {
    std::string set;
    for (const auto& c :
         components.empty() ? std::vector<std::string>{"VEVENT", "VTODO"} : components) {
      if (c != "VEVENT" && c != "VTODO" && c != "VJOURNAL")
        return invalid("calendar component " + c + " is not supported");
      if (!set.empty()) set += ',';
      set += c;
    }
    props[std::string(kComponentSetProp)] = set;
  }
  std::string name = collection_folder(kind, segment);
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    MK_ASSIGN_OR_RETURN(FolderRow f, insert_folder(tx, account, name, "", kind_name(kind)));
    if (!props.empty()) MK_RETURN_IF_ERROR(save_props(tx, account, f, props));
    return Status::ok();
  }));
  notify({account.db->name(), account.guid, Guid{}, 0});
  return collection(account, kind, segment);
}

Status MailStore::update_collection_props(const Account& account, const DavCollection& c,
                                          const CollectionProps& changes) {
  Status s = account.db->write([&](WriteTx& tx) -> Status {
    MK_ASSIGN_OR_RETURN(FolderRow f, load_collection_row(tx.db(), account, c));
    MK_ASSIGN_OR_RETURN(CollectionProps props, load_props(tx.db(), f.id));
    for (const auto& [k, v] : changes) {
      if (v.empty())
        props.erase(k);
      else
        props[k] = v;
    }
    return save_props(tx, account, f, props);
  });
  MK_RETURN_IF_ERROR(s);
  notify({account.db->name(), account.guid, c.folder.guid, 0});
  return Status::ok();
}

Status MailStore::delete_collection(const Account& account, const DavCollection& c) {
  return remove_folder(account, c.folder.name);
}

Result<std::vector<DavResource>> MailStore::resources(
    const Account& account, const DavCollection& c,
    const std::optional<std::pair<int64_t, int64_t>>& range) {
  std::vector<DavResource> out;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    std::string sql =
        std::string("SELECT ") + kResourceColumns + kResourceFrom + " WHERE d.folder_id=?";
    // An occurrence overlaps [a, b) when it starts before b and ends after a; instants
    // (start == end) at a count, so the stored range end is compared with >=.
    if (range) sql += " AND d.range_start < ? AND d.range_end >= ?";
    sql += " ORDER BY d.name";
    MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
    st.bind(1, c.folder.id);
    if (range) st.bind(2, range->second).bind(3, range->first);
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.push_back(row_to_resource(st));
    }
    return Status::ok();
  }));
  return out;
}

// The one resource matching `where` (as find_resource), kNotFound naming `what` when none.
static Result<DavResource> one_resource(const Account& account, const DavCollection& c,
                                        const char* where, std::string_view key,
                                        const std::string& what) {
  std::optional<DavResource> found;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(found, find_resource(db, c.folder.id, where, key));
    return Status::ok();
  }));
  if (!found) return not_found(what);
  return std::move(*found);
}

Result<DavResource> MailStore::resource(const Account& account, const DavCollection& c,
                                        std::string_view name) {
  return one_resource(account, c, kByName, name, "no resource " + std::string(name));
}

Result<std::vector<DavResource>> MailStore::resources_named(const Account& account,
                                                            const DavCollection& c,
                                                            const std::vector<std::string>& names,
                                                            std::vector<std::string>* bodies) {
  // One statement per batch of names, and one per batch of bodies the cache does not hold:
  // a prepared lookup per name pays for opening its cursors every time, which costs more
  // than the lookup. (Names may hold any bytes but '/' and controls, so they are bound one by
  // one, not passed as JSON.) A batch has a power-of-two number of slots, the unused ones
  // NULL (which matches nothing), so a connection caches at most nine shapes of each.
  constexpr size_t kBatch = 256;
  // In name order: each lookup then descends next to the previous one, through index pages
  // it just read (the hrefs of a multiget come in any order).
  std::vector<std::string_view> sorted(names.begin(), names.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<DavResource> out;
  // Bodies not in the cache: by their resource's hint (message_row, -1 for none) first.
  struct Miss {
    size_t index;
    int64_t row;
  };
  std::vector<Miss> misses;
  // Hints that did not lead to the body (a rebuilt messages table renumbers rows), and
  // bodies kept in blob files: looked up again below.
  std::vector<size_t> stale, in_files;
  if (bodies) bodies->clear();
  auto slots_for = [](size_t n) {
    size_t slots = 1;
    while (slots < n) slots *= 2;
    return slots;
  };
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    for (size_t first = 0; first < sorted.size(); first += kBatch) {
      const size_t n = std::min(kBatch, sorted.size() - first);
      const size_t slots = slots_for(n);
      std::string sql = "WITH j(name) AS (VALUES (?)";
      for (size_t k = 1; k < slots; ++k) sql += ",(?)";
      sql += std::string(") SELECT ") + kResourceColumns +
             ", d.message_row FROM j CROSS JOIN dav_resources d INDEXED BY dav_by_name_all"
             " ON d.folder_id=? AND d.name=j.name";
      MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
      int param = 1;
      for (size_t k = 0; k < slots; ++k) {
        if (k < n) {
          st.bind_static(param++, sorted[first + k]);  // `names` outlives the statement
        } else {
          st.bind_null(param++);
        }
      }
      st.bind(param, c.folder.id);
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        out.push_back(row_to_resource(st));
        if (!bodies) continue;
        bodies->emplace_back();
        if (!body_cache_.get(out.back().blob, bodies->back()))
          misses.push_back({out.size() - 1, st.column_is_null(12) ? -1 : st.column_int(12)});
      }
    }
    // The missing bodies by hint, in batches shaped as above; each row says which miss it
    // answers (k), and counts only when that messages row is the body's.
    std::vector<bool> found(misses.size(), false);
    for (size_t first = 0; first < misses.size(); first += kBatch) {
      const size_t n = std::min(kBatch, misses.size() - first);
      const size_t slots = slots_for(n);
      std::string sql = "WITH j(k, r) AS (VALUES (0,?)";
      for (size_t k = 1; k < slots; ++k) sql += ",(" + std::to_string(k) + ",?)";
      sql += ") SELECT j.k, m.blob, m.data FROM j CROSS JOIN messages m ON m.rowid=j.r";
      MK_ASSIGN_OR_RETURN(auto st, db.prepare(sql));
      for (size_t k = 0; k < slots; ++k) {
        if (k < n && misses[first + k].row >= 0) {
          st.bind(static_cast<int>(k) + 1, misses[first + k].row);
        } else {
          st.bind_null(static_cast<int>(k) + 1);
        }
      }
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        const int64_t k = st.column_int(0);
        if (k < 0 || static_cast<size_t>(k) >= n) continue;
        const size_t m = first + static_cast<size_t>(k);
        const size_t i = misses[m].index;
        if (st.column_blob_view(1) != as_bytes(out[i].blob)) continue;
        found[m] = true;
        if (st.column_is_null(2)) {
          in_files.push_back(i);
          continue;
        }
        MK_RETURN_IF_ERROR(
            decode_message(account, out[i].blob, st.column_blob_view(2), (*bodies)[i]));
        body_cache_.put(out[i].blob, (*bodies)[i]);
      }
    }
    for (size_t m = 0; m < misses.size(); ++m)
      if (!found[m]) stale.push_back(misses[m].index);
    if (stale.empty()) return Status::ok();
    MK_ASSIGN_OR_RETURN(auto by_blob, db.prepare("SELECT data FROM messages WHERE blob=?"));
    for (size_t i : stale) {
      by_blob.bind_blob(1, as_bytes(out[i].blob));
      MK_ASSIGN_OR_RETURN(bool row, by_blob.step());
      if (row && !by_blob.column_is_null(0)) {
        MK_RETURN_IF_ERROR(
            decode_message(account, out[i].blob, by_blob.column_blob_view(0), (*bodies)[i]));
        body_cache_.put(out[i].blob, (*bodies)[i]);
      } else {
        in_files.push_back(i);
      }
      by_blob.reset();
    }
    return Status::ok();
  }));
  // Large bodies, from their blob files after the read transaction.
  for (size_t i : in_files) {
    MK_ASSIGN_OR_RETURN((*bodies)[i], decode_message(account, out[i].blob, std::nullopt));
  }
  return out;
}

Result<DavResource> MailStore::resource_by_uid(const Account& account, const DavCollection& c,
                                               std::string_view component_uid) {
  return one_resource(account, c, kByComponentUid, component_uid,
                      "no resource with UID " + std::string(component_uid));
}

Result<std::vector<MailStore::UidHolder>> MailStore::find_by_uid(const Account& account,
                                                                 CollectionKind kind,
                                                                 std::string_view component_uid) {
  std::vector<UidHolder> out;
  MK_ASSIGN_OR_RETURN(auto all, collections(account, kind));
  for (auto& c : all) {
    auto r = resource_by_uid(account, c, component_uid);
    if (r.is_ok()) {
      out.push_back({c, std::move(*r)});
    } else if (r.status().code() != ErrorCode::kNotFound) {
      return r.status();
    }
  }
  return out;
}

Result<DavPutResult> MailStore::put_resource(const Account& account, const DavCollection& c,
                                             std::string_view name, const DavPut& put) {
  return store_resource(account, c, name, put, nullptr);
}

Result<SavedItem> MailStore::restore_resource(const Account& account, const DavCollection& c,
                                              const ItemState& item, std::string_view raw) {
  SavedItem saved;
  saved.guid = item.guid;
  if (sha256(raw) != item.blob)
    return corrupt("restored resource " + to_hex(item.blob) + " does not match its digest");
  // De-duplication: the same item (GUID) anywhere in the account, or an object with the
  // same UID in the collection (an appointment re-created or edited meanwhile), is kept.
  // One indexed lookup (items_by_guid), not the account's whole GUID set per resource.
  bool present = false;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(auto st, db.prepare("SELECT 1 FROM items i JOIN folders f ON"
                                            " i.folder_id=f.id WHERE i.guid=? AND"
                                            " f.account_id=? LIMIT 1"));
    st.bind_blob(1, item.guid.raw()).bind(2, account.id);
    MK_ASSIGN_OR_RETURN(present, st.step());
    return Status::ok();
  }));
  auto holder = resource_by_uid(account, c, item.component_uid);
  if (present || holder.is_ok()) {
    saved.duplicate = true;
    return saved;
  }
  if (holder.status().code() != ErrorCode::kNotFound) return holder.status();
  std::string name = item.dav_name;
  if (resource(account, c, name).is_ok())
    name = item.guid.hex() + (c.kind == CollectionKind::kCalendar ? ".ics" : ".vcf");
  DavPut put;
  put.body = raw;
  put.if_none_match = true;
  MK_ASSIGN_OR_RETURN(DavPutResult r, store_resource(account, c, name, put, &item.guid));
  if (r.outcome != DavPutResult::Outcome::kCreated)
    return conflict("resource " + item.dav_name + " of " + c.segment + " could not be restored: " +
                    (r.reason.empty() ? "it changed meanwhile" : r.reason));
  saved.uid = r.resource.uid;
  saved.modseq = r.resource.modseq;
  saved.uidvalidity = c.folder.uidvalidity;
  return saved;
}

Result<DavPutResult> MailStore::store_resource(const Account& account, const DavCollection& c,
                                               std::string_view name, const DavPut& put,
                                               const Guid* keep_guid) {
  using Outcome = DavPutResult::Outcome;
  DavPutResult result;
  MK_RETURN_IF_ERROR(validate_dav_name(name));
  if (put.max_size && put.body.size() > put.max_size) {
    result.outcome = Outcome::kTooLarge;
    result.reason = "the object is larger than " + std::to_string(put.max_size) + " bytes";
    return result;
  }
  auto facts = examine(c.kind, put.body);
  if (!facts.is_ok()) {
    result.outcome = Outcome::kInvalid;
    result.reason = facts.status().message();
    return result;
  }
  if (c.kind == CollectionKind::kCalendar &&
      std::find(c.components.begin(), c.components.end(), facts->component) == c.components.end()) {
    result.outcome = Outcome::kUnsupportedComponent;
    result.reason = "this calendar does not take " + facts->component;
    return result;
  }
  MessageInput input;
  input.raw = put.body;
  MK_ASSIGN_OR_RETURN(PreparedSave p, prepare_save(account, c.folder.name, input, std::nullopt,
                                                   Guid::random(), "dav.put"));
  bool changed = false;
  Status s = account.db->write(
      [&](WriteTx& tx) -> Status {
        SqliteDb& db = tx.db();
        changed = false;
        result = DavPutResult{};
        MK_ASSIGN_OR_RETURN(FolderRow f, load_collection_row(db, account, c));
        MK_ASSIGN_OR_RETURN(auto existing, find_resource(db, f.id, kByName, name));
        if ((put.if_none_match && existing) ||
            (put.if_match && (!existing || existing->blob != *put.if_match))) {
          result.outcome = Outcome::kPreconditionFailed;
          if (existing) result.resource = *existing;
          return Status::ok();
        }
        MK_ASSIGN_OR_RETURN(auto holder, find_resource(db, f.id, kByComponentUid, facts->uid));
        if (holder && holder->name != name) {
          result.outcome = Outcome::kUidConflict;
          result.resource = *holder;
          result.reason = "UID " + facts->uid + " is already used by " + holder->name;
          return Status::ok();
        }
        if (existing && existing->component_uid != facts->uid) {
          result.outcome = Outcome::kUidConflict;
          result.resource = *existing;
          result.reason = "the UID of an existing resource cannot change";
          return Status::ok();
        }
        if (existing && existing->blob == p.put.digest) {
          result.outcome = Outcome::kReplaced;
          result.resource = *existing;
          return Status::ok();
        }
        MK_RETURN_IF_ERROR(check_quota(db, account,
                                       p.size > (existing ? existing->size : 0)
                                           ? p.size - (existing ? existing->size : 0)
                                           : 0));
        MK_RETURN_IF_ERROR(upsert_message(db, p));
        uint64_t modseq = ++f.highestmodseq;
        DavResource r;
        r.name = name;
        r.uid = f.uidnext++;
        r.guid = existing ? existing->guid : keep_guid ? *keep_guid : p.guid;
        r.blob = p.put.digest;
        r.size = p.size;
        r.modseq = modseq;
        r.saved_ms = tx.time_ms();
        r.component_uid = facts->uid;
        r.component = facts->component;
        r.range_start = facts->range_start;
        r.range_end = facts->range_end;
        r.recurring = facts->recurring;
        if (existing) {
          // The old version leaves at the same MODSEQ the new one arrives with.
          for (const char* sql : {"DELETE FROM items WHERE folder_id=? AND uid=?",
                                  "DELETE FROM dav_resources WHERE folder_id=? AND uid=?"}) {
            MK_ASSIGN_OR_RETURN(auto del, db.prepare(sql));
            del.bind(1, f.id).bind(2, static_cast<int64_t>(existing->uid));
            MK_RETURN_IF_ERROR(del.run());
          }
          MK_ASSIGN_OR_RETURN(auto exp,
                              db.prepare("INSERT OR REPLACE INTO expunged VALUES (?,?,?)"));
          exp.bind(1, f.id)
              .bind(2, static_cast<int64_t>(existing->uid))
              .bind(3, static_cast<int64_t>(modseq));
          MK_RETURN_IF_ERROR(exp.run());
          MK_RETURN_IF_ERROR(ref_message(db, existing->blob, -1));
          MK_RETURN_IF_ERROR(
              adjust_usage(db, account.id, -static_cast<int64_t>(existing->size), -1));
        }
        ItemInfo it;
        it.uid = r.uid;
        it.guid = r.guid;
        it.blob = r.blob;
        it.size = r.size;
        it.internal_date_ms = tx.time_ms();
        it.modseq = modseq;
        MK_RETURN_IF_ERROR(insert_item(db, f.id, it, tx.time_ms()));
        MK_RETURN_IF_ERROR(insert_resource(db, f.id, r));
        MK_ASSIGN_OR_RETURN(auto ungone,
                            db.prepare("DELETE FROM dav_gone WHERE folder_id=? AND name=?"));
        ungone.bind(1, f.id).bind(2, r.name);
        MK_RETURN_IF_ERROR(ungone.run());
        MK_RETURN_IF_ERROR(save_folder_counters(db, f));
        MK_RETURN_IF_ERROR(adjust_usage(db, account.id, static_cast<int64_t>(r.size), 1));
        json payload = {{"folder", f.guid.hex()},
                        {"uid", r.uid},
                        {"blob", to_hex(r.blob)},
                        {"size", r.size},
                        {"internal_date_ms", it.internal_date_ms},
                        {"modseq", modseq},
                        {"name", r.name},
                        {"component_uid", r.component_uid},
                        {"component", r.component}};
        if (existing) payload["replaces"] = existing->uid;
        MK_RETURN_IF_ERROR(tx.journal("dav.put", account.guid, r.guid, payload.dump()).status());
        result.outcome = existing ? Outcome::kReplaced : Outcome::kCreated;
        result.resource = r;
        changed = true;
        return Status::ok();
      },
      p.put.dir_to_sync.empty() ? std::set<std::string>{}
                                : std::set<std::string>{p.put.dir_to_sync});
  MK_RETURN_IF_ERROR(s);
  if (changed) notify({account.db->name(), account.guid, c.folder.guid, result.resource.modseq});
  return result;
}

Status MailStore::delete_resource(const Account& account, const DavCollection& c,
                                  std::string_view name, const std::optional<Digest>& if_match) {
  uint64_t modseq = 0;
  MK_RETURN_IF_ERROR(account.db->write([&](WriteTx& tx) -> Status {
    SqliteDb& db = tx.db();
    MK_ASSIGN_OR_RETURN(FolderRow f, load_collection_row(db, account, c));
    MK_ASSIGN_OR_RETURN(auto existing, find_resource(db, f.id, kByName, name));
    if (!existing) return not_found("no resource " + std::string(name));
    if (if_match && existing->blob != *if_match)
      return conflict("resource " + std::string(name) + " has changed");
    ItemInfo it;
    it.uid = existing->uid;
    it.guid = existing->guid;
    it.blob = existing->blob;
    it.size = existing->size;
    MK_RETURN_IF_ERROR(delete_items(tx, account, f, {it}, "dav.delete", false));
    modseq = f.highestmodseq;
    MK_ASSIGN_OR_RETURN(auto del,
                        db.prepare("DELETE FROM dav_resources WHERE folder_id=? AND uid=?"));
    del.bind(1, f.id).bind(2, static_cast<int64_t>(existing->uid));
    MK_RETURN_IF_ERROR(del.run());
    MK_ASSIGN_OR_RETURN(auto gone, db.prepare("INSERT OR REPLACE INTO dav_gone VALUES (?,?,?)"));
    gone.bind(1, f.id).bind(2, existing->name).bind(3, static_cast<int64_t>(modseq));
    MK_RETURN_IF_ERROR(gone.run());
    json p = {{"folder", f.guid.hex()},
              {"uid", existing->uid},
              {"modseq", modseq},
              {"name", existing->name}};
    return tx.journal("dav.delete", account.guid, existing->guid, p.dump()).status();
  }));
  notify({account.db->name(), account.guid, c.folder.guid, modseq});
  return Status::ok();
}

Result<DavChanges> MailStore::resource_changes(const Account& account, const DavCollection& c,
                                               uint64_t since) {
  DavChanges out;
  MK_RETURN_IF_ERROR(account.db->read([&](SqliteDb& db) -> Status {
    MK_ASSIGN_OR_RETURN(FolderRow f, load_collection_row(db, account, c));
    out.highestmodseq = f.highestmodseq;
    if (since > f.highestmodseq) return invalid("sync token is ahead of the collection");
    MK_ASSIGN_OR_RETURN(auto st,
                        db.prepare(std::string("SELECT ") + kResourceColumns + kResourceFrom +
                                   " JOIN items i ON i.folder_id=d.folder_id AND i.uid=d.uid"
                                   " WHERE d.folder_id=? AND i.modseq>? ORDER BY i.modseq"));
    st.bind(1, f.id).bind(2, static_cast<int64_t>(since));
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      out.changed.push_back(row_to_resource(st));
    }
    if (since == 0) return Status::ok();  // a first sync lists what exists
    // dav_gone holds only names that are absent (a new PUT removes the row).
    MK_ASSIGN_OR_RETURN(auto gone, db.prepare("SELECT name, modseq FROM dav_gone WHERE"
                                              " folder_id=? AND modseq>? ORDER BY modseq"));
    gone.bind(1, f.id).bind(2, static_cast<int64_t>(since));
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, gone.step());
      if (!row) break;
      out.removed.push_back({gone.column_text(0), static_cast<uint64_t>(gone.column_int(1))});
    }
    return Status::ok();
  }));
  return out;
}

Result<std::vector<BusyPeriod>> MailStore::busy_periods(const Account& account, int64_t start,
                                                        int64_t end) {
  std::vector<BusyPeriod> out;
  MK_ASSIGN_OR_RETURN(auto calendars, collections(account, CollectionKind::kCalendar));
  for (const auto& c : calendars) {
    MK_ASSIGN_OR_RETURN(auto list, resources(account, c, std::make_pair(start, end)));
    for (const auto& r : list) {
      if (r.component != "VEVENT" && r.component != "VFREEBUSY") continue;
      MK_ASSIGN_OR_RETURN(std::string body, read_message(account, r.blob));
      auto periods = busy_intervals(body, TimeRange{start, end});
      // Too many instances to list: an error, never an answer of free time.
      if (!periods.is_ok() && periods.status().code() == ErrorCode::kTooLarge)
        return too_large("busy time of " + r.name + ": " + periods.status().message());
      if (!periods.is_ok()) {
        // Stored objects were valid when they were stored; a newer parser may disagree.
        MK_LOG_WARN("busy time of {} {}: {}", account.address, r.name, periods.status().message());
        continue;
      }
      for (auto& b : *periods) out.push_back(BusyPeriod{b.start, b.end, b.fbtype});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const BusyPeriod& a, const BusyPeriod& b) { return a.start < b.start; });
  return out;
}

}  // namespace mailark
