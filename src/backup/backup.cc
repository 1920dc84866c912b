// The backup engine: base backups, journal archive, restore, verify, copy and prune over the
// configured repository tiers. Metadata trees and snapshot manifests are JSON inside sealed
// objects; their layout is in docs/formats/backup-repository.md.
#include "backup/backup.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <unordered_set>

#include "backup/trees.h"
#include "base/log.h"
#include "base/time.h"
#include "os/file.h"

namespace mailark {
namespace {

using json = nlohmann::json;

constexpr int64_t kSegmentRecords = 5000;
// A base backup with at least this many new bodies, and an eighth of all, reads them in one
// scan of the message table.
constexpr size_t kScanMinimum = 32;
// A scrub slice of 1/N with N at most this re-reads its bodies through a mapping of the
// database file (DatabaseSnapshot::map_file).
constexpr int kMappedScrubRotation = 8;
// An incremental backup builds on the newest full one while the journal since then has at
// most this many records, or as many as the database has items (past that, replaying the
// journal in a restore costs more than reading a full backup's trees).
constexpr int64_t kIncrementalMinRecords = 10000;

std::string hostname() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

Result<SnapshotSummary> summarize(Repository& repo, const std::string& id) {
  MK_ASSIGN_OR_RETURN(std::string text, repo.read_snapshot(id));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return corrupt("snapshot " + id.substr(0, 12) + " is not JSON");
  SnapshotSummary s;
  s.id = id;
  s.repository = repo.name();
  try {
    s.database = j.at("database").get<std::string>();
    s.database_guid = j.at("database_guid").get<std::string>();
    s.seq = j.at("seq").get<int64_t>();
    s.time_ms = j.at("time_ms").get<int64_t>();
    s.started_ms = j.at("started_ms").get<int64_t>();
    s.finished_ms = j.at("finished_ms").get<int64_t>();
    s.items = j.at("items").get<uint64_t>();
    s.bytes = j.at("bytes").get<uint64_t>();
    s.uploaded_bytes = j.value("uploaded_bytes", uint64_t{0});
    s.verified = true;
    if (j.contains("full")) {
      // Incremental: snapshots() checks its full backup and the journal between.
      s.full = j.at("full").get<std::string>();
      s.full_seq = j.at("full_seq").get<int64_t>();
      return s;
    }
    // Structure: every account tree it names is in the index.
    for (const auto& a : j.at("accounts")) {
      if (!repo.has_object(must_digest(a.at("tree").get<std::string>()))) {
        s.verified = false;
        s.problem = "account tree of " + a.at("address").get<std::string>() + " is missing";
      }
    }
  } catch (const json::exception& e) {
    return corrupt("snapshot " + id.substr(0, 12) + " is malformed: " + e.what());
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------- Progress

void Progress::start(std::string what, uint64_t total_bytes) {
  what_ = std::move(what);
  total_ = total_bytes;
  done_ = items_ = 0;
  started_ms_ = now_ms();
  drawn_ms_ = 0;
  draw(true);
}

void Progress::advance(uint64_t bytes, uint64_t items) {
  done_ += bytes;
  items_ += items;
  draw(false);
}

void Progress::draw(bool force) {
  if (!enabled_) return;
  int64_t now = now_ms();
  if (!force && now - drawn_ms_ < 200) return;
  drawn_ms_ = now;
  double secs = std::max<int64_t>(1, now - started_ms_) / 1000.0;
  double rate = done_ / secs;
  double frac = total_ ? std::min(1.0, static_cast<double>(done_) / total_) : 0;
  int width = 30, filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  std::string eta = "--";
  if (rate > 0 && total_ > done_) {
    int64_t s = static_cast<int64_t>((total_ - done_) / rate);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
    eta = buf;
  }
  std::fprintf(stderr, "\r%-24s [%s] %3d%% %9s %10s/s ETA %s  ", what_.substr(0, 24).c_str(),
               bar.c_str(), static_cast<int>(frac * 100), format_size(done_).c_str(),
               format_size(static_cast<uint64_t>(rate)).c_str(), eta.c_str());
}

void Progress::finish() {
  if (!enabled_) return;
  done_ = std::max(done_, total_);
  draw(true);
  std::fprintf(stderr, "\n");
}

// ---------------------------------------------------------------- engine

struct BackupEngine::Impl {
  std::map<std::string, std::unique_ptr<Repository>> repos;
  std::optional<KeySource> key;
  // Archived range per (repository, database GUID), learned once, then kept up to date.
  std::map<std::pair<std::string, std::string>, ArchiveRange> archived;
  std::map<std::string, int64_t> prune_seen;     // marker time last seen
  std::map<std::string, int64_t> prune_checked;  // when the marker was last read
};

BackupEngine::BackupEngine(FileSystem& fs, MailStore& store, BackupSettings settings)
    : impl_(std::make_unique<Impl>()), fs_(fs), store_(store), settings_(std::move(settings)) {}

BackupEngine::~BackupEngine() {
  for (auto& [name, repo] : impl_->repos) (void)repo->flush();
}

Result<KeySource> BackupEngine::key_source() {
  if (impl_->key) return *impl_->key;
  KeySource k;
  if (!settings_.key_file.empty()) {
    auto text = fs_.read_file(settings_.key_file);
    if (!text.is_ok())
      return invalid("backup key file " + settings_.key_file +
                     " cannot be read: " + text.status().message());
    MK_ASSIGN_OR_RETURN(BackupKey key, BackupKey::parse(*text));
    k.key = key;
  } else if (!settings_.passphrase_file.empty()) {
    auto text = fs_.read_file(settings_.passphrase_file);
    if (!text.is_ok())
      return invalid("backup passphrase file " + settings_.passphrase_file +
                     " cannot be read: " + text.status().message());
    std::string p = *text;
    while (!p.empty() && (p.back() == '\n' || p.back() == '\r')) p.pop_back();
    k.passphrase = p;
  } else {
    return invalid("no backup key configured (backup.key_file or backup.passphrase_file)");
  }
  impl_->key = k;
  return k;
}

Result<Repository*> BackupEngine::repository(const std::string& name, bool create) {
  if (settings_.repositories.empty()) return invalid("no repository configured ([[repository]])");
  const RepositorySettings* rs = nullptr;
  for (const auto& r : settings_.repositories)
    if (name.empty() ? rs == nullptr : r.name == name) rs = &r;
  if (!rs) return not_found("no repository named '" + name + "' in the configuration");
  auto cached = impl_->repos.find(rs->name);
  if (cached != impl_->repos.end()) return cached->second.get();
  auto backend = [&]() -> std::unique_ptr<RepositoryBackend> {
    if (rs->type == "s3") return make_s3_backend(rs->s3);
    return make_local_backend(fs_, rs->path);
  };
  MK_ASSIGN_OR_RETURN(KeySource key, key_source());
  auto repo = Repository::open(rs->name, backend(), key);
  if (!repo.is_ok() && repo.status().code() == ErrorCode::kNotFound && create) {
    // A new tier takes the id and key parameters of an existing one, so files copy as they are.
    Repository* like = nullptr;
    for (const auto& other : settings_.repositories) {
      if (other.name == rs->name) continue;
      auto o = repository(other.name, false);
      if (o.is_ok()) {
        like = *o;
        break;
      }
    }
    MK_ASSIGN_OR_RETURN(Cipher cipher, parse_cipher(settings_.cipher));
    repo = like ? Repository::create_like(rs->name, backend(), *like)
                : Repository::create(rs->name, backend(), key, cipher);
  }
  if (!repo.is_ok()) return repo.status();
  MK_RETURN_IF_ERROR((*repo)->load_index());
  Repository* raw = repo->get();
  impl_->repos[rs->name] = std::move(*repo);
  return raw;
}

std::vector<Repository*> BackupEngine::open_all(std::vector<std::string>* problems) {
  std::vector<Repository*> out;
  for (const auto& r : settings_.repositories) {
    auto repo = repository(r.name, false);
    if (repo.is_ok())
      out.push_back(*repo);
    else if (problems)
      problems->push_back(r.name + ": " + repo.status().message());
  }
  return out;
}

// ---------------------------------------------------------------- journal archive

Result<ArchiveRange> BackupEngine::archived_range(Repository& repo, const std::string& guid) {
  auto key = std::make_pair(repo.name(), guid);
  auto cached = impl_->archived.find(key);
  if (cached != impl_->archived.end()) return cached->second;
  MK_ASSIGN_OR_RETURN(auto segs, repo.segments(guid));
  std::sort(segs.begin(), segs.end(),
            [](const JournalSegment& a, const JournalSegment& b) { return a.first < b.first; });
  ArchiveRange r;
  for (const auto& s : segs) {
    if (r.last == 0) {  // the oldest kept segment (prune removes older ones)
      r.first = s.first;
      r.last = s.last;
      continue;
    }
    if (s.first > r.last + 1) break;  // a gap: shipped again from there
    r.last = std::max(r.last, s.last);
  }
  if (r.last > 0) {
    for (auto it = segs.rbegin(); it != segs.rend(); ++it)
      if (it->last == r.last) {
        auto recs = repo.read_segment(*it);
        if (recs.is_ok()) r.last_time_ms = recs->back().time_ms;
        break;
      }
  }
  impl_->archived[key] = r;
  return r;
}

namespace {

// A body read from the database, to be verified and stored.
struct BodyCheck {
  const ItemState* item;
  std::string where;
  bool present;  // the repository has it: verified only
  DatabaseSnapshot::StoredBytes stored;
  std::unique_ptr<ItemState> owned = nullptr;  // when `item` is not from a state
  // Filled by the pipeline: the verification's outcome, and the object sealed for the
  // repository (unless `present`).
  Status status = Status::ok();
  std::string sealed = {};
  uint64_t raw_length = 0;
};

// Bodies read on the caller's thread are verified (decompressed, hashed) and sealed for the
// repository by worker threads, one per core, while the caller goes on reading; the caller
// appends them to the repository in the order read. A body that fails verification stops it.
class BodyPipeline {
 public:
  // Counts (either may be null) and the set of digests handled (may be null).
  BodyPipeline(Repository& repo, uint64_t* verified, uint64_t* new_messages,
               std::set<Digest>* handled)
      : repo_(repo), verified_(verified), new_messages_(new_messages), handled_(handled) {}
  ~BodyPipeline() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    work_ready_.notify_all();
    for (auto& t : workers_) t.join();
  }
  Status add(BodyCheck c) {
    if (workers_.empty()) {  // started with the first body (most archive runs have none)
      unsigned n = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
      for (unsigned i = 0; i < n; ++i) workers_.emplace_back([this] { work(); });
    }
    {
      std::lock_guard lock(mu_);
      in_flight_bytes_ += c.stored.bytes.size();
      order_.push_back(std::make_unique<Item>(std::move(c)));
      todo_.push_back(order_.back().get());
    }
    work_ready_.notify_one();
    return store_done(false);
  }
  // A body known by its digest only (not an item of a state), as the caller read it.
  Status add_digest(const Digest& blob, std::string where, bool present,
                    Result<DatabaseSnapshot::StoredBytes> stored) {
    if (!stored.is_ok())
      return Status(stored.status().code(), where + ": " + stored.status().message());
    auto item = std::make_unique<ItemState>();
    item->blob = blob;
    BodyCheck c{item.get(), std::move(where), present, std::move(*stored)};
    c.owned = std::move(item);
    return add(std::move(c));
  }
  // Verifies and stores what is left.
  Status finish() { return store_done(true); }

 private:
  struct Item {
    explicit Item(BodyCheck c) : check(std::move(c)) {}
    BodyCheck check;
    bool done = false;
  };

  // Stores the finished bodies at the front, in order; waits for more while too much is in
  // flight, or until everything is stored with `all`.
  Status store_done(bool all) {
    while (true) {
      std::vector<std::unique_ptr<Item>> ready;
      {
        std::unique_lock lock(mu_);
        auto front_done = [this] { return order_.empty() || order_.front()->done; };
        bool full = in_flight_bytes_ > kMaxBytes || order_.size() > kMaxItems;
        if ((all || full) && !front_done()) done_ready_.wait(lock, front_done);
        while (!order_.empty() && order_.front()->done) {
          in_flight_bytes_ -= order_.front()->check.stored.bytes.size();
          ready.push_back(std::move(order_.front()));
          order_.pop_front();
        }
      }
      if (ready.empty()) return Status::ok();
      for (auto& item : ready) MK_RETURN_IF_ERROR(store(item->check));
    }
  }

  Status store(BodyCheck& c) {
    if (!c.status.is_ok()) return Status(c.status.code(), c.where + ": " + c.status.message());
    if (verified_) ++*verified_;
    if (handled_) handled_->insert(c.item->blob);
    if (c.present) return Status::ok();
    MK_ASSIGN_OR_RETURN(
        bool added, repo_.add_sealed(ObjectType::kMessage, c.item->blob, c.sealed, c.raw_length));
    if (added && new_messages_) ++*new_messages_;
    return Status::ok();
  }

  void work() {
    while (true) {
      Item* item;
      {
        std::unique_lock lock(mu_);
        work_ready_.wait(lock, [this] { return stop_ || !todo_.empty(); });
        if (stop_) return;
        item = todo_.front();
        todo_.pop_front();
      }
      BodyCheck& c = item->check;
      auto m = DatabaseSnapshot::verify_stored(c.stored.bytes, c.item->blob, c.stored.is_file);
      if (!m.is_ok()) {
        c.status = m.status();
      } else {
        c.raw_length = m->content.size();
        if (!c.present) {
          auto sealed = repo_.seal_object(c.item->blob, m->content, m->zstd_frame);
          if (sealed.is_ok())
            c.sealed = std::move(*sealed);
          else
            c.status = sealed.status();
        }
      }
      {
        std::lock_guard lock(mu_);
        item->done = true;
      }
      done_ready_.notify_one();
    }
  }

  static constexpr uint64_t kMaxBytes = 64u << 20;  // stored bytes read and not yet stored
  static constexpr size_t kMaxItems = 4096;
  Repository& repo_;
  uint64_t *verified_, *new_messages_;
  std::set<Digest>* handled_;
  std::mutex mu_;
  std::condition_variable work_ready_, done_ready_;
  std::deque<std::unique_ptr<Item>> order_;  // read, not yet stored, in order
  std::deque<Item*> todo_;                   // not yet taken by a worker
  uint64_t in_flight_bytes_ = 0;
  bool stop_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

// Ships records (after, upto] from `snap` with the bodies they reference.
static Status ship_journal(DatabaseSnapshot& snap, Repository& repo, const std::string& guid,
                           int64_t after, int64_t upto, ArchiveRange* range,
                           uint64_t* new_messages = nullptr, std::set<Digest>* shipped = nullptr) {
  while (after < upto) {
    MK_ASSIGN_OR_RETURN(auto records, snap.journal(after, std::min(kSegmentRecords, upto - after)));
    if (records.empty()) break;
    // The bodies these records name that the repository lacks: read here, verified and
    // sealed by the pipeline's workers, stored in order.
    BodyPipeline bodies(repo, nullptr, new_messages, shipped);
    std::set<Digest> queued;
    for (const auto& r : records) {
      auto p = json::parse(r.payload, nullptr, false);
      if (!p.is_object() || !p.contains("blob") || !p["blob"].is_string()) continue;
      auto blob = digest_from_hex(p["blob"].get<std::string>());
      if (!blob || repo.has_object(*blob) || !queued.insert(*blob).second) continue;
      MK_RETURN_IF_ERROR(bodies.add_digest(*blob, "journal record " + std::to_string(r.seq), false,
                                           snap.stored_bytes(*blob)));
    }
    MK_RETURN_IF_ERROR(bodies.finish());
    MK_RETURN_IF_ERROR(repo.write_segment(guid, records));
    if (range->first == 0) range->first = records.front().seq;
    range->last = records.back().seq;
    range->last_time_ms = records.back().time_ms;
    after = records.back().seq;
  }
  return Status::ok();
}

void BackupEngine::invalidate_archive_cache(const std::string& repo) {
  for (auto it = impl_->archived.begin(); it != impl_->archived.end();)
    it = it->first.first == repo ? impl_->archived.erase(it) : std::next(it);
}

// The prune marker: while a prune runs (and for at most an hour) writers do not start; when
// a prune has finished since this engine last looked, its index is reloaded, because the
// prune may have removed packs holding objects the index still remembers.
Status BackupEngine::check_not_pruning(Repository& repo) {
  // At most once a second per repository (the archive asks for every database).
  int64_t& checked = impl_->prune_checked[repo.name()];
  if (now_ms() - checked < 1000) return Status::ok();
  checked = now_ms();
  auto marker = repo.backend().get(kPruneMarker);
  if (!marker.is_ok()) {
    return marker.status().code() == ErrorCode::kNotFound ? Status::ok() : marker.status();
  }
  json m = json::parse(*marker, nullptr, false);
  int64_t t = m.is_object() ? m.value("time_ms", int64_t{0}) : 0;
  bool running = m.is_object() && m.value("state", "") == "running";
  if (running && now_ms() - t < 3600'000)
    return temporary("repository " + repo.name() + " is being pruned (since " + format_time_s(t) +
                     "); try again when it is done");
  auto& seen = impl_->prune_seen[repo.name()];
  if (seen == 0) {
    seen = t;  // the index was loaded after this prune
  } else if (seen != t) {
    seen = t;
    invalidate_archive_cache(repo.name());
    MK_RETURN_IF_ERROR(repo.load_index());
  }
  return Status::ok();
}

Result<ArchiveRange> BackupEngine::archive_journal(const std::string& db, Repository& repo) {
  MK_RETURN_IF_ERROR(check_not_pruning(repo));
  ArchiveRange range;
  int64_t db_seq = 0, db_time = 0;
  Status s = store_.read_snapshot(db, [&](DatabaseSnapshot& snap) -> Status {
    MK_ASSIGN_OR_RETURN(range, archived_range(repo, snap.database_guid()));
    db_seq = snap.seq();
    if (range.last > db_seq)
      return conflict("repository " + repo.name() + " holds journal up to " +
                      std::to_string(range.last) + " for database " + db + ", which ends at " +
                      std::to_string(db_seq) +
                      " (a database restored or replaced under the same identity?)");
    MK_RETURN_IF_ERROR(ship_journal(snap, repo, snap.database_guid(), range.last, db_seq, &range));
    impl_->archived[{repo.name(), snap.database_guid()}] = range;
    auto last = snap.journal(db_seq - 1, 1);
    if (last.is_ok() && !last->empty()) db_time = last->back().time_ms;
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  record_archive(db, repo.name(), range, db_seq, db_time);
  return range;
}

// ---------------------------------------------------------------- base backup

namespace {

// What a base backup needs from the earlier ones of the same database in the same
// repository: where the newest one's journal walk ended and when it began; which folder and
// account trees the newest full one wrote for which versions (so unchanged ones are not
// serialized again), and where it stands (an incremental backup builds on it).
struct PreviousBackup {
  int64_t seq = 0;
  Digest head{};
  int64_t started_ms = 0;
  std::string full_id;
  int64_t full_seq = 0;
  int64_t full_started_ms = 0;
  std::map<std::string, std::string> trees;  // version key -> tree id
};

PreviousBackup previous_backup(Repository& repo, const std::vector<SnapshotSummary>& earlier,
                               const std::string& database_guid, int64_t seq) {
  PreviousBackup out;
  const SnapshotSummary *newest = nullptr, *full = nullptr;
  // Backups at the same position (nothing changed between them): the one that started last,
  // whose age full_interval counts from.
  auto later = [](const SnapshotSummary& a, const SnapshotSummary* b) {
    return !b || a.seq > b->seq || (a.seq == b->seq && a.started_ms > b->started_ms);
  };
  for (const auto& e : earlier) {
    if (e.database_guid != database_guid || !e.problem.empty() || e.seq > seq) continue;
    if (later(e, newest)) newest = &e;
    if (e.full.empty() && later(e, full)) full = &e;
  }
  auto read = [&repo](const SnapshotSummary* s) {
    auto text = repo.read_snapshot(s->id);
    json j = text.is_ok() ? json::parse(*text, nullptr, false) : json();
    return j.is_object() ? j : json();
  };
  if (newest) {
    json j = read(newest);
    if (j.is_object()) {
      out.seq = newest->seq;
      out.head = must_digest(j.value("head", std::string()));
      out.started_ms = newest->started_ms;
    }
  }
  if (full) {
    json j = read(full);
    if (j.is_object()) {
      out.full_id = full->id;
      out.full_seq = full->seq;
      out.full_started_ms = full->started_ms;
      if (j.contains("trees") && j["trees"].is_object())
        for (const auto& [version, tree] : j["trees"].items())
          out.trees[version] = tree.get<std::string>();
    }
  }
  return out;
}

std::string folder_version(const FolderState& f) {
  json v = {f.guid.hex(), f.name,         f.kind,           f.special_use,
            f.subscribed, f.uidvalidity,  f.uidnext,        f.highestmodseq,
            f.created_ms, f.items.size(), f.expunged.size()};
  // Collection properties change without a new MODSEQ.
  if (!f.props.empty()) v.push_back(f.props);
  return "f" + to_hex(sha256(v.dump()));
}

}  // namespace

Result<BaseBackupResult> BackupEngine::base_backup(const std::string& db, Repository& repo,
                                                   const BaseBackupOptions& options,
                                                   Progress& progress) {
  MK_RETURN_IF_ERROR(check_not_pruning(repo));
  BaseBackupResult out;
  out.repository = repo.name();
  bool verify_all = options.verify_all;
  int64_t started = now_ms();
  uint64_t uploaded_before = repo.bytes_uploaded();
  json manifest;
  // Which slice of the already-backed-up bodies this run re-reads (see scrub_rotation).
  int rotation = std::max(1, settings_.scrub_rotation);
  int slot = static_cast<int>((started / 1000) % rotation);
  Status s = store_.read_snapshot(db, [&](DatabaseSnapshot& snap) -> Status {
    out.seq = snap.seq();
    PreviousBackup previous;
    if (auto earlier = snapshots(repo); earlier.is_ok())
      previous = previous_backup(repo, *earlier, snap.database_guid(), out.seq);
    // The journal chain: in full with --verify-all or the first time, else from where the
    // previous backup's walk ended (its head must still be there).
    std::vector<std::string> broken;
    auto problem = [&](int64_t seq, const std::string& what) {
      broken.push_back("seq " + std::to_string(seq) + ": " + what);
    };
    if (verify_all || previous.seq == 0)
      MK_RETURN_IF_ERROR(snap.verify_journal(problem).status());
    else
      MK_RETURN_IF_ERROR(snap.verify_journal(problem, previous.seq, previous.head).status());
    if (!broken.empty())
      return corrupt(
          "journal of database " + db + " is broken at " + broken.front() +
          (broken.size() > 1 ? " (and " + std::to_string(broken.size() - 1) + " more)" : ""));
    ArchiveRange range;
    MK_ASSIGN_OR_RETURN(range, archived_range(repo, snap.database_guid()));
    MK_ASSIGN_OR_RETURN(auto totals, snap.totals());
    // Incremental: the newest full backup is recent, the journal since is not too long, and
    // the archive holds it from there (or will, once this run has shipped the rest). Else
    // full, and the summary says why.
    const int64_t max_records =
        std::max<int64_t>(kIncrementalMinRecords, static_cast<int64_t>(totals.items));
    if (verify_all)
      out.full_reason = "--verify-all";
    else if (options.full)
      out.full_reason = "--full";
    else if (previous.full_id.empty())
      out.full_reason = "no earlier full backup in " + repo.name();
    else if (settings_.full_interval_ms <= 0)
      out.full_reason = "full_interval is \"always\"";
    else if (started - previous.full_started_ms >= settings_.full_interval_ms)
      out.full_reason = "the newest full backup is older than full_interval";
    else if (out.seq - previous.full_seq > max_records)
      out.full_reason = std::to_string(out.seq - previous.full_seq) +
                        " journal records since the newest full backup, more than " +
                        std::to_string(max_records);
    else if (range.last != 0 && range.first > previous.full_seq + 1)
      out.full_reason = "the journal archive lacks records " +
                        std::to_string(previous.full_seq + 1) + ".." +
                        std::to_string(range.first - 1);
    bool incremental = out.full_reason.empty();
    // The journal up to this snapshot, with the bodies it names that the repository lacks
    // (added to `shipped`): a restore point needs both.
    auto archive_journal_here = [&](std::set<Digest>& shipped) -> Status {
      int64_t before = range.last;
      MK_RETURN_IF_ERROR(ship_journal(snap, repo, snap.database_guid(), range.last, out.seq, &range,
                                      &out.new_messages, &shipped));
      impl_->archived[{repo.name(), snap.database_guid()}] = range;
      out.archived_records = range.last - before;
      out.archive = range;
      out.verified_messages += shipped.size();
      return Status::ok();
    };
    if (incremental) {
      progress.start("backup " + db + " (incremental)", 0);
      std::set<Digest> shipped;
      MK_RETURN_IF_ERROR(archive_journal_here(shipped));
      // A blob file modified since the newest backup began is damage, unless its message
      // arrived since: read and verified again (and stored, if the repository lacks it).
      MK_ASSIGN_OR_RETURN(auto changed, snap.files_modified_since(previous.started_ms - 1000));
      BodyPipeline bodies(repo, &out.verified_messages, &out.new_messages, nullptr);
      for (const Digest& blob : changed) {
        if (shipped.count(blob)) continue;
        auto stored = snap.stored_bytes(blob);
        if (!stored.is_ok() && stored.status().code() == ErrorCode::kNotFound)
          continue;  // a file no message names: `mailark check` reports those
        MK_RETURN_IF_ERROR(bodies.add_digest(blob, "message " + to_hex(blob), repo.has_object(blob),
                                             std::move(stored)));
      }
      MK_RETURN_IF_ERROR(bodies.finish());
      out.full_id = previous.full_id;
      out.full_seq = previous.full_seq;
      out.accounts = totals.accounts;
      out.items = totals.items;
      out.bytes = totals.bytes;
      manifest = {{"version", 1},
                  {"database", db},
                  {"database_guid", snap.database_guid()},
                  {"seq", out.seq},
                  {"head", to_hex(snap.head())},
                  {"time_ms", snap.time_ms()},
                  {"started_ms", started},
                  {"host", hostname()},
                  {"full", out.full_id},
                  {"full_seq", out.full_seq},
                  {"account_count", out.accounts},
                  {"items", out.items},
                  {"bytes", out.bytes},
                  {"new_messages", out.new_messages}};
      return Status::ok();
    }
    MK_ASSIGN_OR_RETURN(DatabaseState state, snap.state());
    std::set<Digest> shipped;  // bodies read, verified and stored just now
    uint64_t items = 0;
    for (const auto& [g, a] : state.accounts) items += a.items();
    // Many new bodies (a first backup): read them in one scan of the message table, in its
    // order, instead of one lookup each in the order of the journal or the folders.
    {
      std::set<Digest> wanted;
      for (const auto& [g, a] : state.accounts) {
        for (const auto& [fg, f] : a.folders)
          for (const auto& [uid, it] : f.items)
            if (!repo.has_object(it.blob)) wanted.insert(it.blob);
      }
      // A scan reads the whole table: worth it when a good share of it is new.
      if (wanted.size() >= kScanMinimum && wanted.size() * 8 >= items) {
        BodyPipeline bodies(repo, nullptr, &out.new_messages, &shipped);
        MK_RETURN_IF_ERROR(snap.scan_stored(
            wanted, [&](const Digest& blob, DatabaseSnapshot::StoredBytes&& stored) -> Status {
              return bodies.add_digest(blob, "message " + to_hex(blob), false, std::move(stored));
            }));
        MK_RETURN_IF_ERROR(bodies.finish());
      }
    }
    // The journal up to this snapshot is archived before the rest of the bodies.
    MK_RETURN_IF_ERROR(archive_journal_here(shipped));

    // Re-reading a large share of the bodies goes faster through a mapping of the file; a
    // thin slice (the default 1/24) reads only its bodies, without readahead around each.
    if (verify_all || rotation <= kMappedScrubRotation) MK_RETURN_IF_ERROR(snap.map_file());
    uint64_t total = 0;
    for (const auto& [g, a] : state.accounts) total += a.bytes();
    progress.start("backup " + db, total);
    BodyPipeline bodies(repo, &out.verified_messages, &out.new_messages, nullptr);
    json accounts = json::array();
    json trees = json::object();
    std::unordered_set<Digest, DigestHash> seen;
    seen.reserve(static_cast<size_t>(items));
    for (const auto& [ag, a] : state.accounts) {
      json folder_ids = json::array();
      for (const auto& [fg, f] : a.folders) {
        for (const auto& [uid, it] : f.items) {
          progress.advance(it.size);
          if (!seen.insert(it.blob).second || shipped.count(it.blob)) continue;
          bool present = repo.has_object(it.blob);
          // Bodies already backed up are re-read when asked, in this run's scrub slice, or
          // when their blob file changed since the previous base backup began.
          bool reread = verify_all || static_cast<int>(it.blob[0] % rotation) == slot ||
                        (it.size > kInlineBodyLimit &&
                         snap.message_file_mtime(it.blob) >= previous.started_ms - 1000);
          if (present && !reread) continue;
          BodyCheck c{&it,
                      "message " + a.address + "/" + f.name + " UID " + std::to_string(uid),
                      present,
                      {}};
          auto stored = snap.stored_bytes(it.blob);
          if (!stored.is_ok())
            return Status(stored.status().code(), c.where + ": " + stored.status().message());
          c.stored = std::move(*stored);
          MK_RETURN_IF_ERROR(bodies.add(std::move(c)));
        }
        // An unchanged folder (same version) has the tree the previous backup wrote.
        std::string version = folder_version(f);
        auto known = previous.trees.find(version);
        if (known != previous.trees.end() && repo.has_object(must_digest(known->second))) {
          folder_ids.push_back(known->second);
          trees[version] = known->second;
          continue;
        }
        std::string tree = folder_tree(f).dump();
        Digest id = sha256(tree);
        MK_RETURN_IF_ERROR(repo.add_object(ObjectType::kTree, id, tree).status());
        folder_ids.push_back(to_hex(id));
        trees[version] = to_hex(id);
      }
      std::string version =
          "a" + to_hex(sha256(json({a.guid.hex(), a.address, a.created_ms, a.last_uidvalidity,
                                    a.deliveries.size(), folder_ids})
                                  .dump()));
      std::string tree_id;
      if (auto known = previous.trees.find(version);
          known != previous.trees.end() && repo.has_object(must_digest(known->second))) {
        tree_id = known->second;
      } else {
        json deliveries = json::array();
        for (const auto& [ingress, d] : a.deliveries)
          deliveries.push_back({ingress.hex(), d.item.hex(), d.time_ms});
        json account = {{"type", "account"},
                        {"guid", a.guid.hex()},
                        {"address", a.address},
                        {"created_ms", a.created_ms},
                        {"last_uidvalidity", a.last_uidvalidity},
                        {"deliveries", deliveries},
                        {"folders", folder_ids}};
        std::string tree = account.dump();
        Digest id = sha256(tree);
        MK_RETURN_IF_ERROR(repo.add_object(ObjectType::kTree, id, tree).status());
        tree_id = to_hex(id);
      }
      trees[version] = tree_id;
      accounts.push_back({{"guid", a.guid.hex()},
                          {"address", a.address},
                          {"tree", tree_id},
                          {"items", a.items()},
                          {"bytes", a.bytes()}});
      ++out.accounts;
      out.items += a.items();
      out.bytes += a.bytes();
    }
    MK_RETURN_IF_ERROR(bodies.finish());
    manifest = {{"version", 1},
                {"database", db},
                {"database_guid", snap.database_guid()},
                {"seq", state.seq},
                {"head", to_hex(state.head)},
                {"time_ms", state.time_ms},
                {"started_ms", started},
                {"host", hostname()},
                {"accounts", accounts},
                {"trees", trees},
                {"items", out.items},
                {"bytes", out.bytes},
                {"new_messages", out.new_messages}};
    return Status::ok();
  });
  progress.finish();
  if (!s.is_ok()) {
    // Objects already written stay (the next run reuses them); no snapshot names them.
    (void)repo.flush();
    return s;
  }
  MK_RETURN_IF_ERROR(repo.flush());
  out.uploaded_bytes = repo.bytes_uploaded() - uploaded_before;
  manifest["finished_ms"] = now_ms();
  manifest["uploaded_bytes"] = out.uploaded_bytes;
  MK_ASSIGN_OR_RETURN(out.snapshot_id, repo.write_snapshot(manifest.dump()));
  out.duration_ms = now_ms() - started;
  return out;
}

Result<std::vector<SnapshotSummary>> BackupEngine::snapshots(Repository& repo) {
  MK_ASSIGN_OR_RETURN(auto ids, repo.snapshot_ids());
  std::vector<SnapshotSummary> out;
  for (const auto& id : ids) {
    auto s = summarize(repo, id);
    if (s.is_ok()) {
      out.push_back(*s);
    } else {
      SnapshotSummary bad;
      bad.id = id;
      bad.repository = repo.name();
      bad.problem = s.status().message();
      out.push_back(bad);
    }
  }
  std::sort(out.begin(), out.end(), [](const SnapshotSummary& a, const SnapshotSummary& b) {
    return std::tie(a.database, a.seq, a.id) < std::tie(b.database, b.seq, b.id);
  });
  // An incremental backup is usable while its full backup is, and while the repository holds
  // the journal from there to its position.
  std::map<std::string, const SnapshotSummary*> by_id;
  for (const auto& s : out) by_id[s.id] = &s;
  std::map<std::string, std::vector<JournalSegment>> segments;
  for (auto& s : out) {
    if (s.full.empty() || !s.problem.empty()) continue;
    auto full = by_id.find(s.full);
    if (full == by_id.end() || !full->second->full.empty())
      s.problem = "its full backup " + s.full.substr(0, 12) + " is missing";
    else if (!full->second->problem.empty())
      s.problem = "its full backup " + s.full.substr(0, 12) + " is damaged";
    if (!s.problem.empty()) {
      s.verified = false;
      continue;
    }
    auto segs = segments.find(s.database_guid);
    if (segs == segments.end()) {
      auto list = repo.segments(s.database_guid);
      if (!list.is_ok()) {
        s.verified = false;
        s.problem = "its journal cannot be listed: " + list.status().message();
        continue;
      }
      std::sort(list->begin(), list->end(),
                [](const JournalSegment& a, const JournalSegment& b) { return a.first < b.first; });
      segs = segments.emplace(s.database_guid, std::move(*list)).first;
    }
    int64_t reached = s.full_seq;  // records up to here are covered
    for (const auto& seg : segs->second)
      if (seg.first <= reached + 1 && seg.last > reached) reached = seg.last;
    if (reached < s.seq) {
      s.verified = false;
      s.problem = "the journal archive lacks records " + std::to_string(reached + 1) + ".." +
                  std::to_string(s.seq) + " it builds on";
    }
  }
  return out;
}

// ---------------------------------------------------------------- restore

namespace {

struct RestorePlan {
  std::string guid;
  std::optional<SnapshotSummary> base;
  std::vector<JournalRecord> records;  // contiguous, ending at the target
  int64_t target = 0;
  int64_t target_time = 0;
};

// Every archived record of the database, from whichever tier has a good copy.
// Segments that end at or before `min_seq` are not read.
Result<std::map<int64_t, JournalRecord>> gather_journal(TierReader& tiers, const std::string& guid,
                                                        int64_t min_seq) {
  std::map<int64_t, JournalRecord> out;
  for (Repository* r : tiers.tiers()) {
    auto segs = r->segments(guid);
    if (!segs.is_ok()) {
      MK_LOG_WARN("repository {}: journal list failed: {}", r->name(), segs.status().message());
      continue;
    }
    for (const auto& seg : *segs) {
      if (seg.last <= min_seq) continue;
      bool needed = false;
      for (int64_t s = seg.first; s <= seg.last && !needed; ++s) needed = !out.count(s);
      if (!needed) continue;
      auto recs = r->read_segment(seg);
      if (!recs.is_ok()) {
        MK_LOG_WARN("repository {}: {}; trying the next tier", r->name(), recs.status().message());
        continue;
      }
      for (auto& rec : *recs) out.emplace(rec.seq, std::move(rec));
    }
  }
  return out;
}

}  // namespace

// With `whole_journal`, every archived record up to the target (a restored database keeps
// its journal); without, only what follows the base backup (one account into a live one).
static Result<RestorePlan> plan_restore(BackupEngine& engine, TierReader& tiers,
                                        const std::string& db, const RestoreOptions& options,
                                        bool whole_journal) {
  RestorePlan plan;
  std::vector<SnapshotSummary> all;
  std::set<std::string> seen;
  for (Repository* r : tiers.tiers()) {
    auto snaps = engine.snapshots(*r);
    if (!snaps.is_ok()) continue;
    for (auto& s : *snaps)
      if (s.database == db && s.problem.empty() && seen.insert(s.id).second) all.push_back(s);
  }
  if (all.empty()) return not_found("no base backup of database " + db + " in any repository");
  std::sort(all.begin(), all.end(),
            [](const SnapshotSummary& a, const SnapshotSummary& b) { return a.seq < b.seq; });
  // The database identity: that of the newest backup at or before the requested moment.
  plan.guid = all.back().database_guid;
  if (options.time_ms)
    for (const auto& s : all)
      if (s.time_ms <= *options.time_ms) plan.guid = s.database_guid;
  // The newest full base backup that can start this restore bounds what must be read. An
  // incremental one is a restore point, restored from its full one and the journal after.
  int64_t min_seq = 0;
  if (!whole_journal)
    for (const auto& s : all)
      if (s.database_guid == plan.guid && s.full.empty() &&
          (options.seq ? s.seq <= *options.seq : !options.time_ms || s.time_ms <= *options.time_ms))
        min_seq = std::max(min_seq, s.seq);
  MK_ASSIGN_OR_RETURN(auto journal, gather_journal(tiers, plan.guid, min_seq));
  // Contiguous chain ending at the newest record we can reach from the start.
  std::vector<JournalRecord> chain;
  for (auto& [seq, rec] : journal) {
    if (!chain.empty() && (seq != chain.back().seq + 1 || rec.prev_hash != chain.back().hash))
      break;
    chain.push_back(rec);
  }
  int64_t newest_snapshot = 0;
  for (const auto& s : all)
    if (s.database_guid == plan.guid) newest_snapshot = std::max(newest_snapshot, s.seq);
  int64_t last = chain.empty() ? 0 : chain.back().seq;
  plan.target = std::max(last, newest_snapshot);
  if (options.seq) {
    if (*options.seq > plan.target)
      return not_found("journal position " + std::to_string(*options.seq) +
                       " is beyond what is archived (" + std::to_string(plan.target) + ")");
    plan.target = *options.seq;
  } else if (options.time_ms) {
    plan.target = 0;
    for (const auto& r : chain)
      if (r.time_ms <= *options.time_ms) plan.target = r.seq;
    for (const auto& s : all)
      if (s.database_guid == plan.guid && s.time_ms <= *options.time_ms && s.seq > plan.target)
        plan.target = s.seq;
    if (plan.target == 0)
      return not_found("nothing of database " + db + " is archived at or before " +
                       format_time_ms(*options.time_ms));
  }
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (it->database_guid == plan.guid && it->full.empty() && it->seq <= plan.target) {
      plan.base = *it;
      break;
    }
  int64_t from = plan.base ? plan.base->seq : 0;
  if (from < plan.target) {
    if (chain.empty() || chain.front().seq > from + 1 || last < plan.target)
      return not_found("the journal archive lacks records " + std::to_string(from + 1) + ".." +
                       std::to_string(plan.target) + " of database " + db);
  }
  if (!chain.empty() && chain.front().seq == 1) {
    for (auto& r : chain)
      if (r.seq <= plan.target) plan.records.push_back(std::move(r));
  } else {
    // From the base's own record when the archive holds it: a restored database's journal
    // continues from there (its hash is checked against the base).
    for (auto& r : chain)
      if (r.seq >= from && r.seq <= plan.target) plan.records.push_back(std::move(r));
  }
  if (!plan.records.empty()) plan.target_time = plan.records.back().time_ms;
  if (plan.base && plan.base->seq == plan.target) plan.target_time = plan.base->time_ms;
  return plan;
}

// The state of the base snapshot (one account, or all), read from the tiers.
static Result<DatabaseState> load_base(TierReader& tiers, const SnapshotSummary& base,
                                       const std::optional<Guid>& only_account,
                                       const std::optional<std::string>& only_address) {
  std::string text;
  Status last = not_found("snapshot " + base.id + " is in no repository");
  for (Repository* r : tiers.tiers()) {
    auto t = r->read_snapshot(base.id);
    if (t.is_ok()) {
      text = *t;
      break;
    }
    last = t.status();
  }
  if (text.empty()) return last;
  json j = json::parse(text, nullptr, false);
  DatabaseState state;
  try {
    state.seq = j.at("seq").get<int64_t>();
    state.head = must_digest(j.at("head").get<std::string>());
    state.time_ms = j.at("time_ms").get<int64_t>();
    for (const auto& a : j.at("accounts")) {
      Guid guid = Guid::from_hex(a.at("guid").get<std::string>()).value_or(Guid{});
      std::string address = a.at("address").get<std::string>();
      if (only_account && guid != *only_account && (!only_address || address != *only_address))
        continue;
      MK_ASSIGN_OR_RETURN(json tree, tiers.read_tree(must_digest(a.at("tree").get<std::string>())));
      AccountState acc;
      acc.guid = guid;
      acc.address = tree.at("address").get<std::string>();
      acc.created_ms = tree.at("created_ms").get<int64_t>();
      acc.last_uidvalidity = tree.at("last_uidvalidity").get<uint32_t>();
      for (const auto& d : tree.at("deliveries"))
        acc.deliveries[Guid::from_hex(d.at(0).get<std::string>()).value_or(Guid{})] = DeliveryState{
            Guid::from_hex(d.at(1).get<std::string>()).value_or(Guid{}), d.at(2).get<int64_t>()};
      for (const auto& fid : tree.at("folders")) {
        MK_ASSIGN_OR_RETURN(json ft, tiers.read_tree(must_digest(fid.get<std::string>())));
        MK_ASSIGN_OR_RETURN(FolderState f, folder_from_tree(ft));
        acc.folders.emplace(f.guid, std::move(f));
      }
      state.accounts.emplace(guid, std::move(acc));
    }
  } catch (const json::exception& e) {
    return corrupt("snapshot " + base.id.substr(0, 12) + " is malformed: " + e.what());
  }
  return state;
}

Result<TierReader> BackupEngine::open_tiers() {
  std::vector<std::string> problems;
  TierReader tiers(open_all(&problems));
  for (const auto& p : problems) MK_LOG_WARN("repository {}", p);
  if (tiers.tiers().empty())
    return not_found("no repository can be opened" +
                     (problems.empty() ? "" : ": " + problems.front()));
  return tiers;
}

Result<RestoreReport> BackupEngine::restore_database(const std::string& db, const std::string& into,
                                                     const RestoreOptions& options,
                                                     Progress& progress) {
  MK_ASSIGN_OR_RETURN(TierReader tiers, open_tiers());
  MK_ASSIGN_OR_RETURN(RestorePlan plan, plan_restore(*this, tiers, db, options, true));
  DatabaseState state;
  if (plan.base) {
    MK_ASSIGN_OR_RETURN(state, load_base(tiers, *plan.base, std::nullopt, std::nullopt));
  }
  RestoreReport report;
  report.base_snapshot = plan.base ? plan.base->id : "";
  for (const auto& r : plan.records) {
    if (r.seq <= state.seq) {
      if (r.seq == state.seq && r.hash != state.head)
        return corrupt("base backup " + report.base_snapshot.substr(0, 12) +
                       " does not match the archived journal at record " + std::to_string(r.seq));
      continue;
    }
    MK_RETURN_IF_ERROR(replay_record(state, r));
    ++report.replayed_records;
  }
  report.seq = state.seq;
  report.time_ms = state.time_ms;
  // The new database's journal must end where its state is, or its next change would not
  // continue the chain.
  if (state.seq > 0 && (plan.records.empty() || plan.records.back().seq != state.seq))
    return not_found("the journal archive of database " + db + " does not reach record " +
                     std::to_string(state.seq) + " (the base backup's position)");
  for (const auto& [g, a] : state.accounts)
    for (const auto& [fg, f] : a.folders) {
      RestoreReport::FolderLine line{a.address, f.name, f.name, f.items.size(), 0, 0};
      for (const auto& [uid, it] : f.items) line.bytes += it.size;
      report.items += line.items;
      report.bytes += line.bytes;
      report.folders.push_back(line);
    }
  std::sort(report.folders.begin(), report.folders.end(), [](const auto& a, const auto& b) {
    return std::tie(a.account, a.folder) < std::tie(b.account, b.folder);
  });
  if (options.dry_run) return report;
  progress.start("restore " + into, report.bytes);
  uint64_t shown = 0;
  MessageSource source = [&](const Digest& d) { return tiers.read(d); };
  Status built = store_.build_database(
      into, state, plan.records, db + "@" + std::to_string(state.seq), source,
      [&](uint64_t done, uint64_t total) {
        // Items written, shown as the same share of the bytes.
        uint64_t bytes =
            total ? static_cast<uint64_t>(static_cast<double>(report.bytes) * done / total) : 0;
        if (bytes > shown) progress.advance(bytes - shown, 0);
        shown = std::max(shown, bytes);
      });
  progress.finish();
  MK_RETURN_IF_ERROR(built);
  // Item by item: the new database must read back as exactly the state restored.
  DatabaseState written;
  MK_RETURN_IF_ERROR(store_.read_snapshot(into, [&](DatabaseSnapshot& snap) -> Status {
    MK_ASSIGN_OR_RETURN(written, snap.state());
    return Status::ok();
  }));
  std::string diff = first_difference(state, written);
  if (!diff.empty())
    return corrupt("restored database " + into + " differs from the backup: " + diff);
  return report;
}

Status BackupEngine::restore_collection(const Account& account, const FolderState& f,
                                        TierReader& tiers, const RestoreOptions& options,
                                        std::set<Guid>& present, Progress& progress,
                                        RestoreReport::FolderLine& line, uint64_t& written) {
  const bool calendar = f.kind == "calendar";
  CollectionKind kind = calendar ? CollectionKind::kCalendar : CollectionKind::kContacts;
  std::string prefix = std::string(calendar ? kCalendarsRoot : kAddressBooksRoot) + "/";
  if (f.name.compare(0, prefix.size(), prefix) != 0)
    return corrupt("collection " + f.name + " of kind " + f.kind + " is outside " + prefix);
  std::string segment = f.name.substr(prefix.size());
  std::optional<DavCollection> target;
  if (!options.dry_run) {
    auto existing = store_.collection(account, kind, segment);
    if (existing.is_ok()) {
      target = std::move(*existing);
    } else if (existing.status().code() == ErrorCode::kNotFound) {
      CollectionProps props = f.props;
      std::vector<std::string> components;
      auto set = props.find(std::string(kComponentSetProp));
      if (set != props.end()) {
        for (size_t pos = 0; pos <= set->second.size();) {
          size_t comma = std::min(set->second.find(',', pos), set->second.size());
          if (comma > pos) components.push_back(set->second.substr(pos, comma - pos));
          pos = comma + 1;
        }
        props.erase(set);
      }
      MK_ASSIGN_OR_RETURN(target,
                          store_.create_collection(account, kind, segment, props, components));
    } else {
      return existing.status();
    }
  }
  for (const auto& [uid, it] : f.items) {
    if (present.count(it.guid)) {
      ++line.skipped;
      continue;
    }
    if (options.dry_run) {
      ++line.items;
      line.bytes += it.size;
      continue;
    }
    MK_ASSIGN_OR_RETURN(std::string raw, tiers.read(it.blob));
    MK_ASSIGN_OR_RETURN(SavedItem saved, store_.restore_resource(account, *target, it, raw));
    progress.advance(it.size);
    if (saved.duplicate) {
      ++line.skipped;
      continue;
    }
    present.insert(it.guid);
    ++written;
    ++line.items;
    line.bytes += it.size;
  }
  return Status::ok();
}

Result<RestoreReport> BackupEngine::restore_account(const std::string& db, const Account& account,
                                                    const std::string& folder,
                                                    const std::string& into_folder,
                                                    const RestoreOptions& options,
                                                    Progress& progress) {
  MK_ASSIGN_OR_RETURN(TierReader tiers, open_tiers());
  MK_ASSIGN_OR_RETURN(RestorePlan plan, plan_restore(*this, tiers, db, options, false));
  DatabaseState state;
  if (plan.base) {
    MK_ASSIGN_OR_RETURN(state, load_base(tiers, *plan.base, account.guid, account.address));
  }
  // The account as backed up: same GUID, or (a re-created user) the same address.
  Guid source_guid = account.guid;
  for (const auto& [g, a] : state.accounts)
    if (g != account.guid && a.address == account.address) source_guid = g;
  RestoreReport report;
  report.base_snapshot = plan.base ? plan.base->id : "";
  for (const auto& r : plan.records) {
    if (r.seq <= state.seq) continue;
    MK_RETURN_IF_ERROR(replay_record(state, r, source_guid));
    ++report.replayed_records;
  }
  report.seq = state.seq;
  report.time_ms = state.time_ms;
  auto acc = state.accounts.find(source_guid);
  if (acc == state.accounts.end())
    return not_found("account " + account.address + " is not in the backup of " + db + " at " +
                     std::to_string(state.seq));
  MK_ASSIGN_OR_RETURN(std::set<Guid> present, store_.item_guids(account));
  std::vector<const FolderState*> folders;
  for (const auto& [fg, f] : acc->second.folders)
    if (folder.empty() || f.name == folder || f.name.rfind(folder + "/", 0) == 0)
      folders.push_back(&f);
  if (!folder.empty() && folders.empty())
    return not_found("folder " + folder + " of " + account.address + " is not in the backup");
  std::sort(folders.begin(), folders.end(),
            [](const FolderState* a, const FolderState* b) { return a->name < b->name; });
  uint64_t total = 0;
  std::map<Digest, uint64_t> wanted;  // digest -> size
  for (const FolderState* f : folders)
    for (const auto& [uid, it] : f->items)
      if (!present.count(it.guid)) {
        total += it.size;
        if (f->kind == "mail") wanted[it.blob] = it.size;
      }
  // Bodies the database still holds (the messages were expunged, their bodies not collected
  // yet) are referred to, as a COPY would, instead of read from a repository.
  MK_ASSIGN_OR_RETURN(std::set<Digest> held, store_.held_messages(account, wanted));
  // Every other body must be in some tier before anything is written: a restore that cannot
  // finish does not start.
  for (const FolderState* f : folders)
    for (const auto& [uid, it] : f->items) {
      if (present.count(it.guid) || held.count(it.blob)) continue;
      bool somewhere = false;
      for (Repository* r : tiers.tiers()) somewhere = somewhere || r->has_object(it.blob);
      if (!somewhere)
        return not_found("message " + account.address + "/" + f->name + " UID " +
                         std::to_string(uid) + " (" + to_hex(it.blob) +
                         ") is in no repository; nothing was restored");
    }
  if (!options.dry_run) progress.start("restore " + account.address, total);
  uint64_t written = 0;
  // A body that turns out damaged in every tier stops the restore; what was written stays
  // (and is skipped by the next run, after `backup repair`).
  auto stopped = [&](const Status& s) {
    return Status(s.code(), s.message() + " (" + std::to_string(written) +
                                " items were restored before this; run the restore again" +
                                " after repairing the repository)");
  };
  for (const FolderState* f : folders) {
    if (f->kind != "mail") {
      // Calendars and address books go back into their own collection (--into-folder is
      // for mail), de-duplicated by GUID and by iCalendar/vCard UID.
      RestoreReport::FolderLine line{account.address, f->name, f->name, 0, 0, 0};
      MK_RETURN_IF_ERROR(
          restore_collection(account, *f, tiers, options, present, progress, line, written));
      report.items += line.items;
      report.bytes += line.bytes;
      report.skipped += line.skipped;
      report.folders.push_back(line);
      continue;
    }
    std::string target = into_folder.empty() ? f->name : into_folder + "/" + f->name;
    RestoreReport::FolderLine line{account.address, f->name, target, 0, 0, 0};
    if (!options.dry_run) {
      auto existing = store_.folder(account, target);
      if (!existing.is_ok()) {
        if (existing.status().code() != ErrorCode::kNotFound) return existing.status();
        auto created = store_.create_folder(account, target);
        if (!created.is_ok() && created.status().code() != ErrorCode::kExists)
          return created.status();
      }
    }
    // Bodies are read (and verified) first, then written in batches, one transaction each.
    std::vector<const ItemState*> batch;
    std::vector<std::string> raws;  // "" for a body the database holds
    uint64_t batch_bytes = 0;
    auto write_batch = [&]() -> Status {
      if (batch.empty()) return Status::ok();
      std::vector<MailStore::RestoredItem> items;
      for (size_t i = 0; i < batch.size(); ++i)
        items.push_back({batch[i], raws[i], held.count(batch[i]->blob) > 0});
      auto saved = store_.restore_items(account, target, items);
      if (!saved.is_ok()) return stopped(saved.status());
      for (size_t i = 0; i < batch.size(); ++i) {
        progress.advance(batch[i]->size);
        if ((*saved)[i].duplicate) {
          ++line.skipped;
          continue;
        }
        present.insert(batch[i]->guid);
        ++written;
        ++line.items;
        line.bytes += batch[i]->size;
      }
      batch.clear();
      raws.clear();
      batch_bytes = 0;
      return Status::ok();
    };
    for (const auto& [uid, it] : f->items) {
      if (present.count(it.guid)) {
        ++line.skipped;
        continue;
      }
      if (options.dry_run) {
        ++line.items;
        line.bytes += it.size;
        continue;
      }
      if (held.count(it.blob)) {
        batch.push_back(&it);
        raws.emplace_back();
      } else {
        auto raw = tiers.read(it.blob);
        if (!raw.is_ok()) return stopped(raw.status());
        batch_bytes += raw->size();
        batch.push_back(&it);
        raws.push_back(std::move(*raw));
      }
      if (batch.size() >= 2000 || batch_bytes >= (32u << 20)) MK_RETURN_IF_ERROR(write_batch());
    }
    MK_RETURN_IF_ERROR(write_batch());
    report.items += line.items;
    report.bytes += line.bytes;
    report.skipped += line.skipped;
    report.folders.push_back(line);
  }
  if (!options.dry_run) progress.finish();
  return report;
}

}  // namespace mailark
