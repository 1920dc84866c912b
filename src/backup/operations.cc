// Repository maintenance (verify, copy between tiers, repair, prune) and the local record of
// backup outcomes behind `mailark health`.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>

#include "backup/backup.h"
#include "backup/trees.h"
#include "base/log.h"
#include "base/time.h"
#include "os/file.h"

namespace mailark {
namespace {

using json = nlohmann::json;

// Order in which files are copied: data before the files that reference it.
// Prune merges consecutive journal segments up to this many records.
constexpr int64_t kMergedRecords = 50'000;

int file_rank(const std::string& name) {
  if (name.rfind("packs/", 0) == 0) return 0;
  if (name.rfind("index/", 0) == 0) return 1;
  if (name.rfind("journal/", 0) == 0) return 2;
  if (name.rfind("snapshots/", 0) == 0) return 3;
  return 4;
}

// A file whose name is the SHA-256 of its bytes (packs, index files, snapshots).
std::optional<Digest> content_name(const std::string& name) {
  if (file_rank(name) > 1 && name.rfind("snapshots/", 0) != 0) return std::nullopt;
  return digest_from_hex(name.substr(name.rfind('/') + 1));
}

// Serializes read-modify-write of the state file between processes (server, CLI).
class StateLock {
 public:
  explicit StateLock(const std::string& path) {
    fd_ = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~StateLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
  }

 private:
  int fd_ = -1;
};

json load_state(FileSystem& fs, const std::string& path) {
  if (path.empty() || !fs.exists(path)) return json::object();
  auto text = fs.read_file(path);
  if (!text.is_ok()) return json::object();
  json j = json::parse(*text, nullptr, false);
  return j.is_object() ? j : json::object();
}

std::string hostname_or_empty() {
  char buf[256] = {0};
  return gethostname(buf, sizeof buf - 1) == 0 ? buf : "";
}

}  // namespace

// ---------------------------------------------------------------- verify

Result<VerifyReport> BackupEngine::verify(Repository& repo, bool read_data, Progress& progress) {
  VerifyReport report;
  auto& problems = report.problems;
  MK_RETURN_IF_ERROR(repo.load_index(/*read_only=*/true, &problems));
  report.objects = repo.object_count();
  // Every pack the index names is there, with its size.
  MK_ASSIGN_OR_RETURN(auto files, repo.backend().list("packs/"));
  std::map<Digest, uint64_t> present;
  for (const auto& f : files)
    if (auto id = digest_from_hex(f.name.substr(f.name.rfind('/') + 1))) present[*id] = f.size;
  for (const auto& [pack, size] : repo.packs()) {
    ++report.packs;
    auto it = present.find(pack);
    if (it == present.end())
      problems.push_back({"pack " + to_hex(pack), "missing"});
    else if (it->second != size)
      problems.push_back(
          {"pack " + to_hex(pack),
           "has " + std::to_string(it->second) + " bytes, the index says " + std::to_string(size)});
  }
  TierReader reader({&repo});
  // Every snapshot decrypts, and every object it needs is in the index.
  MK_ASSIGN_OR_RETURN(auto snaps, snapshots(repo));
  for (const auto& s : snaps) {
    ++report.snapshots;
    std::string where =
        "snapshot " + s.id.substr(0, 12) + " (" + s.database + " at " + std::to_string(s.seq) + ")";
    if (!s.problem.empty()) {
      problems.push_back({where, s.problem});
      continue;
    }
    auto text = repo.read_snapshot(s.id);
    json j = text.is_ok() ? json::parse(*text, nullptr, false) : json();
    if (!j.is_object()) continue;
    for (const auto& a : j["accounts"]) {
      std::string address = a.value("address", "?");
      auto tree = reader.read_tree(must_digest(a.value("tree", "")));
      if (!tree.is_ok()) {
        problems.push_back({where, "account " + address + ": " + tree.status().message()});
        continue;
      }
      for (const auto& fid : (*tree)["folders"]) {
        auto ft = reader.read_tree(must_digest(fid.get<std::string>()));
        if (!ft.is_ok()) {
          problems.push_back({where, "folder tree of " + address + ": " + ft.status().message()});
          continue;
        }
        auto folder = folder_from_tree(*ft);
        if (!folder.is_ok()) {
          problems.push_back({where, folder.status().message()});
          continue;
        }
        for (const auto& [uid, it] : folder->items)
          if (!repo.has_object(it.blob))
            problems.push_back({where, "message " + address + "/" + folder->name + " UID " +
                                           std::to_string(uid) + " (" + to_hex(it.blob) +
                                           ") is not in the repository"});
      }
    }
  }
  // Journal segments decrypt, chain, and their bodies are there.
  MK_ASSIGN_OR_RETURN(auto guids, repo.archived_databases());
  for (const auto& guid : guids) {
    MK_ASSIGN_OR_RETURN(auto segs, repo.segments(guid));
    for (const auto& seg : segs) {
      ++report.segments;
      auto recs = repo.read_segment(seg);
      if (!recs.is_ok()) {
        problems.push_back({seg.file, recs.status().message()});
        continue;
      }
      for (const auto& r : *recs) {
        json p = json::parse(r.payload, nullptr, false);
        if (!p.is_object() || !p.contains("blob") || !p["blob"].is_string()) continue;
        if (!repo.has_object(must_digest(p["blob"].get<std::string>())))
          problems.push_back({seg.file, "record " + std::to_string(r.seq) + " needs message " +
                                            p["blob"].get<std::string>() +
                                            ", which is not in the repository"});
      }
    }
  }
  if (read_data) {
    uint64_t total = 0;
    for (const auto& [pack, size] : repo.packs()) total += size;
    progress.start("verify " + repo.name(), total);
    for (const auto& [pack, size] : repo.packs()) {
      if (!present.count(pack)) continue;
      MK_RETURN_IF_ERROR(repo.verify_pack(pack, &problems));
      report.bytes_read += size;
      progress.advance(size);
    }
    progress.finish();
  }
  return report;
}

// ---------------------------------------------------------------- copy / repair

Result<BackupEngine::CopyReport> BackupEngine::copy(Repository& from, Repository& to, bool repair,
                                                    Progress& progress) {
  if (from.key_id() != to.key_id())
    return invalid("repositories " + from.name() + " and " + to.name() +
                   " use different keys; a copy needs the same key");
  CopyReport report;
  std::vector<RepositoryFile> wanted;
  std::map<std::string, uint64_t> have;
  for (const char* prefix : {"packs/", "index/", "journal/", "snapshots/"}) {
    MK_ASSIGN_OR_RETURN(auto src, from.backend().list(prefix));
    wanted.insert(wanted.end(), src.begin(), src.end());
    MK_ASSIGN_OR_RETURN(auto dst, to.backend().list(prefix));
    for (const auto& f : dst) have[f.name] = f.size;
  }
  std::stable_sort(wanted.begin(), wanted.end(),
                   [](const RepositoryFile& a, const RepositoryFile& b) {
                     return file_rank(a.name) < file_rank(b.name);
                   });
  // Which of the target's files need (re)writing.
  std::vector<const RepositoryFile*> todo;
  uint64_t total = 0;
  for (const auto& f : wanted) {
    auto it = have.find(f.name);
    bool need = it == have.end() || it->second != f.size;
    if (!need && repair) {
      // Present with the right size: damaged only if its content no longer matches.
      auto bytes = to.backend().get(f.name);
      if (!bytes.is_ok()) {
        need = true;
      } else if (auto d = content_name(f.name)) {
        need = sha256(*bytes) != *d;
      } else if (f.name.rfind("journal/", 0) == 0) {
        auto segs = to.segments(f.name.substr(8, f.name.find('/', 8) - 8));
        if (segs.is_ok())
          for (const auto& s : *segs)
            if (s.file == f.name) need = !to.read_segment(s).is_ok();
      }
    }
    if (need) {
      todo.push_back(&f);
      total += f.size;
    } else {
      ++report.skipped;
    }
  }
  progress.start("copy " + from.name() + " -> " + to.name(), total);
  for (const RepositoryFile* f : todo) {
    auto bytes = from.backend().get(f->name);
    if (!bytes.is_ok()) {
      report.problems.push_back({from.name() + ":" + f->name, bytes.status().message()});
      continue;
    }
    // Never spread damage: the source copy must check out before it is written.
    if (auto d = content_name(f->name); d && sha256(*bytes) != *d) {
      report.problems.push_back(
          {from.name() + ":" + f->name, "damaged (content does not match its name); not copied"});
      continue;
    }
    Status put = to.backend().put(f->name, *bytes);
    if (!put.is_ok()) {
      report.problems.push_back({to.name() + ":" + f->name, put.message()});
      continue;
    }
    auto size = to.backend().size(f->name);
    if (!size.is_ok() || *size != bytes->size()) {
      report.problems.push_back({to.name() + ":" + f->name, "copy did not verify (size)"});
      continue;
    }
    ++report.files;
    report.bytes += bytes->size();
    progress.advance(bytes->size());
  }
  progress.finish();
  MK_RETURN_IF_ERROR(to.load_index());
  return report;
}

// ---------------------------------------------------------------- prune

Result<BackupEngine::PruneReport> BackupEngine::prune(Repository& repo, bool dry_run) {
  PruneReport report;
  MK_ASSIGN_OR_RETURN(auto snaps, snapshots(repo));
  const RetentionPolicy& p = settings_.retention;
  std::map<std::string, std::vector<const SnapshotSummary*>> by_db;
  for (const auto& s : snaps)
    if (s.problem.empty()) by_db[s.database_guid].push_back(&s);
  std::set<std::string> keep;
  std::map<std::string, int64_t> oldest_kept_seq;
  for (auto& [guid, list] : by_db) {
    std::sort(list.begin(), list.end(), [](const SnapshotSummary* a, const SnapshotSummary* b) {
      return a->time_ms > b->time_ms;
    });
    auto bucket_keep = [&](int count, const char* fmt) {
      std::set<std::string> buckets;
      for (const auto* s : list) {
        if (static_cast<int>(buckets.size()) >= count) break;
        time_t t = s->time_ms / 1000;
        tm utc{};
        gmtime_r(&t, &utc);
        char buf[32];
        strftime(buf, sizeof buf, fmt, &utc);
        if (buckets.insert(buf).second) keep.insert(s->id);
      }
    };
    for (int i = 0; i < p.keep_last && i < static_cast<int>(list.size()); ++i)
      keep.insert(list[i]->id);
    bucket_keep(p.keep_hourly, "%Y-%m-%d %H");
    bucket_keep(p.keep_daily, "%Y-%m-%d");
    bucket_keep(p.keep_weekly, "%G-%V");
    bucket_keep(p.keep_monthly, "%Y-%m");
    if (!list.empty()) keep.insert(list.front()->id);  // never the newest
    // A kept incremental backup keeps the full one it builds on.
    for (const auto* s : list)
      if (keep.count(s->id) && !s->full.empty()) keep.insert(s->full);
    int64_t oldest = INT64_MAX;
    for (const auto* s : list)
      if (keep.count(s->id)) oldest = std::min(oldest, s->seq);
    oldest_kept_seq[guid] = oldest;
  }
  for (const auto& s : snaps) {
    if (!s.problem.empty()) continue;  // damaged ones are left for repair to fix
    (keep.count(s.id) ? report.kept : report.removed).push_back(s.id);
  }
  if (dry_run) return report;
  // Writers do not start while the marker says "running", and reload their index when its
  // time changes (docs/formats/backup-repository.md).
  auto marker = [&](const char* state) {
    json m = {{"state", state},
              {"host", hostname_or_empty()},
              {"pid", static_cast<int64_t>(getpid())},
              {"time_ms", now_ms()}};
    return repo.backend().put(kPruneMarker, m.dump());
  };
  MK_RETURN_IF_ERROR(marker("running"));
  Status s = prune_locked(repo, report, oldest_kept_seq);
  Status done = marker("done");
  MK_RETURN_IF_ERROR(s);
  MK_RETURN_IF_ERROR(done);
  return report;
}

Status BackupEngine::prune_locked(Repository& repo, PruneReport& report,
                                  const std::map<std::string, int64_t>& oldest_kept_seq) {
  for (const auto& id : report.removed) MK_RETURN_IF_ERROR(repo.remove_snapshot(id));
  // Journal entirely before the oldest kept base backup is no restore point's any more. The
  // segment holding that backup's own record stays: a restored database's journal continues
  // from it.
  MK_ASSIGN_OR_RETURN(auto guids, repo.archived_databases());
  for (const auto& guid : guids) {
    auto oldest = oldest_kept_seq.find(guid);
    if (oldest == oldest_kept_seq.end()) continue;
    MK_ASSIGN_OR_RETURN(auto segs, repo.segments(guid));
    for (const auto& seg : segs)
      if (seg.last < oldest->second) MK_RETURN_IF_ERROR(repo.backend().remove(seg.file));
  }
  // Compaction: the archive writes a small segment (and pack and index file) every second
  // while mail flows; consecutive segments are merged into ones of up to kMergedRecords.
  MK_ASSIGN_OR_RETURN(auto live_guids, repo.archived_databases());
  for (const auto& guid : live_guids) {
    MK_ASSIGN_OR_RETURN(auto segs, repo.segments(guid));
    std::sort(segs.begin(), segs.end(),
              [](const JournalSegment& a, const JournalSegment& b) { return a.first < b.first; });
    size_t i = 0;
    while (i < segs.size()) {
      size_t j = i + 1;
      int64_t last = segs[i].last;
      while (j < segs.size() && segs[j].first <= last + 1 &&
             segs[j].last - segs[i].first < kMergedRecords) {
        last = std::max(last, segs[j].last);
        ++j;
      }
      if (j - i > 1) {
        std::map<int64_t, JournalRecord> records;
        for (size_t k = i; k < j; ++k) {
          MK_ASSIGN_OR_RETURN(auto recs, repo.read_segment(segs[k]));
          for (auto& r : recs) records.emplace(r.seq, std::move(r));
        }
        std::vector<JournalRecord> merged;
        for (auto& [seq, r] : records) merged.push_back(std::move(r));
        MK_RETURN_IF_ERROR(repo.write_segment(guid, merged));
        for (size_t k = i; k < j; ++k) {
          if (segs[k].first == merged.front().seq && segs[k].last == merged.back().seq) continue;
          MK_RETURN_IF_ERROR(repo.backend().remove(segs[k].file));
          report.merged_segments += 1;
        }
      }
      i = j;
    }
  }
  invalidate_archive_cache(repo.name());
  // Objects still needed: everything the kept snapshots and the remaining journal reference.
  MK_RETURN_IF_ERROR(repo.load_index());
  std::set<Digest> needed;
  TierReader reader({&repo});
  MK_ASSIGN_OR_RETURN(auto kept, snapshots(repo));
  for (const auto& snap : kept) {
    MK_ASSIGN_OR_RETURN(std::string text, repo.read_snapshot(snap.id));
    json j = json::parse(text, nullptr, false);
    for (const auto& a : j["accounts"]) {
      Digest tree_id = must_digest(a.value("tree", ""));
      needed.insert(tree_id);
      MK_ASSIGN_OR_RETURN(json tree, reader.read_tree(tree_id));
      for (const auto& fid : tree["folders"]) {
        Digest folder_id = must_digest(fid.get<std::string>());
        needed.insert(folder_id);
        MK_ASSIGN_OR_RETURN(json ft, reader.read_tree(folder_id));
        MK_ASSIGN_OR_RETURN(FolderState f, folder_from_tree(ft));
        for (const auto& [uid, it] : f.items) needed.insert(it.blob);
      }
    }
  }
  MK_ASSIGN_OR_RETURN(auto remaining, repo.archived_databases());
  for (const auto& guid : remaining) {
    MK_ASSIGN_OR_RETURN(auto segs, repo.segments(guid));
    for (const auto& seg : segs) {
      MK_ASSIGN_OR_RETURN(auto recs, repo.read_segment(seg));
      for (const auto& r : recs) {
        json p = json::parse(r.payload, nullptr, false);
        if (p.is_object() && p.contains("blob") && p["blob"].is_string())
          needed.insert(must_digest(p["blob"].get<std::string>()));
      }
    }
  }
  // A pack goes when none of its objects is needed (packs are not rewritten).
  std::map<Digest, bool> pack_needed;
  for (const auto& [pack, size] : repo.packs()) pack_needed[pack] = false;
  for (const Digest& id : needed)
    if (auto loc = repo.locate(id)) pack_needed[loc->pack] = true;
  std::vector<Digest> doomed;
  for (const auto& [pack, need] : pack_needed)
    if (!need) doomed.push_back(pack);
  // Small packs (the archive's) are rewritten together into full ones: their needed objects
  // are read (verified), written again, and the small packs go.
  std::vector<Digest> small;
  uint64_t small_bytes = 0;
  for (const auto& [pack, size] : repo.packs())
    if (pack_needed[pack] && size < Repository::kPackTarget / 2) {
      small.push_back(pack);
      small_bytes += size;
    }
  if (small.size() >= 2) {
    std::set<Digest> small_set(small.begin(), small.end()), moving;
    for (const Digest& id : needed)
      if (auto loc = repo.locate(id); loc && small_set.count(loc->pack)) moving.insert(id);
    MK_RETURN_IF_ERROR(repo.rewrite_objects(moving));
    MK_RETURN_IF_ERROR(repo.flush());
    doomed.insert(doomed.end(), small.begin(), small.end());
    report.repacked_packs = small.size();
  }
  MK_ASSIGN_OR_RETURN(auto index_files, repo.backend().list("index/"));
  if (doomed.empty() && index_files.size() <= 1) return Status::ok();
  // One new index of what stays, then the old index files, then the packs: a crash at any
  // point leaves every remaining pack indexed (or indexable from its own header).
  const auto& old_index = index_files;
  MK_ASSIGN_OR_RETURN(std::string current,
                      repo.rewrite_index(std::set<Digest>(doomed.begin(), doomed.end())));
  for (const auto& f : old_index)
    if (f.name != current) MK_RETURN_IF_ERROR(repo.backend().remove(f.name));
  for (const Digest& pack : doomed) {
    MK_RETURN_IF_ERROR(repo.remove_pack(pack));
    report.removed_packs += 1;
  }
  return Status::ok();
}

}  // namespace mailark

namespace mailark {

// ---------------------------------------------------------------- local record

namespace {

void update_state(FileSystem& fs, const std::string& path, const std::function<void(json&)>& fn) {
  if (path.empty()) return;
  StateLock lock(path);
  json state = load_state(fs, path);
  try {
    fn(state);
  } catch (const json::exception& e) {
    // A hand-edited or damaged record: start it afresh rather than lose this outcome.
    MK_LOG_WARN("backup state {} was unreadable ({}); starting it again", path, e.what());
    state = json::object();
    fn(state);
  }
  Status s = publish_file(fs, path, state.dump(2) + "\n");
  if (!s.is_ok()) MK_LOG_ERROR("backup state {} not written: {}", path, s.to_string());
}

}  // namespace

void BackupEngine::record_success(const BaseBackupResult& r, const std::string& db) {
  update_state(fs_, settings_.state_path, [&](json& st) {
    st["databases"][db]["last_success"] = {{"time_ms", now_ms()},
                                           {"snapshot", r.snapshot_id},
                                           {"repository", r.repository},
                                           {"seq", r.seq},
                                           {"items", r.items},
                                           {"bytes", r.bytes},
                                           {"verified_messages", r.verified_messages},
                                           {"duration_ms", r.duration_ms}};
    json& rp = st["repositories"][r.repository]["restore_points"][db];
    rp["base_seq"] = r.seq;
    rp["base_time_ms"] = now_ms();
    // The backup archived the journal up to its position too.
    json& a = st["databases"][db]["archive"][r.repository];
    if (!a.is_object() || a.value("seq", int64_t{0}) < r.archive.last) {
      a["seq"] = r.archive.last;
      a["time_ms"] = r.archive.last_time_ms;
      a["checked_ms"] = now_ms();
      rp["journal_seq"] = r.archive.last;
      rp["journal_time_ms"] = r.archive.last_time_ms;
    }
  });
}

int64_t BackupEngine::last_success_ms(const std::string& db) {
  json st = load_state(fs_, settings_.state_path);
  if (!st.contains("databases") || !st["databases"].contains(db)) return 0;
  const json& d = st["databases"][db];
  return d.contains("last_success") ? d["last_success"].value("time_ms", int64_t{0}) : 0;
}

void BackupEngine::record_failure(const std::string& db, const std::string& repo,
                                  const std::string& reason) {
  MK_LOG_ERROR("backup of database {} to {} failed: {}", db, repo, reason);
  update_state(fs_, settings_.state_path, [&](json& st) {
    st["databases"][db]["last_failure"] = {
        {"time_ms", now_ms()}, {"repository", repo}, {"reason", reason}};
  });
}

void BackupEngine::record_archive(const std::string& db, const std::string& repo,
                                  const ArchiveRange& range, int64_t db_last_seq,
                                  int64_t db_last_time_ms) {
  // The archive runs every second: the record is rewritten when it changed, else once a minute.
  auto& last = archive_recorded_[db + "/" + repo];
  if (last.first == range.last && now_ms() - last.second < 60'000) return;
  last = {range.last, now_ms()};
  update_state(fs_, settings_.state_path, [&](json& st) {
    st["databases"][db]["archive"][repo] = {{"seq", range.last},
                                            {"time_ms", range.last_time_ms},
                                            {"db_seq", db_last_seq},
                                            {"db_time_ms", db_last_time_ms},
                                            {"checked_ms", now_ms()}};
    json& rp = st["repositories"][repo]["restore_points"][db];
    rp["journal_seq"] = range.last;
    rp["journal_time_ms"] = range.last_time_ms;
  });
}

void BackupEngine::record_verify(const std::string& repo, bool read_data,
                                 const VerifyReport& report) {
  update_state(fs_, settings_.state_path, [&](json& st) {
    json v = {{"time_ms", now_ms()},
              {"read_data", read_data},
              {"problems", report.problems.size()},
              {"snapshots", report.snapshots}};
    if (!report.problems.empty())
      v["first_problem"] = report.problems.front().where + ": " + report.problems.front().what;
    st["repositories"][repo]["verify"] = v;
  });
}

// ---------------------------------------------------------------- health

HealthReport BackupEngine::health(const std::vector<std::string>& databases, int64_t now) {
  try {
    return health_from_record(databases, now);
  } catch (const json::exception& e) {
    HealthReport out;
    out.status = 2;
    out.lines.push_back("CRITICAL backup state " + settings_.state_path +
                        " is damaged: " + e.what());
    out.json = json({{"status", "critical"}, {"error", out.lines.back()}}).dump(2);
    return out;
  }
}

HealthReport BackupEngine::health_from_record(const std::vector<std::string>& databases,
                                              int64_t now) {
  HealthReport out;
  json state = load_state(fs_, settings_.state_path);
  const HealthThresholds& t = settings_.health;
  std::vector<std::pair<int, std::string>> findings;
  auto find = [&](int level, std::string text) { findings.emplace_back(level, std::move(text)); };
  auto age = [&](int64_t ms) { return format_duration_short(now - ms); };
  json dbs = json::object();
  for (const auto& db : databases) {
    json d = {{"status", "ok"}};
    const json& rec = state["databases"].contains(db) ? state["databases"][db] : json::object();
    int level = 0;
    auto raise = [&](int l, const std::string& text) {
      level = std::max(level, l);
      find(l, "database " + db + ": " + text);
    };
    int64_t ok_ms =
        rec.contains("last_success") ? rec["last_success"].value("time_ms", int64_t{0}) : 0;
    int64_t fail_ms =
        rec.contains("last_failure") ? rec["last_failure"].value("time_ms", int64_t{0}) : 0;
    d["last_backup_ms"] = ok_ms ? json(ok_ms) : json(nullptr);
    d["last_backup_age_s"] = ok_ms ? json((now - ok_ms) / 1000) : json(nullptr);
    if (fail_ms) {
      d["last_failure"] = rec["last_failure"];
    }
    if (!ok_ms) {
      raise(2, "no base backup has ever succeeded");
    } else if (now - ok_ms > t.backup_critical_ms) {
      raise(2, "newest verified base backup is " + age(ok_ms) + " old");
    } else if (now - ok_ms > t.backup_warn_ms) {
      raise(1, "newest verified base backup is " + age(ok_ms) + " old");
    }
    if (fail_ms && fail_ms > ok_ms)
      raise(2, "last base backup failed " + age(fail_ms) +
                   " ago: " + rec["last_failure"].value("reason", std::string("?")));
    // Journal archive lag: how long the oldest record not archived anywhere has waited.
    int64_t archived = 0;
    if (rec.contains("archive"))
      for (const auto& [repo, a] : rec["archive"].items())
        archived = std::max(archived, a.value("seq", int64_t{0}));
    int64_t lag_ms = 0;
    int64_t db_seq = 0;
    Status s = store_.read_snapshot(db, [&](DatabaseSnapshot& snap) -> Status {
      db_seq = snap.seq();
      if (db_seq > archived) {
        MK_ASSIGN_OR_RETURN(auto recs, snap.journal(archived, 1));
        if (!recs.empty()) lag_ms = std::max<int64_t>(0, now - recs.front().time_ms);
      }
      return Status::ok();
    });
    d["journal_seq"] = db_seq;
    d["archived_seq"] = archived;
    d["archive_lag_s"] = lag_ms / 1000.0;
    if (!s.is_ok()) {
      raise(2, "cannot be read: " + s.message());
    } else if (lag_ms > t.archive_lag_critical_ms) {
      raise(2, "journal archive lags " + format_duration_short(lag_ms) + " (records " +
                   std::to_string(archived + 1) + ".." + std::to_string(db_seq) + " not archived)");
    } else if (lag_ms > t.archive_lag_warn_ms) {
      raise(1, "journal archive lags " + format_duration_short(lag_ms));
    }
    d["status"] = level == 0 ? "ok" : level == 1 ? "warning" : "critical";
    if (s.is_ok())
      find(0, "database " + db + ": newest base backup " +
                  (ok_ms ? age(ok_ms) + " ago" : std::string("never")) + ", journal " +
                  std::to_string(db_seq) + ", archived " + std::to_string(archived) +
                  (lag_ms ? " (lag " + format_duration_short(lag_ms) + ")" : ""));
    dbs[db] = d;
    out.status = std::max(out.status, level);
  }
  json repos = json::object();
  for (const auto& rs : settings_.repositories) {
    json r = {{"type", rs.type}};
    const json& rec =
        state["repositories"].contains(rs.name) ? state["repositories"][rs.name] : json::object();
    if (rec.contains("restore_points")) r["restore_points"] = rec["restore_points"];
    if (rec.contains("verify")) {
      r["verify"] = rec["verify"];
      if (rec["verify"].value("problems", 0) > 0) {
        find(2, "repository " + rs.name + ": last verify (" +
                    age(rec["verify"].value("time_ms", int64_t{0})) + " ago) found " +
                    std::to_string(rec["verify"].value("problems", 0)) +
                    " problems: " + rec["verify"].value("first_problem", std::string()));
        out.status = 2;
      }
    }
    if (rec.contains("restore_points")) {
      std::string points;
      for (const auto& [db, rp] : rec["restore_points"].items()) {
        int64_t newest =
            std::max(rp.value("journal_time_ms", int64_t{0}), rp.value("base_time_ms", int64_t{0}));
        points += (points.empty() ? "" : ", ") + db + " " + (newest ? format_time_s(newest) : "-");
        r["newest_restore_point_ms"][db] = newest;
      }
      find(0, "repository " + rs.name + ": newest restore points: " + points);
    } else {
      find(0, "repository " + rs.name + ": no restore point recorded yet");
    }
    repos[rs.name] = r;
  }
  std::stable_sort(findings.begin(), findings.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (const auto& [level, text] : findings)
    out.lines.push_back(std::string(level == 2   ? "CRITICAL "
                                    : level == 1 ? "WARNING "
                                                 : "") +
                        text);
  json j = {{"status", out.status == 0   ? "ok"
                       : out.status == 1 ? "warning"
                                         : "critical"},
            {"time_ms", now},
            {"databases", dbs},
            {"repositories", repos}};
  out.json = j.dump(2);
  return out;
}

}  // namespace mailark
