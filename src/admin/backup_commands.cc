// `mailark backup ...`, `mailark restore` and `mailark health`: argument checks and output;
// the work is in src/backup (BackupEngine).
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "admin/commands.h"
#include "backup/backup.h"
#include "base/log.h"
#include "base/time.h"
#include "mailstore/snapshot.h"
#include "os/file.h"
#include "server/services.h"

namespace mailark::admin {
namespace {

struct Opened {
  std::unique_ptr<Services> services;
  std::unique_ptr<BackupEngine> engine;
};

Result<Opened> open_backups(const std::string& config_path) {
  MK_ASSIGN_OR_RETURN(Config config, load_config(config_path));
  set_log_level(LogLevel::kError);
  if (!config.backup.enabled)
    return invalid(
        "backups are not configured: add a [backup] section and a [[repository]] "
        "(see docs/operator-guide.md)");
  Opened o;
  MK_ASSIGN_OR_RETURN(o.services, open_services(config));
  o.engine = std::make_unique<BackupEngine>(posix_fs(), *o.services->store, config.backup);
  return o;
}

bool progress_wanted(bool quiet) {
  return !quiet && isatty(STDERR_FILENO) == 1;
}

Result<std::vector<std::string>> database_names(Services& s, const std::string& only) {
  MK_ASSIGN_OR_RETURN(auto dbs, s.directory->databases());
  std::vector<std::string> out;
  for (const auto& d : dbs)
    if (only.empty() || d.name == only) out.push_back(d.name);
  if (!only.empty() && out.empty()) return not_found("no database " + only);
  return out;
}

std::string when(int64_t ms) {
  return ms ? format_time_s(ms) : "-";
}

}  // namespace

int backup_run(const std::string& config_path, const BackupRunOptions& o) {
  auto opened = open_backups(config_path);
  if (!opened.is_ok()) return fail(opened.status().message());
  BackupEngine& engine = *opened->engine;
  auto names = database_names(*opened->services, o.database);
  if (!names.is_ok()) return fail(names.status().message());
  auto repo = engine.repository(o.repository, /*create=*/true);
  if (!repo.is_ok()) {
    for (const auto& db : *names) engine.record_failure(db, o.repository, repo.status().message());
    return fail(repo.status().message());
  }
  int failed = 0;
  for (const auto& db : *names) {
    Progress progress(progress_wanted(o.quiet));
    auto r = engine.base_backup(db, **repo, BaseBackupOptions{o.verify_all, o.full}, progress);
    if (!r.is_ok()) {
      engine.record_failure(db, (*repo)->name(), r.status().message());
      std::fprintf(stderr, "mailark: backup of %s FAILED: %s\n", db.c_str(),
                   r.status().message().c_str());
      ++failed;
      continue;
    }
    engine.record_success(*r, db);
    if (!o.quiet)
      std::printf(
          "%s: base backup %s at journal %lld in %s: %llu accounts, %llu items, %s; %llu new "
          "messages, %llu verified, %s uploaded, %lld journal records archived, %.1f s; %s\n",
          db.c_str(), r->snapshot_id.substr(0, 12).c_str(), static_cast<long long>(r->seq),
          r->repository.c_str(), static_cast<unsigned long long>(r->accounts),
          static_cast<unsigned long long>(r->items), format_size(r->bytes).c_str(),
          static_cast<unsigned long long>(r->new_messages),
          static_cast<unsigned long long>(r->verified_messages),
          format_size(r->uploaded_bytes).c_str(), static_cast<long long>(r->archived_records),
          r->duration_ms / 1000.0,
          (r->full_id.empty() ? "full (" + r->full_reason + ")"
                              : "incremental on full backup " + r->full_id.substr(0, 12) +
                                    " at journal " + std::to_string(r->full_seq))
              .c_str());
  }
  if (failed)
    return fail(std::to_string(failed) + " of " + std::to_string(names->size()) +
                " database backups failed");
  return 0;
}

int backup_list(const std::string& config_path, const std::string& database,
                const std::string& repository) {
  auto opened = open_backups(config_path);
  if (!opened.is_ok()) return fail(opened.status().message());
  BackupEngine& engine = *opened->engine;
  std::vector<Repository*> repos;
  std::vector<std::string> problems;
  if (repository.empty()) {
    repos = engine.open_all(&problems);
  } else {
    auto r = engine.repository(repository, false);
    if (!r.is_ok()) return fail(r.status().message());
    repos.push_back(*r);
  }
  for (const auto& p : problems) std::printf("repository %s\n", p.c_str());
  bool damaged = false;
  for (Repository* repo : repos) {
    auto snaps = engine.snapshots(*repo);
    if (!snaps.is_ok()) return fail(repo->name() + ": " + snaps.status().message());
    std::printf("repository %s (%s)\n", repo->name().c_str(), repo->backend().describe().c_str());
    std::set<std::string> guids;
    std::printf("  %-12s %-10s %-20s %10s %8s %10s  %-18s %s\n", "BACKUP", "DATABASE", "TIME",
                "SEQ", "ITEMS", "SIZE", "KIND", "STATE");
    for (const auto& s : *snaps) {
      if (!database.empty() && s.database != database) continue;
      if (!s.problem.empty() && s.database.empty()) {
        std::printf("  %-12s DAMAGED: %s\n", s.id.substr(0, 12).c_str(), s.problem.c_str());
        damaged = true;
        continue;
      }
      guids.insert(s.database_guid);
      // An incremental backup names the full one it builds on.
      std::string kind = s.full.empty() ? "full" : "incr. on " + s.full.substr(0, 9);
      std::printf("  %-12s %-10s %-20s %10lld %8llu %10s  %-18s %s\n", s.id.substr(0, 12).c_str(),
                  s.database.c_str(), when(s.time_ms).c_str(), static_cast<long long>(s.seq),
                  static_cast<unsigned long long>(s.items), format_size(s.bytes).c_str(),
                  kind.c_str(), s.verified ? "verified" : ("INCOMPLETE: " + s.problem).c_str());
      damaged = damaged || !s.verified;
    }
    for (const auto& guid : guids) {
      auto range = engine.archived_range(*repo, guid);
      if (!range.is_ok()) continue;
      std::string name = guid.substr(0, 8);
      for (const auto& s : *snaps)
        if (s.database_guid == guid) name = s.database;
      std::printf("  journal archive of %s: records %lld..%lld, up to %s\n", name.c_str(),
                  static_cast<long long>(range->first), static_cast<long long>(range->last),
                  when(range->last_time_ms).c_str());
    }
  }
  return damaged ? fail("some backups are damaged or incomplete (run 'mailark backup verify')") : 0;
}

int backup_verify(const std::string& config_path, const std::string& repository, bool read_data,
                  bool quiet) {
  auto opened = open_backups(config_path);
  if (!opened.is_ok()) return fail(opened.status().message());
  BackupEngine& engine = *opened->engine;
  std::vector<std::string> names;
  if (repository.empty())
    for (const auto& r : engine.settings().repositories) names.push_back(r.name);
  else
    names.push_back(repository);
  int bad = 0;
  for (const auto& name : names) {
    auto repo = engine.repository(name, false);
    if (!repo.is_ok()) {
      std::printf("%s: FAILED: %s\n", name.c_str(), repo.status().message().c_str());
      VerifyReport failed;
      failed.problems.push_back({"repository", repo.status().message()});
      engine.record_verify(name, read_data, failed);
      ++bad;
      continue;
    }
    Progress progress(progress_wanted(quiet));
    auto report = engine.verify(**repo, read_data, progress);
    if (!report.is_ok()) {
      std::printf("%s: FAILED: %s\n", name.c_str(), report.status().message().c_str());
      ++bad;
      continue;
    }
    engine.record_verify(name, read_data, *report);
    for (const auto& p : report->problems)
      std::printf("%s: PROBLEM %s: %s\n", name.c_str(), p.where.c_str(), p.what.c_str());
    std::printf("%s: %s (%s: %llu packs, %llu objects, %llu snapshots, %llu journal segments%s)\n",
                name.c_str(), report->problems.empty() ? "ok" : "DAMAGED",
                read_data ? "every byte read" : "structure",
                static_cast<unsigned long long>(report->packs),
                static_cast<unsigned long long>(report->objects),
                static_cast<unsigned long long>(report->snapshots),
                static_cast<unsigned long long>(report->segments),
                read_data ? (", " + format_size(report->bytes_read) + " read").c_str() : "");
    if (!report->problems.empty()) ++bad;
  }
  return bad ? fail(std::to_string(bad) + " repositories failed verification") : 0;
}

int backup_copy(const std::string& config_path, const std::string& from, const std::string& to,
                bool repair, bool quiet) {
  auto opened = open_backups(config_path);
  if (!opened.is_ok()) return fail(opened.status().message());
  BackupEngine& engine = *opened->engine;
  if (from == to) return fail("--from and the target are the same repository");
  auto src = engine.repository(from, false);
  if (!src.is_ok()) return fail(src.status().message());
  auto dst = engine.repository(to, /*create=*/true);
  if (!dst.is_ok()) return fail(dst.status().message());
  Progress progress(progress_wanted(quiet));
  auto report = engine.copy(**src, **dst, repair, progress);
  if (!report.is_ok()) return fail(report.status().message());
  for (const auto& p : report->problems)
    std::printf("PROBLEM %s: %s\n", p.where.c_str(), p.what.c_str());
  std::printf("%s %s -> %s: %llu files (%s) written, %llu already there%s\n",
              repair ? "repair" : "copy", from.c_str(), to.c_str(),
              static_cast<unsigned long long>(report->files), format_size(report->bytes).c_str(),
              static_cast<unsigned long long>(report->skipped),
              report->problems.empty() ? "" : ", with problems");
  if (!report->problems.empty())
    return fail(std::to_string(report->problems.size()) + " files could not be copied");
  return 0;
}

int backup_prune(const std::string& config_path, const std::string& repository, bool dry_run) {
  auto opened = open_backups(config_path);
  if (!opened.is_ok()) return fail(opened.status().message());
  auto repo = opened->engine->repository(repository, false);
  if (!repo.is_ok()) return fail(repo.status().message());
  auto report = opened->engine->prune(**repo, dry_run);
  if (!report.is_ok()) return fail(report.status().message());
  for (const auto& id : report->removed)
    std::printf("%s %s\n", dry_run ? "would remove" : "removed", id.substr(0, 12).c_str());
  std::printf(
      "%s: %zu base backups kept, %zu %s, %llu packs removed (%llu small ones repacked), %llu "
      "journal segments merged\n",
      (*repo)->name().c_str(), report->kept.size(), report->removed.size(),
      dry_run ? "to remove" : "removed", static_cast<unsigned long long>(report->removed_packs),
      static_cast<unsigned long long>(report->repacked_packs),
      static_cast<unsigned long long>(report->merged_segments));
  return 0;
}

int backup_key_export(const std::string& config_path) {
  auto config = load_config(config_path);
  if (!config.is_ok()) return fail(config.status().message());
  if (config->backup.key_file.empty())
    return fail("backups use a passphrase (backup.passphrase_file), not a key file");
  auto text = posix_fs().read_file(config->backup.key_file);
  if (!text.is_ok())
    return fail("cannot read " + config->backup.key_file + ": " + text.status().message());
  auto key = BackupKey::parse(*text);
  if (!key.is_ok()) return fail(config->backup.key_file + ": " + key.status().message());
  std::printf(
      "# mailark backup key %s (from %s). Keep it apart from the backups: without it\n"
      "# no backup can be read. Put it back as that file (mode 0600) to restore.\n%s",
      key->id().c_str(), config->backup.key_file.c_str(), key->to_text().c_str());
  return 0;
}

int restore(const std::string& config_path, const RestoreOptions& o) {
  if (o.database.empty() == o.user.empty()) return fail("give either --db or --user", kExUsage);
  if (!o.database.empty() && o.into.empty())
    return fail("--db needs --into NEWDB (a new recovery database)", kExUsage);
  if (!o.database.empty() && (!o.folder.empty() || !o.into_folder.empty()))
    return fail("--folder and --into-folder go with --user", kExUsage);
  if (!o.user.empty() && !o.into.empty()) return fail("--into goes with --db", kExUsage);
  mailark::RestoreOptions options;
  options.dry_run = o.dry_run;
  if (!o.time.empty()) {
    auto t = parse_time(o.time, now_ms());
    if (!t)
      return fail("cannot read time '" + o.time + "' (2026-11-24T10:00:00Z, -2h, @unix)", kExUsage);
    options.time_ms = *t;
  }
  if (!o.seq.empty()) {
    char* end = nullptr;
    long long v = std::strtoll(o.seq.c_str(), &end, 10);
    if (!end || *end || v < 1) return fail("--seq must be a journal sequence number", kExUsage);
    options.seq = v;
  }
  auto opened = open_backups(config_path);
  if (!opened.is_ok()) return fail(opened.status().message());
  Services& s = *opened->services;
  BackupEngine& engine = *opened->engine;
  Progress progress(progress_wanted(o.quiet) && !o.dry_run);
  Result<mailark::RestoreReport> report = invalid("");
  std::string what;
  if (!o.database.empty()) {
    Status v = validate_database_name(o.into);
    if (!v.is_ok()) return fail(v.message(), kExUsage);
    auto dbs = s.directory->databases();
    if (dbs.is_ok())
      for (const auto& d : *dbs)
        if (d.name == o.into)
          return fail("database " + o.into + " exists; choose a new name for --into");
    report = engine.restore_database(o.database, o.into, options, progress);
    what = "database " + o.database + " into " + o.into;
  } else {
    auto user = s.directory->find_user(o.user);
    if (!user.is_ok()) return fail(user.status().message());
    auto account = s.store->account(user->database, user->address);
    if (!account.is_ok()) return fail(account.status().message());
    account->quota_bytes = user->quota_bytes;
    report = engine.restore_account(user->database, *account, o.folder, o.into_folder, options,
                                    progress);
    what = "account " + user->address;
  }
  if (!report.is_ok()) return fail("restore of " + what + " failed: " + report.status().message());
  const auto& r = *report;
  std::printf("%s %s at journal %lld (%s)%s, %lld journal records replayed\n",
              o.dry_run ? "would restore" : "restored", what.c_str(), static_cast<long long>(r.seq),
              when(r.time_ms).c_str(),
              r.base_snapshot.empty()
                  ? " from the journal alone"
                  : (" from base backup " + r.base_snapshot.substr(0, 12)).c_str(),
              static_cast<long long>(r.replayed_records));
  for (const auto& f : r.folders)
    std::printf("  %-30s %-30s %7llu items %10s%s\n", f.account.c_str(),
                (f.target == f.folder ? f.folder : f.folder + " -> " + f.target).c_str(),
                static_cast<unsigned long long>(f.items), format_size(f.bytes).c_str(),
                f.skipped ? (" (" + std::to_string(f.skipped) + " already present)").c_str() : "");
  std::printf(
      "%s %llu items, %s%s\n",
      o.dry_run ? "total to restore:" : "total restored:", static_cast<unsigned long long>(r.items),
      format_size(r.bytes).c_str(),
      r.skipped ? (", " + std::to_string(r.skipped) + " skipped (already present)").c_str() : "");
  if (!o.dry_run && !o.database.empty())
    std::printf("recovery database %s is at %s; it is not routed to any user\n", o.into.c_str(),
                s.store->database_dir(o.into).c_str());
  return 0;
}

int db_dump(const std::string& config_path, const std::string& name, const std::string& user) {
  auto config = load_config(config_path);
  if (!config.is_ok()) return fail(config.status().message());
  set_log_level(LogLevel::kError);
  Status v = validate_database_name(name);
  if (!v.is_ok()) return fail(v.message(), kExUsage);
  MailStore store(posix_fs(), config->databases_path);
  DatabaseState state;
  Status s = store.read_snapshot(name, [&](DatabaseSnapshot& snap) -> Status {
    MK_ASSIGN_OR_RETURN(state, snap.state());
    return Status::ok();
  });
  if (!s.is_ok()) return fail(s.message());
  using nlohmann::json;
  json accounts = json::array();
  for (const auto& [g, a] : state.accounts) {
    if (!user.empty() && a.address != user) continue;
    json folders = json::array();
    for (const auto& [fg, f] : a.folders) {
      json items = json::array();
      for (const auto& [uid, it] : f.items) {
        json item = {{"uid", uid},
                     {"guid", it.guid.hex()},
                     {"ingress", it.ingress_id ? it.ingress_id->hex() : ""},
                     {"blob", to_hex(it.blob)},
                     {"size", it.size},
                     {"internal_date_ms", it.internal_date_ms},
                     {"flags", it.flags},
                     {"modseq", it.modseq},
                     {"saved_ms", it.saved_ms}};
        if (!it.dav_name.empty()) {
          item["dav_name"] = it.dav_name;
          item["component_uid"] = it.component_uid;
          item["component"] = it.component;
        }
        items.push_back(std::move(item));
      }
      json expunged = json::object();
      for (const auto& [uid, modseq] : f.expunged) expunged[std::to_string(uid)] = modseq;
      json folder = {{"guid", f.guid.hex()},
                     {"name", f.name},
                     {"kind", f.kind},
                     {"special_use", f.special_use},
                     {"subscribed", f.subscribed},
                     {"uidvalidity", f.uidvalidity},
                     {"uidnext", f.uidnext},
                     {"highestmodseq", f.highestmodseq},
                     {"items", items},
                     {"expunged", expunged}};
      if (!f.props.empty()) folder["props"] = f.props;
      if (!f.gone.empty()) folder["gone"] = f.gone;
      folders.push_back(std::move(folder));
    }
    std::sort(folders.begin(), folders.end(),
              [](const json& x, const json& y) { return x["name"] < y["name"]; });
    accounts.push_back({{"guid", a.guid.hex()},
                        {"address", a.address},
                        {"last_uidvalidity", a.last_uidvalidity},
                        {"deliveries", a.deliveries.size()},
                        {"folders", folders}});
  }
  json out = {{"database", name},
              {"seq", state.seq},
              {"head", to_hex(state.head)},
              {"time_ms", state.time_ms},
              {"accounts", accounts}};
  std::printf("%s\n", out.dump(1).c_str());
  return 0;
}

int health(const std::string& config_path, bool json) {
  auto opened = open_backups(config_path);
  if (!opened.is_ok()) {
    if (json)
      std::printf("%s\n",
                  nlohmann::json({{"status", "critical"}, {"error", opened.status().message()}})
                      .dump(2)
                      .c_str());
    else
      std::printf("CRITICAL %s\n", opened.status().message().c_str());
    return 2;
  }
  auto names = database_names(*opened->services, "");
  if (!names.is_ok()) {
    std::printf("CRITICAL %s\n", names.status().message().c_str());
    return 2;
  }
  HealthReport r = opened->engine->health(*names, now_ms());
  if (json) {
    std::printf("%s\n", r.json.c_str());
  } else {
    std::printf("%s: %zu databases, %zu repositories\n",
                r.status == 0   ? "OK"
                : r.status == 1 ? "WARNING"
                                : "CRITICAL",
                names->size(), opened->engine->settings().repositories.size());
    for (const auto& line : r.lines) std::printf("%s\n", line.c_str());
  }
  return r.status;
}

}  // namespace mailark::admin
