// The admin subcommands behind the `mailark` binary. Each returns a process exit code and
// prints one line "mailark: <reason>" on stderr when it fails (invariant 8). Argument
// parsing lives in apps/mailark/main.cc; these functions do the work.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mailark::admin {

// sysexits.h values used by `deliver` (Postfix understands them).
inline constexpr int kExOk = 0;
inline constexpr int kExUsage = 64;
inline constexpr int kExDataErr = 65;
inline constexpr int kExNoUser = 67;
inline constexpr int kExUnavailable = 69;
inline constexpr int kExSoftware = 70;
inline constexpr int kExCantCreat = 73;
inline constexpr int kExIoErr = 74;
inline constexpr int kExTempFail = 75;
inline constexpr int kExConfig = 78;

int fail(const std::string& reason, int code = 1);

int init(const std::string& dir, bool ephemeral_ports, const std::string& listen_address);
int serve(const std::string& config_path);

int tenant_add(const std::string& config_path, const std::string& domain);
int tenant_list(const std::string& config_path);
int tenant_del(const std::string& config_path, const std::string& domain);

struct UserAddOptions {
  std::string address;
  bool password_stdin = false;
  std::string quota;     // "" = unlimited
  std::string database;  // "" = least loaded
};
int user_add(const std::string& config_path, const UserAddOptions& options);
int user_list(const std::string& config_path, const std::string& domain);
int user_del(const std::string& config_path, const std::string& address);
int user_passwd(const std::string& config_path, const std::string& address, bool password_stdin);
int user_quota(const std::string& config_path, const std::string& address,
               const std::string& quota);

int db_add(const std::string& config_path, const std::string& name);
int db_list(const std::string& config_path);
// Prints a database's logical state as JSON (accounts, folders, items with GUIDs, UIDs,
// flags, MODSEQs and content digests; no bodies) at its journal head: what a restore must
// reproduce item by item. Works on recovery databases too.
int db_dump(const std::string& config_path, const std::string& name, const std::string& user);
// Creates empty files for a database the directory knows but whose files are gone, and an
// empty mailbox for every user routed to it, so mail flows again; `replay` refills it.
int db_recreate(const std::string& config_path, const std::string& name);

int deliver(const std::string& config_path, const std::vector<std::string>& to,
            const std::string& from);
int check(const std::string& config_path, const std::string& database, bool quiet);
int stats(const std::string& config_path);

struct ReplayOptions {
  std::string since, until, user;
  bool list = false;
  bool quiet = false;
};
int replay(const std::string& config_path, const ReplayOptions& options);

// ---- calendars and contacts (src/admin/groupware_commands.cc). FILE "-" is stdin/stdout.
// Imports create the named collection when missing; objects with a UID the collection holds
// replace that resource (importing twice creates no duplicates).
int calendar_import(const std::string& config_path, const std::string& address,
                    const std::string& calendar, const std::string& file, bool quiet);
int calendar_export(const std::string& config_path, const std::string& address,
                    const std::string& calendar, const std::string& file);
int contacts_import(const std::string& config_path, const std::string& address,
                    const std::string& book, const std::string& file, bool quiet);
int contacts_export(const std::string& config_path, const std::string& address,
                    const std::string& book, const std::string& file);

// ---- backups (src/admin/backup_commands.cc)
struct BackupRunOptions {
  std::string database;    // "" = every database
  std::string repository;  // "" = the first configured
  bool verify_all = false;
  bool full = false;
  bool quiet = false;
};
int backup_run(const std::string& config_path, const BackupRunOptions& options);
int backup_list(const std::string& config_path, const std::string& database,
                const std::string& repository);
int backup_verify(const std::string& config_path, const std::string& repository, bool read_data,
                  bool quiet);
int backup_copy(const std::string& config_path, const std::string& from, const std::string& to,
                bool repair, bool quiet);
int backup_prune(const std::string& config_path, const std::string& repository, bool dry_run);
int backup_key_export(const std::string& config_path);

struct RestoreOptions {
  std::string database;  // --db
  std::string user;      // --user
  std::string time, seq;
  std::string into;         // --into NEWDB (with --db)
  std::string folder;       // --folder (with --user)
  std::string into_folder;  // --into-folder (with --user)
  bool dry_run = false;
  bool quiet = false;
};
int restore(const std::string& config_path, const RestoreOptions& options);
int health(const std::string& config_path, bool json);

}  // namespace mailark::admin
