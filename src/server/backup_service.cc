// The server's backup threads: journal archive and scheduled base backups.
#include "server/backup_service.h"

#include <algorithm>
#include <map>

#include "base/log.h"
#include "base/time.h"
#include "os/file.h"

namespace mailark {

BackupService::BackupService(Services& services) : services_(services) {}

BackupService::~BackupService() {
  stop();
}

void BackupService::start() {
  if (!services_.config.backup.enabled) return;
  archiver_ = std::thread([this] { archive_loop(); });
  if (services_.config.backup.base_interval_ms > 0)
    scheduler_ = std::thread([this] { schedule_loop(); });
}

void BackupService::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (archiver_.joinable()) archiver_.join();
  if (scheduler_.joinable()) scheduler_.join();
}

bool BackupService::wait_ms(int64_t ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
  return !stopping_;
}

void BackupService::archive_loop() {
  BackupEngine engine(posix_fs(), *services_.store, services_.config.backup);
  // Failures are logged when they start, change or every ten minutes, not every second.
  std::map<std::string, std::pair<std::string, int64_t>> last_error;
  do {
    auto dbs = services_.directory->databases();
    if (!dbs.is_ok()) continue;
    for (const auto& repo_settings : services_.config.backup.repositories) {
      auto repo = engine.repository(repo_settings.name, /*create=*/true);
      for (const auto& db : *dbs) {
        std::string key = repo_settings.name + "/" + db.name;
        Status s = repo.is_ok() ? engine.archive_journal(db.name, **repo).status() : repo.status();
        auto& [message, logged_ms] = last_error[key];
        if (s.is_ok()) {
          if (!message.empty())
            MK_LOG_INFO("journal archive of {} to {} works again", db.name, repo_settings.name);
          message.clear();
          continue;
        }
        if (s.message() != message || now_ms() - logged_ms > 600'000) {
          MK_LOG_ERROR("journal archive of {} to {} failed: {}", db.name, repo_settings.name,
                       s.message());
          message = s.message();
          logged_ms = now_ms();
        }
      }
    }
  } while (wait_ms(services_.config.backup.archive_interval_ms));
}

void BackupService::schedule_loop() {
  BackupEngine engine(posix_fs(), *services_.store, services_.config.backup);
  const BackupSettings& settings = services_.config.backup;
  // A short pause first, so a starting server serves before it reads every database.
  if (!wait_ms(std::min<int64_t>(30'000, settings.base_interval_ms))) return;
  do {
    auto dbs = services_.directory->databases();
    if (!dbs.is_ok()) continue;
    int64_t now = now_ms();
    for (const auto& db : *dbs) {
      int64_t last = engine.last_success_ms(db.name);
      if (last && now - last < settings.base_interval_ms) continue;
      auto repo = engine.repository("", /*create=*/true);
      if (!repo.is_ok()) {
        engine.record_failure(db.name, settings.repositories.front().name, repo.status().message());
        continue;
      }
      Progress quiet(false);
      auto r = engine.base_backup(db.name, **repo, BaseBackupOptions{}, quiet);
      if (!r.is_ok()) {
        engine.record_failure(db.name, (*repo)->name(), r.status().message());
        continue;
      }
      engine.record_success(*r, db.name);
      MK_LOG_INFO("scheduled base backup of {} ({}): {} items at journal {} in {}", db.name,
                  r->full_id.empty() ? "full: " + r->full_reason : "incremental", r->items, r->seq,
                  (*repo)->name());
      // Backups of backups: every other repository gets what it lacks.
      for (size_t i = 1; i < settings.repositories.size(); ++i) {
        auto other = engine.repository(settings.repositories[i].name, /*create=*/true);
        if (!other.is_ok()) {
          MK_LOG_ERROR("repository {}: {}", settings.repositories[i].name,
                       other.status().message());
          continue;
        }
        auto copied = engine.copy(**repo, **other, false, quiet);
        if (!copied.is_ok() || !copied->problems.empty())
          MK_LOG_ERROR("copy of {} to {} failed: {}", (*repo)->name(), (*other)->name(),
                       copied.is_ok() ? copied->problems.front().what : copied.status().message());
      }
    }
  } while (wait_ms(std::min<int64_t>(60'000, settings.base_interval_ms)));
}

}  // namespace mailark
