// The backup engine: base backups of a database (logical, consistent at one journal sequence
// number, incremental by content), the continuous journal archive, point-in-time restore of a
// database or of one account, and the copy/verify/repair/prune operations across the
// configured repository tiers. Uses the mail store's public API only (mailstore/snapshot.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "backup/backend.h"
#include "backup/repository.h"
#include "base/status.h"
#include "mailstore/mail_store.h"
#include "mailstore/snapshot.h"

namespace mailark {

class TierReader;

struct RepositorySettings {
  std::string name;
  std::string type = "local";  // "local" or "s3"
  std::string path;            // local
  S3Settings s3;
};

struct RetentionPolicy {
  int keep_last = 3;
  int keep_hourly = 24;
  int keep_daily = 7;
  int keep_weekly = 4;
  int keep_monthly = 12;
};

struct HealthThresholds {
  int64_t backup_warn_ms = 9 * 3600'000LL;       // newest verified base backup older: warning
  int64_t backup_critical_ms = 25 * 3600'000LL;  // ... critical
  int64_t archive_lag_warn_ms = 60'000;
  int64_t archive_lag_critical_ms = 15 * 60'000;
};

struct BackupSettings {
  bool enabled = false;
  std::string key_file;         // "mailark-backup-key-v1:<hex>"
  std::string passphrase_file;  // alternative: a passphrase run through argon2id
  std::string cipher = "aes-256-gcm";
  int64_t archive_interval_ms = 1000;
  int64_t base_interval_ms = 4 * 3600'000LL;  // 0: no scheduled base backups
  int scrub_rotation = 24;  // each full base backup re-reads 1/N of the bodies already backed up
  // A base backup reads the whole state (a full one) when the newest full one is older than
  // this; in between they are incremental, built from the journal. 0: every one is full.
  int64_t full_interval_ms = 24 * 3600'000LL;
  std::string state_path;  // local record of outcomes, read by `mailark health`
  std::vector<RepositorySettings> repositories;  // restore preference order
  RetentionPolicy retention;
  HealthThresholds health;
};

// Terminal progress (bar, rate, ETA) on stderr when enabled; silent otherwise.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}
  void start(std::string what, uint64_t total_bytes);
  void advance(uint64_t bytes, uint64_t items = 1);
  void finish();
  bool enabled() const { return enabled_; }

 private:
  void draw(bool force);
  bool enabled_;
  std::string what_;
  uint64_t total_ = 0, done_ = 0, items_ = 0;
  int64_t started_ms_ = 0, drawn_ms_ = 0;
};

struct ArchiveRange {
  int64_t first = 0, last = 0;  // contiguous from `first`; 0/0 when nothing is archived
  int64_t last_time_ms = 0;
};

struct BaseBackupOptions {
  bool verify_all = false;  // re-read every body (implies full)
  bool full = false;        // read the whole state even when an incremental one would do
};

struct BaseBackupResult {
  std::string snapshot_id;
  std::string repository;
  int64_t seq = 0;
  // An incremental backup: the full one it builds on (its state plus the archived journal
  // up to `seq` is this one's).
  std::string full_id;
  int64_t full_seq = 0;
  // A full backup: why it is not incremental ("--full", "no earlier full backup in local"...).
  std::string full_reason;
  uint64_t accounts = 0, items = 0, bytes = 0;
  uint64_t new_messages = 0, verified_messages = 0, uploaded_bytes = 0;
  int64_t archived_records = 0;
  ArchiveRange archive;  // the database's journal archive in this repository afterwards
  int64_t duration_ms = 0;
};

struct SnapshotSummary {
  std::string id;
  std::string repository;
  std::string database;
  std::string database_guid;
  int64_t seq = 0;
  int64_t time_ms = 0;  // time of journal record `seq` (the state's moment)
  int64_t started_ms = 0, finished_ms = 0;
  uint64_t items = 0, bytes = 0, uploaded_bytes = 0;
  bool verified = false;  // every object it needs was found in the index (structure check)
  // Incremental backups: the full backup whose state they continue ("" for a full one).
  std::string full;
  int64_t full_seq = 0;
  std::string problem;  // why it is not usable, when it is not
};

struct RestoreOptions {
  std::optional<int64_t> time_ms;  // newest state at or before; latest archived when empty
  std::optional<int64_t> seq;      // or an exact journal position
  bool dry_run = false;
};

struct RestoreReport {
  int64_t seq = 0;            // the journal position restored
  int64_t time_ms = 0;        // its time
  std::string base_snapshot;  // "" when replayed from the start
  int64_t replayed_records = 0;
  struct FolderLine {
    std::string account, folder, target;
    uint64_t items = 0, bytes = 0, skipped = 0;
  };
  std::vector<FolderLine> folders;
  uint64_t items = 0, bytes = 0, skipped = 0;
};

// Health: ok / warning / critical, per database and repository.
struct HealthReport {
  int status = 0;                  // 0 ok, 1 warning, 2 critical
  std::vector<std::string> lines;  // human-readable, one per finding, worst first
  std::string json;                // the same figures, machine-readable
};

struct VerifyReport {
  std::vector<RepositoryProblem> problems;
  uint64_t packs = 0, objects = 0, snapshots = 0, segments = 0, bytes_read = 0;
};

class BackupEngine {
 public:
  BackupEngine(FileSystem& fs, MailStore& store, BackupSettings settings);
  ~BackupEngine();

  const BackupSettings& settings() const { return settings_; }
  // The key from key_file or passphrase_file.
  Result<KeySource> key_source();
  // Opens a configured repository by name ("" = the first), creating it when `create`.
  Result<Repository*> repository(const std::string& name, bool create);
  // Every configured repository that can be opened; the others are named in `problems`.
  std::vector<Repository*> open_all(std::vector<std::string>* problems);

  // A full base backup (the whole state as trees), or an incremental one (the journal since
  // the newest full one is archived, its bodies verified and stored) when that one is recent
  // enough; see BackupSettings::full_interval_ms.
  Result<BaseBackupResult> base_backup(const std::string& db, Repository& repo,
                                       const BaseBackupOptions& options, Progress& progress);
  // Ships journal records not yet archived (and the bodies they reference). Returns the
  // archived range afterwards.
  Result<ArchiveRange> archive_journal(const std::string& db, Repository& repo);
  Result<ArchiveRange> archived_range(Repository& repo, const std::string& database_guid);

  Result<std::vector<SnapshotSummary>> snapshots(Repository& repo);

  // Restores database `db` (by name as backed up) into a new database `into`.
  Result<RestoreReport> restore_database(const std::string& db, const std::string& into,
                                         const RestoreOptions& options, Progress& progress);
  // Restores one account (or one folder of it) into the live account; items whose GUID the
  // account holds are skipped.
  Result<RestoreReport> restore_account(const std::string& db, const Account& account,
                                        const std::string& folder, const std::string& into_folder,
                                        const RestoreOptions& options, Progress& progress);

  Result<VerifyReport> verify(Repository& repo, bool read_data, Progress& progress);
  struct CopyReport {
    uint64_t files = 0, bytes = 0, skipped = 0;
    std::vector<RepositoryProblem> problems;
  };
  // Copies every file `to` lacks (or holds damaged, with `repair`) from `from`, verifying
  // each copy against its name or contents.
  Result<CopyReport> copy(Repository& from, Repository& to, bool repair, Progress& progress);
  struct PruneReport {
    std::vector<std::string> kept, removed;  // snapshot ids
    uint64_t removed_packs = 0;
    uint64_t repacked_packs = 0;   // small packs rewritten into full ones
    uint64_t merged_segments = 0;  // journal segments merged into bigger ones
  };
  Result<PruneReport> prune(Repository& repo, bool dry_run);

  // From the local record of outcomes, the databases' journals and the thresholds.
  HealthReport health(const std::vector<std::string>& databases, int64_t now);

  // When the newest successful base backup of `db` finished (0: never), from the record.
  int64_t last_success_ms(const std::string& db);
  // The local record of outcomes (state_path), for health.
  void record_verify(const std::string& repo, bool read_data, const VerifyReport& report);
  void record_success(const BaseBackupResult& r, const std::string& db);
  void record_failure(const std::string& db, const std::string& repo, const std::string& reason);
  void record_archive(const std::string& db, const std::string& repo, const ArchiveRange& range,
                      int64_t db_last_seq, int64_t db_last_time_ms);

 private:
  Status prune_locked(Repository& repo, PruneReport& report,
                      const std::map<std::string, int64_t>& oldest_kept_seq);
  void invalidate_archive_cache(const std::string& repo);
  Status check_not_pruning(Repository& repo);
  // Every repository that opens, in restore order (kNotFound when none does).
  Result<TierReader> open_tiers();
  // restore_account for one calendar or address book of the backed-up account.
  Status restore_collection(const Account& account, const FolderState& folder, TierReader& tiers,
                            const RestoreOptions& options, std::set<Guid>& present,
                            Progress& progress, RestoreReport::FolderLine& line, uint64_t& written);
  HealthReport health_from_record(const std::vector<std::string>& databases, int64_t now);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  FileSystem& fs_;
  MailStore& store_;
  BackupSettings settings_;
  std::map<std::string, std::pair<int64_t, int64_t>> archive_recorded_;  // seq, when
};

}  // namespace mailark
