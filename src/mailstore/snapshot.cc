// Database state for backup and restore: journal replay on plain values, the consistent
// read behind a base backup, and the writer that builds a restored database.
#include "mailstore/snapshot.h"

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>
#include <unordered_map>

#include "base/log.h"
#include "mailstore/mime.h"
#include "mailstore/store_sql.h"
#include "os/file.h"
#include "storage/blob_store.h"
#include "storage/database.h"
#include "storage/sqlite.h"

namespace mailark {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------- replay

class Replay {
 public:
  Replay(DatabaseState& state, const JournalRecord& r) : state_(state), r_(r) {}

  Status run(const std::optional<Guid>& only_account) {
    if (!only_account || r_.account == *only_account) {
      auto parsed = json::parse(r_.payload, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded() || !parsed.is_object()) return bad("payload is not a JSON object");
      p_ = std::move(parsed);
      try {
        MK_RETURN_IF_ERROR(apply());
      } catch (const json::exception& e) {
        return bad(std::string("payload field has the wrong type: ") + e.what());
      }
    }
    state_.seq = r_.seq;
    state_.head = r_.hash;
    state_.time_ms = r_.time_ms;
    return Status::ok();
  }

 private:
  Status bad(const std::string& what) const {
    return corrupt("journal record " + std::to_string(r_.seq) + " (" + r_.op + "): " + what);
  }

  Result<AccountState*> account() {
    auto it = state_.accounts.find(r_.account);
    if (it == state_.accounts.end()) return bad("account " + r_.account.hex() + " does not exist");
    return &it->second;
  }

  Result<Guid> guid_field(const char* key) const {
    if (!p_.contains(key) || !p_[key].is_string()) return bad(std::string("no ") + key);
    auto g = Guid::from_hex(p_[key].get<std::string>());
    if (!g) return bad(std::string("bad GUID in ") + key);
    return *g;
  }

  Result<FolderState*> folder(AccountState& a, const char* key) {
    MK_ASSIGN_OR_RETURN(Guid g, guid_field(key));
    auto it = a.folders.find(g);
    if (it == a.folders.end()) return bad("folder " + g.hex() + " does not exist");
    return &it->second;
  }

  template <typename T>
  Result<T> field(const char* key) const {
    if (!p_.contains(key)) return bad(std::string("no ") + key);
    return p_[key].get<T>();
  }

  // The fields every record that adds an item carries: a free UID, the record's item GUID,
  // the body's digest and size, dates and MODSEQ.
  Result<ItemState> new_item(const FolderState& f) const {
    ItemState it;
    MK_ASSIGN_OR_RETURN(it.uid, field<uint32_t>("uid"));
    if (f.items.count(it.uid) || it.uid < 1)
      return bad("UID " + std::to_string(it.uid) + " is taken");
    it.guid = r_.item;
    MK_ASSIGN_OR_RETURN(std::string blob, field<std::string>("blob"));
    auto d = digest_from_hex(blob);
    if (!d) return bad("bad blob digest");
    it.blob = *d;
    MK_ASSIGN_OR_RETURN(it.size, field<uint64_t>("size"));
    MK_ASSIGN_OR_RETURN(it.internal_date_ms, field<int64_t>("internal_date_ms"));
    MK_ASSIGN_OR_RETURN(it.modseq, field<uint64_t>("modseq"));
    it.saved_ms = r_.time_ms;
    return it;
  }

  static void raise(FolderState& f, uint64_t modseq) {
    f.highestmodseq = std::max(f.highestmodseq, modseq);
  }

  Status apply() {
    const std::string& op = r_.op;
    if (op == "account.create") {
      if (state_.accounts.count(r_.account)) return bad("account exists already");
      AccountState a;
      a.guid = r_.account;
      MK_ASSIGN_OR_RETURN(a.address, field<std::string>("address"));
      a.created_ms = r_.time_ms;
      state_.accounts.emplace(a.guid, std::move(a));
      return Status::ok();
    }
    if (op == "account.delete") {
      if (!state_.accounts.erase(r_.account)) return bad("account does not exist");
      return Status::ok();
    }
    MK_ASSIGN_OR_RETURN(AccountState * a, account());
    if (op == "folder.create") {
      FolderState f;
      MK_ASSIGN_OR_RETURN(f.guid, guid_field("folder"));
      if (a->folders.count(f.guid)) return bad("folder exists already");
      MK_ASSIGN_OR_RETURN(f.name, field<std::string>("name"));
      MK_ASSIGN_OR_RETURN(f.special_use, field<std::string>("special_use"));
      MK_ASSIGN_OR_RETURN(f.uidvalidity, field<uint32_t>("uidvalidity"));
      f.kind = p_.value("kind", std::string("mail"));
      f.created_ms = r_.time_ms;
      a->last_uidvalidity = std::max(a->last_uidvalidity, f.uidvalidity);
      a->folders.emplace(f.guid, std::move(f));
      return Status::ok();
    }
    if (op == "folder.rename") {
      MK_ASSIGN_OR_RETURN(FolderState * f, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(f->name, field<std::string>("to"));
      return Status::ok();
    }
    if (op == "folder.subscribe") {
      MK_ASSIGN_OR_RETURN(FolderState * f, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(f->subscribed, field<bool>("subscribed"));
      return Status::ok();
    }
    if (op == "folder.delete") {
      MK_ASSIGN_OR_RETURN(Guid g, guid_field("folder"));
      if (!a->folders.erase(g)) return bad("folder " + g.hex() + " does not exist");
      return Status::ok();
    }
    if (op == "folder.props") {
      MK_ASSIGN_OR_RETURN(FolderState * f, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(f->props, (field<std::map<std::string, std::string>>("props")));
      return Status::ok();
    }
    if (op == "dav.put") {
      MK_ASSIGN_OR_RETURN(FolderState * f, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(ItemState it, new_item(*f));
      MK_ASSIGN_OR_RETURN(it.dav_name, field<std::string>("name"));
      MK_ASSIGN_OR_RETURN(it.component_uid, field<std::string>("component_uid"));
      MK_ASSIGN_OR_RETURN(it.component, field<std::string>("component"));
      if (p_.contains("replaces")) {
        MK_ASSIGN_OR_RETURN(uint32_t old, field<uint32_t>("replaces"));
        if (!f->items.erase(old))
          return bad("replaced UID " + std::to_string(old) + " does not exist");
        f->expunged[old] = it.modseq;
      }
      f->gone.erase(it.dav_name);
      f->uidnext = std::max(f->uidnext, it.uid + 1);
      raise(*f, it.modseq);
      f->items.emplace(it.uid, std::move(it));
      return Status::ok();
    }
    if (op == "dav.delete") {
      MK_ASSIGN_OR_RETURN(FolderState * f, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(uint32_t uid, field<uint32_t>("uid"));
      MK_ASSIGN_OR_RETURN(uint64_t modseq, field<uint64_t>("modseq"));
      MK_ASSIGN_OR_RETURN(std::string name, field<std::string>("name"));
      if (!f->items.erase(uid)) return bad("UID " + std::to_string(uid) + " does not exist");
      f->expunged[uid] = modseq;
      f->gone[name] = modseq;
      raise(*f, modseq);
      return Status::ok();
    }
    if (op == "folder.rename_inbox") {
      // INBOX's items move, in UID order, to the new folder created just before.
      MK_ASSIGN_OR_RETURN(FolderState * dst, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(std::string from, field<std::string>("from"));
      FolderState* src = nullptr;
      for (auto& [g, f] : a->folders)
        if (f.name == from) src = &f;
      if (!src) return bad("folder " + from + " does not exist");
      dst->highestmodseq += 1;
      for (auto& [uid, it] : src->items) {
        ItemState moved = it;
        moved.uid = dst->uidnext++;
        moved.modseq = dst->highestmodseq;
        moved.saved_ms = r_.time_ms;
        dst->items.emplace(moved.uid, std::move(moved));
      }
      if (!src->items.empty()) {
        src->highestmodseq += 1;
        for (auto& [uid, it] : src->items) src->expunged[uid] = src->highestmodseq;
        src->items.clear();
      }
      return Status::ok();
    }
    if (op == "deliver" || op == "append" || op == "restore") {
      MK_ASSIGN_OR_RETURN(FolderState * f, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(ItemState it, new_item(*f));
      MK_ASSIGN_OR_RETURN(it.flags, field<std::vector<std::string>>("flags"));
      if (p_.contains("ingress")) {
        MK_ASSIGN_OR_RETURN(it.ingress_id, guid_field("ingress"));
        // deliver adds the delivery; restore keeps an existing one (INSERT OR IGNORE).
        if (op == "deliver" || !a->deliveries.count(*it.ingress_id))
          a->deliveries[*it.ingress_id] = DeliveryState{it.guid, r_.time_ms};
      }
      f->uidnext = std::max(f->uidnext, it.uid + 1);
      raise(*f, it.modseq);
      f->items.emplace(it.uid, std::move(it));
      return Status::ok();
    }
    if (op == "copy" || op == "move") {
      MK_ASSIGN_OR_RETURN(FolderState * src, folder(*a, "from_folder"));
      MK_ASSIGN_OR_RETURN(FolderState * dst, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(uint32_t from_uid, field<uint32_t>("from_uid"));
      auto found = src->items.find(from_uid);
      if (found == src->items.end())
        return bad("source UID " + std::to_string(from_uid) + " does not exist");
      ItemState it = found->second;
      MK_ASSIGN_OR_RETURN(it.uid, field<uint32_t>("uid"));
      if (dst->items.count(it.uid)) return bad("UID " + std::to_string(it.uid) + " is taken");
      it.guid = r_.item;
      MK_ASSIGN_OR_RETURN(it.flags, field<std::vector<std::string>>("flags"));
      MK_ASSIGN_OR_RETURN(it.modseq, field<uint64_t>("modseq"));
      it.saved_ms = r_.time_ms;
      dst->uidnext = std::max(dst->uidnext, it.uid + 1);
      raise(*dst, it.modseq);
      dst->items.emplace(it.uid, std::move(it));
      if (op == "move") {
        if (!p_.contains("from_modseq"))
          return bad("written before moves were replayable (no from_modseq)");
        MK_ASSIGN_OR_RETURN(uint64_t from_modseq, field<uint64_t>("from_modseq"));
        src->items.erase(from_uid);
        src->expunged[from_uid] = from_modseq;
        raise(*src, from_modseq);
      }
      return Status::ok();
    }
    if (op == "flags") {
      MK_ASSIGN_OR_RETURN(FolderState * f, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(uint32_t uid, field<uint32_t>("uid"));
      auto found = f->items.find(uid);
      if (found == f->items.end()) return bad("UID " + std::to_string(uid) + " does not exist");
      MK_ASSIGN_OR_RETURN(found->second.flags, field<std::vector<std::string>>("flags"));
      MK_ASSIGN_OR_RETURN(found->second.modseq, field<uint64_t>("modseq"));
      raise(*f, found->second.modseq);
      return Status::ok();
    }
    if (op == "expunge") {
      MK_ASSIGN_OR_RETURN(FolderState * f, folder(*a, "folder"));
      MK_ASSIGN_OR_RETURN(uint32_t uid, field<uint32_t>("uid"));
      MK_ASSIGN_OR_RETURN(uint64_t modseq, field<uint64_t>("modseq"));
      if (!f->items.erase(uid)) return bad("UID " + std::to_string(uid) + " does not exist");
      f->expunged[uid] = modseq;
      raise(*f, modseq);
      return Status::ok();
    }
    return bad("unknown operation");
  }

  DatabaseState& state_;
  const JournalRecord& r_;
  json p_;
};

// ---------------------------------------------------------------- reading

Result<std::string> fs_read(const std::string& path) {
  if (!posix_fs().exists(path)) return not_found(path);
  return posix_fs().read_file(path);
}

class SqlSnapshot : public DatabaseSnapshot {
 public:
  SqlSnapshot(Database& db, SqliteDb& sql) : db_(db), sql_(sql) {}

  Status init() {
    MK_ASSIGN_OR_RETURN(auto g, sql_.prepare("SELECT value FROM meta WHERE key='database_guid'"));
    MK_ASSIGN_OR_RETURN(bool row, g.step());
    if (!row) return corrupt("database " + db_.name() + " has no database_guid");
    guid_ = g.column_text(0);
    MK_ASSIGN_OR_RETURN(
        auto st, sql_.prepare("SELECT seq, hash, time_ms FROM journal ORDER BY seq DESC LIMIT 1"));
    MK_ASSIGN_OR_RETURN(row, st.step());
    if (row) {
      seq_ = st.column_int(0);
      head_ = digest_from_bytes(st.column_blob(1)).value_or(Digest{});
      time_ms_ = st.column_int(2);
    }
    return Status::ok();
  }

  const std::string& database_guid() const override { return guid_; }
  int64_t seq() const override { return seq_; }
  const Digest& head() const override { return head_; }
  int64_t time_ms() const override { return time_ms_; }

  Result<DatabaseState> state(const std::optional<Guid>& only) override {
    DatabaseState out;
    out.seq = seq_;
    out.head = head_;
    out.time_ms = time_ms_;
    std::map<int64_t, AccountState*> accounts;
    std::map<int64_t, FolderState*> folders;
    {
      std::string sql = "SELECT id, guid, address, created_ms, last_uidvalidity FROM accounts";
      if (only) sql += " WHERE guid=?";
      MK_ASSIGN_OR_RETURN(auto st, sql_.prepare(sql));
      if (only) st.bind_blob(1, only->raw());
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        AccountState a;
        a.guid = Guid::from_bytes(st.column_blob(1)).value_or(Guid{});
        a.address = st.column_text(2);
        a.created_ms = st.column_int(3);
        a.last_uidvalidity = static_cast<uint32_t>(st.column_int(4));
        accounts[st.column_int(0)] = &out.accounts.emplace(a.guid, std::move(a)).first->second;
      }
    }
    {
      MK_ASSIGN_OR_RETURN(
          auto st, sql_.prepare("SELECT id, account_id, guid, name, kind, COALESCE(special_use,''),"
                                " subscribed, uidvalidity, uidnext, highestmodseq, created_ms"
                                " FROM folders"));
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        auto a = accounts.find(st.column_int(1));
        if (a == accounts.end()) continue;
        FolderState f;
        f.guid = Guid::from_bytes(st.column_blob(2)).value_or(Guid{});
        f.name = st.column_text(3);
        f.kind = st.column_text(4);
        f.special_use = st.column_text(5);
        f.subscribed = st.column_int(6) != 0;
        f.uidvalidity = static_cast<uint32_t>(st.column_int(7));
        f.uidnext = static_cast<uint32_t>(st.column_int(8));
        f.highestmodseq = static_cast<uint64_t>(st.column_int(9));
        f.created_ms = st.column_int(10);
        folders[st.column_int(0)] = &a->second->folders.emplace(f.guid, std::move(f)).first->second;
      }
    }
    {
      MK_ASSIGN_OR_RETURN(auto st,
                          sql_.prepare("SELECT i.folder_id, i.uid, i.guid, i.ingress_id, i.blob,"
                                       " i.size, i.internal_date_ms, i.flags, i.modseq,"
                                       " i.saved_ms, d.name, d.component_uid, d.component"
                                       " FROM items i LEFT JOIN dav_resources d ON"
                                       " d.folder_id=i.folder_id AND d.uid=i.uid"));
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        auto f = folders.find(st.column_int(0));
        if (f == folders.end()) continue;
        ItemState it;
        it.uid = static_cast<uint32_t>(st.column_int(1));
        it.guid = Guid::from_bytes(st.column_blob(2)).value_or(Guid{});
        if (!st.column_is_null(3)) it.ingress_id = Guid::from_bytes(st.column_blob(3));
        auto blob = digest_from_bytes(st.column_blob(4));
        if (!blob)
          return corrupt("item " + f->second->name + "/" + std::to_string(it.uid) +
                         " has no valid blob address");
        it.blob = *blob;
        it.size = static_cast<uint64_t>(st.column_int(5));
        it.internal_date_ms = st.column_int(6);
        it.flags = split_flags(st.column_text(7));
        it.modseq = static_cast<uint64_t>(st.column_int(8));
        it.saved_ms = st.column_int(9);
        if (!st.column_is_null(10)) {
          it.dav_name = st.column_text(10);
          it.component_uid = st.column_text(11);
          it.component = st.column_text(12);
        }
        f->second->items.emplace(it.uid, std::move(it));
      }
    }
    {
      MK_ASSIGN_OR_RETURN(auto st, sql_.prepare("SELECT folder_id, uid, modseq FROM expunged"));
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        auto f = folders.find(st.column_int(0));
        if (f == folders.end()) continue;
        f->second->expunged[static_cast<uint32_t>(st.column_int(1))] =
            static_cast<uint64_t>(st.column_int(2));
      }
    }
    {
      MK_ASSIGN_OR_RETURN(auto st, sql_.prepare("SELECT folder_id, name, modseq FROM dav_gone"));
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        auto f = folders.find(st.column_int(0));
        if (f == folders.end()) continue;
        f->second->gone[st.column_text(1)] = static_cast<uint64_t>(st.column_int(2));
      }
    }
    {
      MK_ASSIGN_OR_RETURN(auto st, sql_.prepare("SELECT folder_id, props FROM folder_props"));
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        auto f = folders.find(st.column_int(0));
        if (f == folders.end()) continue;
        json j = json::parse(st.column_text(1), nullptr, false);
        if (j.is_discarded() || !j.is_object())
          return corrupt("properties of folder " + f->second->name + " are not JSON");
        for (auto& [k, v] : j.items())
          if (v.is_string()) f->second->props[k] = v.get<std::string>();
      }
    }
    {
      MK_ASSIGN_OR_RETURN(
          auto st,
          sql_.prepare("SELECT account_id, ingress_id, item_guid, time_ms FROM deliveries"));
      while (true) {
        MK_ASSIGN_OR_RETURN(bool row, st.step());
        if (!row) break;
        auto a = accounts.find(st.column_int(0));
        if (a == accounts.end()) continue;
        auto ingress = Guid::from_bytes(st.column_blob(1));
        if (!ingress) return corrupt("delivery of " + a->second->address + " has a bad ingress id");
        a->second->deliveries[*ingress] =
            DeliveryState{Guid::from_bytes(st.column_blob(2)).value_or(Guid{}), st.column_int(3)};
      }
    }
    return out;
  }

  Result<std::vector<JournalRecord>> journal(int64_t after, int64_t limit) override {
    limit = std::min(limit, seq_ - after);
    if (limit <= 0) return std::vector<JournalRecord>{};
    return journal::read(sql_, after, limit);
  }

  Result<int64_t> verify_journal(const std::function<void(int64_t, const std::string&)>& problem,
                                 int64_t from_seq, const Digest& from_hash) override {
    if (from_seq <= 0) MK_RETURN_IF_ERROR(map_file());
    // Records committed after this snapshot began are not visible to its transaction.
    MK_ASSIGN_OR_RETURN(
        int64_t n, journal::verify_chain(
                       sql_, problem, from_seq > 0 && from_seq <= seq_ ? from_seq : 0, from_hash));
    // The newest record must be the one the commit recorded (a lost tail shows here).
    MK_ASSIGN_OR_RETURN(auto st, sql_.prepare("SELECT value FROM meta WHERE key='journal_head'"));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (row && seq_ > 0) {
      std::string expect = std::to_string(seq_) + ":" + to_hex(head_);
      std::string recorded = st.column_text(0);
      for (auto& c : recorded) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (recorded != expect)
        problem(seq_, "journal head in meta is " + recorded + ", the journal ends at " + expect);
    }
    return n;
  }

  Result<std::string> message(const Digest& blob) override {
    MK_ASSIGN_OR_RETURN(StoredMessage m, stored_message(blob));
    return std::move(m.content);
  }

  Result<StoredMessage> stored_message(const Digest& blob) override {
    bool is_file = false;
    MK_ASSIGN_OR_RETURN(std::string stored, read_stored(blob, &is_file));
    return verify_stored(stored, blob, is_file);
  }

  Result<StoredBytes> stored_bytes(const Digest& blob) override {
    StoredBytes out;
    MK_ASSIGN_OR_RETURN(out.bytes, read_stored(blob, &out.is_file));
    return out;
  }

  Status scan_stored(const std::set<Digest>& wanted,
                     const std::function<Status(const Digest&, StoredBytes&&)>& fn) override {
    MK_RETURN_IF_ERROR(map_file());
    MK_ASSIGN_OR_RETURN(auto st, sql_.prepare("SELECT blob, data FROM messages"));
    while (true) {
      MK_ASSIGN_OR_RETURN(bool row, st.step());
      if (!row) break;
      auto blob = digest_from_bytes(st.column_blob(0));
      if (!blob || !wanted.count(*blob)) continue;
      StoredBytes out;
      if (!st.column_is_null(1)) {
        out.bytes = st.column_blob(1);
      } else {
        out.is_file = true;
        auto file = fs_read(db_.blobs().path_of(*blob));
        if (!file.is_ok())
          return file.status().code() == ErrorCode::kNotFound
                     ? corrupt("blob file of message " + to_hex(*blob) + " is missing")
                     : file.status();
        out.bytes = std::move(*file);
      }
      MK_RETURN_IF_ERROR(fn(*blob, std::move(out)));
    }
    return Status::ok();
  }

  Result<Totals> totals() override {
    Totals out;
    // The accounts' usage counters, kept with every change of their items (`mailark check`
    // verifies them against the items): no scan of the items table.
    MK_ASSIGN_OR_RETURN(auto st, sql_.prepare("SELECT count(*), COALESCE(sum(used_items), 0),"
                                              " COALESCE(sum(used_bytes), 0) FROM accounts"));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (row) {
      out.accounts = static_cast<uint64_t>(st.column_int(0));
      out.items = static_cast<uint64_t>(st.column_int(1));
      out.bytes = static_cast<uint64_t>(st.column_int(2));
    }
    return out;
  }

  Result<std::vector<Digest>> files_modified_since(int64_t since_ms) override {
    MK_ASSIGN_OR_RETURN(auto files, db_.blobs().list());
    std::vector<Digest> out;
    for (const Digest& d : files) {
      auto m = posix_fs().modified_ms(db_.blobs().path_of(d));
      if (m.is_ok() && *m >= since_ms) out.push_back(d);
    }
    return out;
  }

  // The connection starts unmapped: from a cold cache, mmap's readahead around each page
  // read would pull in the bodies stored beside it (an incremental backup read the whole file
  // for its items). Dense reads map it (see DatabaseSnapshot::map_file): a body in a row's
  // overflow pages is then copied out of the page cache instead of read with one pread per
  // 4 KiB page. (Base backup of 2.5 GB with the page cache dropped: 20 s -> 16-17 s; with a
  // scrub slice of 1/8: 4.7 s -> 3.0 s.)
  Status map_file() override {
    if (mapped_) return Status::ok();
    MK_RETURN_IF_ERROR(sql_.exec("PRAGMA mmap_size=4294967296"));
    mapped_ = true;
    return Status::ok();
  }

  Result<std::string> read_stored(const Digest& blob, bool* is_file) {
    MK_ASSIGN_OR_RETURN(auto st, sql_.prepare("SELECT data FROM messages WHERE blob=?"));
    st.bind_blob(1, as_bytes(blob));
    MK_ASSIGN_OR_RETURN(bool row, st.step());
    if (!row) return not_found("database " + db_.name() + " has no message " + to_hex(blob));
    if (!st.column_is_null(0)) return st.column_blob(0);
    *is_file = true;
    auto file = fs_read(db_.blobs().path_of(blob));
    if (!file.is_ok() && file.status().code() == ErrorCode::kNotFound)
      return corrupt("blob file of message " + to_hex(blob) + " is missing");
    return file;
  }

  int64_t message_file_mtime(const Digest& blob) override {
    std::string path = db_.blobs().path_of(blob);
    auto m = posix_fs().modified_ms(path);
    return m.is_ok() ? *m : 0;
  }

 private:
  Database& db_;
  SqliteDb& sql_;
  bool mapped_ = false;
  std::string guid_;
  int64_t seq_ = 0;
  Digest head_{};
  int64_t time_ms_ = 0;
};

// ---------------------------------------------------------------- writing

Status insert_state(WriteTx& tx, const AccountState& a, int64_t* account_id) {
  SqliteDb& db = tx.db();
  uint64_t bytes = a.bytes(), items = a.items();
  MK_ASSIGN_OR_RETURN(auto st, db.prepare("INSERT INTO accounts(guid, address, created_ms,"
                                          " used_bytes, used_items, last_uidvalidity)"
                                          " VALUES (?,?,?,?,?,?)"));
  st.bind_blob(1, a.guid.raw())
      .bind(2, a.address)
      .bind(3, a.created_ms)
      .bind(4, static_cast<int64_t>(bytes))
      .bind(5, static_cast<int64_t>(items))
      .bind(6, static_cast<int64_t>(a.last_uidvalidity));
  MK_RETURN_IF_ERROR(st.run());
  *account_id = db.last_insert_rowid();
  MK_ASSIGN_OR_RETURN(auto d, db.prepare("INSERT INTO deliveries VALUES (?,?,?,?)"));
  for (const auto& [ingress, del] : a.deliveries) {
    d.bind(1, *account_id)
        .bind_blob(2, ingress.raw())
        .bind_blob(3, del.item.raw())
        .bind(4, del.time_ms);
    MK_RETURN_IF_ERROR(d.run());
    d.reset();
  }
  return Status::ok();
}

}  // namespace

const FolderState* AccountState::folder_named(std::string_view name) const {
  for (const auto& [g, f] : folders)
    if (f.name == name) return &f;
  return nullptr;
}

uint64_t AccountState::items() const {
  uint64_t n = 0;
  for (const auto& [g, f] : folders) n += f.items.size();
  return n;
}

uint64_t AccountState::bytes() const {
  uint64_t n = 0;
  for (const auto& [g, f] : folders)
    for (const auto& [uid, it] : f.items) n += it.size;
  return n;
}

const AccountState* DatabaseState::account_named(std::string_view address) const {
  for (const auto& [g, a] : accounts)
    if (a.address == address) return &a;
  return nullptr;
}

Status replay_record(DatabaseState& state, const JournalRecord& record,
                     const std::optional<Guid>& only_account) {
  if (record.seq != state.seq + 1)
    return corrupt("journal record " + std::to_string(record.seq) + " does not follow record " +
                   std::to_string(state.seq));
  if (record.prev_hash != state.head)
    return corrupt("journal record " + std::to_string(record.seq) +
                   " is not chained to the record before it");
  if (journal::compute_hash(record) != record.hash)
    return corrupt("journal record " + std::to_string(record.seq) + " does not match its hash");
  return Replay(state, record).run(only_account);
}

std::string first_difference(const DatabaseState& a, const DatabaseState& b) {
  if (a.seq != b.seq)
    return "journal position " + std::to_string(a.seq) + " vs " + std::to_string(b.seq);
  if (a.head != b.head) return "journal head hash differs";
  for (const auto& [g, x] : a.accounts) {
    auto it = b.accounts.find(g);
    if (it == b.accounts.end()) return "account " + x.address + " missing";
    const AccountState& y = it->second;
    if (x.address != y.address || x.created_ms != y.created_ms ||
        x.last_uidvalidity != y.last_uidvalidity)
      return "account " + x.address + " attributes";
    if (x.deliveries != y.deliveries) return "account " + x.address + " deliveries";
    for (const auto& [fg, f] : x.folders) {
      auto ft = y.folders.find(fg);
      if (ft == y.folders.end()) return "folder " + x.address + "/" + f.name + " missing";
      const FolderState& h = ft->second;
      std::string where = "folder " + x.address + "/" + f.name;
      if (f.name != h.name) return where + " name (" + h.name + ")";
      if (f.uidvalidity != h.uidvalidity || f.uidnext != h.uidnext ||
          f.highestmodseq != h.highestmodseq)
        return where + " counters (uidnext " + std::to_string(f.uidnext) + " vs " +
               std::to_string(h.uidnext) + ", highestmodseq " + std::to_string(f.highestmodseq) +
               " vs " + std::to_string(h.highestmodseq) + ")";
      if (f.expunged != h.expunged) return where + " expunged UIDs";
      for (const auto& [uid, item] : f.items) {
        auto t = h.items.find(uid);
        if (t == h.items.end()) return where + " UID " + std::to_string(uid) + " missing";
        if (!(item == t->second)) return where + " UID " + std::to_string(uid) + " differs";
      }
      if (f.items.size() != h.items.size()) return where + " has extra items";
      if (!(f == h)) return where + " attributes";
    }
    if (x.folders.size() != y.folders.size()) return "account " + x.address + " has extra folders";
  }
  if (a.accounts.size() != b.accounts.size()) return "extra accounts";
  return "";
}

Result<DatabaseSnapshot::StoredMessage> DatabaseSnapshot::verify_stored(std::string_view stored,
                                                                        const Digest& blob,
                                                                        bool is_file) {
  std::string where = "message " + to_hex(blob) + (is_file ? "" : " (inline)");
  StoredMessage out;
  auto content = BlobStore::decode_verified(stored, blob);
  if (!content.is_ok()) return corrupt(where + ": " + content.status().message());
  out.content = std::move(*content);
  MK_ASSIGN_OR_RETURN(out.zstd_frame, BlobStore::zstd_frame(stored));
  return out;
}

// ---------------------------------------------------------------- MailStore

Status MailStore::read_snapshot(const std::string& db_name,
                                const std::function<Status(DatabaseSnapshot&)>& fn) {
  MK_ASSIGN_OR_RETURN(Database * db, database(db_name));
  return db->read_bulk([&](SqliteDb& sql) -> Status {
    SqlSnapshot snapshot(*db, sql);
    MK_RETURN_IF_ERROR(snapshot.init());
    return fn(snapshot);
  });
}

Status MailStore::build_database(const std::string& name, const DatabaseState& state,
                                 const std::vector<JournalRecord>& journal,
                                 const std::string& restored_from, const MessageSource& messages,
                                 const std::function<void(uint64_t, uint64_t)>& progress) {
  std::string final_dir = database_dir(name);
  if (fs_.exists(final_dir))
    return exists_error("database " + name + " already exists at " + final_dir);
  // Built under a name no database can have, published by one rename when complete: a crash
  // leaves a stray directory and never a half-restored database.
  std::string build_dir = root_ + "/.restoring-" + name;
  if (fs_.exists(build_dir)) {
    MK_LOG_WARN("removing {} left by an interrupted restore", build_dir);
    MK_RETURN_IF_ERROR(remove_tree(build_dir));
  }
  Status built = fill_database(build_dir, name, state, journal, restored_from, messages, progress);
  if (!built.is_ok()) {
    Status cleanup = remove_tree(build_dir);
    if (!cleanup.is_ok()) MK_LOG_WARN("{} not removed: {}", build_dir, cleanup.to_string());
    return built;
  }
  MK_RETURN_IF_ERROR(fs_.rename(build_dir, final_dir));
  return fs_.sync_dir(root_);
}

namespace {

// Runs fn(0), ..., fn(n - 1), each once, on as many threads as there are cores (this one
// included). fn must not throw.
void for_each_on_cores(size_t n, const std::function<void(size_t)>& fn) {
  const size_t threads = std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(run);
  run();
  for (auto& h : helpers) h.join();
}

}  // namespace

Status MailStore::fill_database(const std::string& build_dir, const std::string& name,
                                const DatabaseState& state,
                                const std::vector<JournalRecord>& journal,
                                const std::string& restored_from, const MessageSource& messages,
                                const std::function<void(uint64_t, uint64_t)>& progress) {
  uint64_t total = 0, done = 0;
  for (const auto& [g, a] : state.accounts) total += a.items();
  // Each message's reference count is written once, with its final value.
  std::unordered_map<Digest, int64_t, DigestHash> refs;
  for (const auto& [g, a] : state.accounts)
    for (const auto& [fg, f] : a.folders)
      for (const auto& [uid, item] : f.items) ++refs[item.blob];
  {
    MK_ASSIGN_OR_RETURN(auto db, Database::create(fs_, build_dir, name));
    // Nobody sees the database before build_database() publishes it: commits skip the fsync
    // until the end (end_bulk_load below).
    db->begin_bulk_load();
    if (!restored_from.empty()) {
      MK_RETURN_IF_ERROR(db->write([&](WriteTx& tx) -> Status {
        MK_ASSIGN_OR_RETURN(
            auto st, tx.db().prepare("INSERT OR REPLACE INTO meta VALUES ('restored_from', ?)"));
        st.bind(1, restored_from);
        return st.run();
      }));
    }
    // Journal first (verbatim), in batches.
    for (size_t i = 0; i < journal.size();) {
      size_t end = std::min(journal.size(), i + 2000);
      MK_RETURN_IF_ERROR(db->write([&](WriteTx& tx) -> Status {
        for (size_t k = i; k < end; ++k) {
          MK_RETURN_IF_ERROR(journal::insert(tx.db(), journal[k]));
        }
        return Status::ok();
      }));
      i = end;
    }
    std::set<Digest> stored;  // messages rows already written
    for (const auto& [ag, a] : state.accounts) {
      int64_t account_id = 0;
      MK_RETURN_IF_ERROR(db->write([&](WriteTx& tx) { return insert_state(tx, a, &account_id); }));
      for (const auto& [fg, f] : a.folders) {
        int64_t folder_id = 0;
        MK_RETURN_IF_ERROR(db->write([&](WriteTx& tx) -> Status {
          MK_ASSIGN_OR_RETURN(
              auto st,
              tx.db().prepare("INSERT INTO folders(account_id, guid, name, kind, special_use,"
                              " subscribed, uidvalidity, uidnext, highestmodseq, created_ms)"
                              " VALUES (?,?,?,?,?,?,?,?,?,?)"));
          st.bind(1, account_id).bind_blob(2, f.guid.raw()).bind(3, f.name).bind(4, f.kind);
          if (f.special_use.empty())
            st.bind_null(5);
          else
            st.bind(5, f.special_use);
          st.bind(6, f.subscribed ? 1 : 0)
              .bind(7, static_cast<int64_t>(f.uidvalidity))
              .bind(8, static_cast<int64_t>(f.uidnext))
              .bind(9, static_cast<int64_t>(f.highestmodseq))
              .bind(10, f.created_ms);
          MK_RETURN_IF_ERROR(st.run());
          folder_id = tx.db().last_insert_rowid();
          MK_ASSIGN_OR_RETURN(auto ex, tx.db().prepare("INSERT INTO expunged VALUES (?,?,?)"));
          for (const auto& [uid, modseq] : f.expunged) {
            ex.bind(1, folder_id)
                .bind(2, static_cast<int64_t>(uid))
                .bind(3, static_cast<int64_t>(modseq));
            MK_RETURN_IF_ERROR(ex.run());
            ex.reset();
          }
          MK_ASSIGN_OR_RETURN(auto gone, tx.db().prepare("INSERT INTO dav_gone VALUES (?,?,?)"));
          for (const auto& [gone_name, modseq] : f.gone) {
            gone.bind(1, folder_id).bind(2, gone_name).bind(3, static_cast<int64_t>(modseq));
            MK_RETURN_IF_ERROR(gone.run());
            gone.reset();
          }
          if (!f.props.empty()) {
            json props = json::object();
            for (const auto& [k, v] : f.props) props[k] = v;
            MK_ASSIGN_OR_RETURN(auto pr, tx.db().prepare("INSERT INTO folder_props VALUES (?,?)"));
            pr.bind(1, folder_id).bind(2, props.dump());
            MK_RETURN_IF_ERROR(pr.run());
          }
          return Status::ok();
        }));
        // Items in batches; each batch's new bodies are read (and verified) first, big ones
        // written as blob files whose directories the commit syncs.
        auto it = f.items.begin();
        while (it != f.items.end()) {
          std::vector<const ItemState*> batch;
          uint64_t batch_bytes = 0;
          while (it != f.items.end() && batch.size() < 500 && batch_bytes < (32u << 20)) {
            batch.push_back(&it->second);
            batch_bytes += it->second.size;
            ++it;
          }
          struct NewMessage {
            Digest blob;
            uint64_t size, stored_size;
            std::string info, header_fields, data;  // data empty: blob file
          };
          std::vector<NewMessage> fresh;
          std::set<std::string> dirs;
          // Derived fields of calendar and address book resources, from their bodies.
          std::map<const ItemState*, store_sql::ObjectRange> ranges;
          // The bodies are read here, in order (the repository is read by one thread); the
          // work on each (verify, parse, compress, write a blob file) is spread over the
          // cores, and its results taken in order again.
          struct BodyWork {
            const ItemState* item = nullptr;
            std::string raw;
            bool new_message = false;  // not stored yet: parse, encode and store it
            Status status = Status::ok();
            NewMessage message;
            store_sql::ObjectRange range;
            std::string blob_dir;  // the directory of a new blob file, to sync
          };
          std::vector<BodyWork> work;
          for (const ItemState* item : batch) {
            const bool dav = !item->dav_name.empty();
            const bool new_message = !stored.count(item->blob);
            if (!new_message && !dav) continue;
            MK_ASSIGN_OR_RETURN(std::string raw, messages(item->blob));
            stored.insert(item->blob);
            BodyWork& w = work.emplace_back();
            w.item = item;
            w.raw = std::move(raw);
            w.new_message = new_message;
          }
          auto prepare = [&](BodyWork& w) -> Status {
            const ItemState* item = w.item;
            if (sha256(w.raw) != item->blob)
              return corrupt("message " + to_hex(item->blob) + " does not match its digest");
            if (!item->dav_name.empty()) {
              auto range = store_sql::object_range(item->component, w.raw);
              if (!range.is_ok())
                return corrupt("resource " + f.name + "/" + item->dav_name + ": " +
                               range.status().message());
              w.range = *range;
            }
            if (!w.new_message) return Status::ok();
            NewMessage& m = w.message;
            m.blob = item->blob;
            m.size = w.raw.size();
            const MessageInfo parsed = parse_message(w.raw);
            m.info = serialize_message_info(parsed);
            m.header_fields = encode_header_fields(parsed.header);
            if (w.raw.size() <= kInlineBodyLimit) {
              m.data = BlobStore::encode(w.raw);
              m.stored_size = m.data.size();
            } else {
              MK_ASSIGN_OR_RETURN(auto put, db->blobs().put(w.raw, &item->blob));
              m.stored_size = put.stored_size;
              w.blob_dir = put.dir_to_sync;
            }
            return Status::ok();
          };
          for_each_on_cores(work.size(), [&](size_t i) {
            try {
              work[i].status = prepare(work[i]);
            } catch (const std::exception& e) {  // bad_alloc: this restore fails, nothing else
              work[i].status = io_error("message " + to_hex(work[i].item->blob) + ": " + e.what());
            }
          });
          for (BodyWork& w : work) {
            MK_RETURN_IF_ERROR(w.status);
            if (!w.item->dav_name.empty()) ranges[w.item] = w.range;
            if (!w.blob_dir.empty()) dirs.insert(w.blob_dir);
            if (w.new_message) fresh.push_back(std::move(w.message));
          }
          MK_RETURN_IF_ERROR(db->write(
              [&](WriteTx& tx) -> Status {
                SqliteDb& sql = tx.db();
                MK_ASSIGN_OR_RETURN(auto msg,
                                    sql.prepare("INSERT INTO messages(blob, size, stored_size,"
                                                " info, data) VALUES (?,?,?,?,?)"));
                MK_ASSIGN_OR_RETURN(auto ref, sql.prepare("INSERT INTO message_refs VALUES (?,?)"));
                for (const auto& m : fresh) {
                  msg.bind_blob(1, as_bytes(m.blob))
                      .bind(2, static_cast<int64_t>(m.size))
                      .bind(3, static_cast<int64_t>(m.stored_size))
                      .bind_blob(4, m.info);
                  if (m.data.empty())
                    msg.bind_null(5);
                  else
                    msg.bind_blob(5, m.data);
                  MK_RETURN_IF_ERROR(msg.run());
                  msg.reset();
                  ref.bind_blob(1, as_bytes(m.blob)).bind(2, refs[m.blob]);
                  MK_RETURN_IF_ERROR(ref.run());
                  ref.reset();
                  MK_RETURN_IF_ERROR(store_sql::put_header_fields(sql, m.blob, m.header_fields));
                }
                MK_ASSIGN_OR_RETURN(
                    auto ins,
                    sql.prepare("INSERT INTO items(folder_id, uid, guid, ingress_id, blob, size,"
                                " internal_date_ms, flags, modseq, saved_ms) VALUES "
                                "(?,?,?,?,?,?,?,?,?,?)"));
                for (const ItemState* item : batch) {
                  ins.bind(1, folder_id)
                      .bind(2, static_cast<int64_t>(item->uid))
                      .bind_blob(3, item->guid.raw());
                  if (item->ingress_id)
                    ins.bind_blob(4, item->ingress_id->raw());
                  else
                    ins.bind_null(4);
                  ins.bind_blob(5, as_bytes(item->blob))
                      .bind(6, static_cast<int64_t>(item->size))
                      .bind(7, item->internal_date_ms)
                      .bind(8, join_flags(item->flags))
                      .bind(9, static_cast<int64_t>(item->modseq))
                      .bind(10, item->saved_ms);
                  MK_RETURN_IF_ERROR(ins.run());
                  ins.reset();
                  if (!item->dav_name.empty()) {
                    DavResource r;
                    r.name = item->dav_name;
                    r.uid = item->uid;
                    r.guid = item->guid;
                    r.blob = item->blob;
                    r.size = item->size;
                    r.modseq = item->modseq;
                    r.saved_ms = item->saved_ms;
                    r.component_uid = item->component_uid;
                    r.component = item->component;
                    r.range_start = ranges[item].start;
                    r.range_end = ranges[item].end;
                    r.recurring = ranges[item].recurring;
                    MK_RETURN_IF_ERROR(store_sql::insert_resource(sql, folder_id, r));
                  }
                }
                return Status::ok();
              },
              dirs));
          done += batch.size();
          if (progress) progress(done, total);
        }
      }
    }
    MK_RETURN_IF_ERROR(db->end_bulk_load());
  }  // closes the database
  return Status::ok();
}

Status MailStore::remove_tree(const std::string& dir) {
  auto names = fs_.list_dir(dir);
  if (!names.is_ok())
    return names.status().code() == ErrorCode::kNotFound ? Status::ok() : names.status();
  for (const auto& n : *names) {
    std::string p = dir + "/" + n;
    auto sub = fs_.list_dir(p);
    if (sub.is_ok()) {
      MK_RETURN_IF_ERROR(remove_tree(p));
    } else {
      MK_RETURN_IF_ERROR(fs_.remove(p));
    }
  }
  return fs_.remove(dir);
}

}  // namespace mailark
