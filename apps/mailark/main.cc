// The one mailark binary: `mailark serve` and every admin subcommand. Argument parsing
// only (CLI11); the work is in src/admin.
#include <malloc.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "admin/commands.h"
#include "server/config.h"

namespace ma = mailark::admin;

int main(int argc, char** argv) {
  // Admin commands (backup, restore, verify) handle thousands of multi-megabyte buffers in a
  // row: keep freed memory for reuse instead of mapping fresh zeroed pages for each one
  // (page faults were 40% of a restore). `serve` sets its own policy (server.cc).
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  CLI::App app{"mailark: mail and groupware server with built-in disaster recovery"};
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  app.require_subcommand(1);
  std::string config_flag;
  app.add_option("-c,--config", config_flag,
                 "Configuration file (default: $MAILARK_CONFIG, else /etc/mailark/mailark.toml)");
  app.fallthrough();
  int rc = 0;
  auto config = [&] { return mailark::resolve_config_path(config_flag); };

  // init
  auto* init = app.add_subcommand("init", "Create a data directory with a default mailark.toml");
  std::string init_dir, listen = "127.0.0.1";
  bool ephemeral = false;
  init->add_option("DIR", init_dir, "Directory to create")->required();
  init->add_flag("--ephemeral-ports", ephemeral, "Listen on ports chosen by the system (port = 0)");
  init->add_option("--listen", listen, "Address every listener binds to");
  init->callback([&] { rc = ma::init(init_dir, ephemeral, listen); });

  auto* serve = app.add_subcommand("serve", "Run the server until SIGTERM");
  serve->callback([&] { rc = ma::serve(config()); });

  // tenant
  auto* tenant = app.add_subcommand("tenant", "Manage tenants (customer domains)");
  tenant->require_subcommand(1);
  std::string domain;
  auto* tadd = tenant->add_subcommand("add", "Add a tenant");
  tadd->add_option("DOMAIN", domain, "Domain, e.g. acme.test")->required();
  tadd->callback([&] { rc = ma::tenant_add(config(), domain); });
  auto* tlist = tenant->add_subcommand("list", "List tenants");
  tlist->callback([&] { rc = ma::tenant_list(config()); });
  auto* tdel = tenant->add_subcommand("del", "Delete a tenant that has no users");
  tdel->add_option("DOMAIN", domain, "Domain")->required();
  tdel->callback([&] { rc = ma::tenant_del(config(), domain); });

  // user
  auto* user = app.add_subcommand("user", "Manage users");
  user->require_subcommand(1);
  ma::UserAddOptions uadd_opts;
  auto* uadd = user->add_subcommand("add", "Add a user and create the mailbox");
  uadd->add_option("ADDR", uadd_opts.address, "Address, e.g. alice@acme.test")->required();
  uadd->add_flag("--password-stdin", uadd_opts.password_stdin,
                 "Read the password from the first line of stdin");
  uadd->add_option("--quota", uadd_opts.quota, "Quota, e.g. 2GB (default unlimited)");
  uadd->add_option("--db", uadd_opts.database, "Database (default: the least loaded one)");
  uadd->callback([&] { rc = ma::user_add(config(), uadd_opts); });
  std::string ulist_domain;
  auto* ulist = user->add_subcommand("list", "List users");
  ulist->add_option("--tenant", ulist_domain, "Only users of this tenant");
  ulist->callback([&] { rc = ma::user_list(config(), ulist_domain); });
  std::string address;
  auto* udel = user->add_subcommand("del", "Delete a user and the mailbox");
  udel->add_option("ADDR", address, "Address")->required();
  udel->callback([&] { rc = ma::user_del(config(), address); });
  bool passwd_stdin = false;
  auto* upass = user->add_subcommand("passwd", "Change a user's password");
  upass->add_option("ADDR", address, "Address")->required();
  upass->add_flag("--password-stdin", passwd_stdin,
                  "Read the password from the first line of stdin");
  upass->callback([&] { rc = ma::user_passwd(config(), address, passwd_stdin); });
  std::string quota;
  auto* uquota = user->add_subcommand("quota", "Set a user's quota");
  uquota->add_option("ADDR", address, "Address")->required();
  uquota->add_option("SIZE", quota, "e.g. 2GB, or 'unlimited'")->required();
  uquota->callback([&] { rc = ma::user_quota(config(), address, quota); });

  // db
  auto* db = app.add_subcommand("db", "Manage databases (shards of accounts)");
  db->require_subcommand(1);
  std::string db_name;
  auto* dadd = db->add_subcommand("add", "Create a database");
  dadd->add_option("NAME", db_name, "Name: a-z, 0-9, '-', '_'")->required();
  dadd->callback([&] { rc = ma::db_add(config(), db_name); });
  auto* drecreate = db->add_subcommand(
      "recreate", "Recreate a lost database empty, with an empty mailbox for each of its users");
  drecreate->add_option("NAME", db_name, "Name of a database whose files are gone")->required();
  drecreate->callback([&] { rc = ma::db_recreate(config(), db_name); });
  std::string dump_user;
  auto* ddump = db->add_subcommand(
      "dump", "Print a database's state as JSON (items, GUIDs, UIDs, flags; no bodies)");
  ddump->add_option("NAME", db_name, "Database, also a recovery database")->required();
  ddump->add_option("--user", dump_user, "Only this account");
  ddump->callback([&] { rc = ma::db_dump(config(), db_name, dump_user); });
  auto* dlist = db->add_subcommand("list", "List databases");
  dlist->callback([&] { rc = ma::db_list(config()); });

  // calendar / contacts
  std::string g_address, g_collection = "default", g_file;
  bool g_quiet = false;
  auto* calendar = app.add_subcommand("calendar", "Import and export calendars (iCalendar)");
  calendar->require_subcommand(1);
  auto* cimport = calendar->add_subcommand(
      "import", "Import events and tasks; an object whose UID is present replaces it");
  cimport->add_option("ADDR", g_address, "The user")->required();
  cimport->add_option("FILE", g_file, "An .ics file, '-' for stdin")->required();
  cimport->add_option("--calendar", g_collection, "Calendar (created when missing)");
  cimport->add_flag("-q,--quiet", g_quiet, "No summary");
  cimport->callback(
      [&] { rc = ma::calendar_import(config(), g_address, g_collection, g_file, g_quiet); });
  auto* cexport = calendar->add_subcommand("export", "Export a calendar as one .ics file");
  cexport->add_option("ADDR", g_address, "The user")->required();
  cexport->add_option("FILE", g_file, "Output file (default stdout)");
  cexport->add_option("--calendar", g_collection, "Calendar");
  cexport->callback([&] { rc = ma::calendar_export(config(), g_address, g_collection, g_file); });
  auto* contacts = app.add_subcommand("contacts", "Import and export address books (vCard)");
  contacts->require_subcommand(1);
  auto* kimport = contacts->add_subcommand(
      "import", "Import contacts; a card whose UID is present replaces it");
  kimport->add_option("ADDR", g_address, "The user")->required();
  kimport->add_option("FILE", g_file, "A .vcf file, '-' for stdin")->required();
  kimport->add_option("--book", g_collection, "Address book (created when missing)");
  kimport->add_flag("-q,--quiet", g_quiet, "No summary");
  kimport->callback(
      [&] { rc = ma::contacts_import(config(), g_address, g_collection, g_file, g_quiet); });
  auto* kexport = contacts->add_subcommand("export", "Export an address book as one .vcf file");
  kexport->add_option("ADDR", g_address, "The user")->required();
  kexport->add_option("FILE", g_file, "Output file (default stdout)");
  kexport->add_option("--book", g_collection, "Address book");
  kexport->callback([&] { rc = ma::contacts_export(config(), g_address, g_collection, g_file); });

  // deliver
  std::vector<std::string> to;
  std::string from;
  auto* deliver = app.add_subcommand(
      "deliver",
      "Deliver one message from stdin (Postfix mailbox_command); exits with sysexits codes");
  deliver->add_option("--to", to, "Recipient (repeatable)")->required();
  deliver->add_option("--from", from, "Envelope sender");
  deliver->callback([&] { rc = ma::deliver(config(), to, from); });

  // check, stats
  std::string check_db;
  bool quiet = false;
  auto* check =
      app.add_subcommand("check", "Verify databases: SQLite, journal chain, blobs, references");
  check->add_option("--db", check_db, "Only this database");
  check->add_flag("-q,--quiet", quiet, "Print problems and the summary only");
  check->callback([&] { rc = ma::check(config(), check_db, quiet); });
  auto* stats =
      app.add_subcommand("stats", "Accounts, items, bytes and journal length per database");
  stats->callback([&] { rc = ma::stats(config()); });

  // replay
  ma::ReplayOptions replay_opts;
  auto* replay = app.add_subcommand("replay", "Re-deliver accepted mail from the ingress cache");
  replay->add_option("--since", replay_opts.since, "Start time (2026-11-24T10:00:00Z, -2h, @unix)");
  replay->add_option("--until", replay_opts.until, "End time (exclusive)");
  replay->add_option("--user", replay_opts.user, "Only this recipient");
  replay->add_flag("--list", replay_opts.list, "Show what the cache holds instead of delivering");
  replay->add_flag("-q,--quiet", replay_opts.quiet, "No progress output");
  replay->callback([&] { rc = ma::replay(config(), replay_opts); });

  // backup
  auto* backup = app.add_subcommand("backup", "Base backups, journal archive and repositories");
  backup->require_subcommand(1);
  ma::BackupRunOptions brun_opts;
  auto* brun = backup->add_subcommand("run", "Take a base backup of every database (or one)");
  brun->add_option("--db", brun_opts.database, "Only this database");
  brun->add_option("--repo", brun_opts.repository, "Repository (default: the first configured)");
  brun->add_flag("--verify-all", brun_opts.verify_all,
                 "Re-read and verify every message body, not only new ones (a full backup)");
  brun->add_flag("--full", brun_opts.full,
                 "Read the whole state even when an incremental backup would do");
  brun->add_flag("-q,--quiet", brun_opts.quiet, "No progress or summary output");
  brun->callback([&] { rc = ma::backup_run(config(), brun_opts); });
  std::string blist_db, repo_name;
  auto* blist = backup->add_subcommand("list", "Base backups and archived journal per database");
  blist->add_option("--db", blist_db, "Only this database");
  blist->add_option("--repo", repo_name, "Only this repository");
  blist->callback([&] { rc = ma::backup_list(config(), blist_db, repo_name); });
  bool read_data = false, bquiet = false;
  auto* bverify = backup->add_subcommand("verify", "Check repositories (structure, or every byte)");
  bverify->add_option("--repo", repo_name, "Only this repository");
  bverify->add_flag("--read-data", read_data, "Read and decrypt every pack and object");
  bverify->add_flag("-q,--quiet", bquiet, "No progress output");
  bverify->callback([&] { rc = ma::backup_verify(config(), repo_name, read_data, bquiet); });
  std::string copy_from, copy_to;
  auto* bcopy = backup->add_subcommand("copy", "Copy what one repository lacks from another");
  bcopy->add_option("--from", copy_from, "Source repository")->required();
  bcopy->add_option("--to", copy_to, "Target repository")->required();
  bcopy->add_flag("-q,--quiet", bquiet, "No progress output");
  bcopy->callback([&] { rc = ma::backup_copy(config(), copy_from, copy_to, false, bquiet); });
  auto* brepair = backup->add_subcommand(
      "repair", "Put back into a repository what it lost or holds damaged, from another");
  brepair->add_option("--from", copy_from, "Repository with good copies")->required();
  brepair->add_option("REPO", copy_to, "Repository to repair")->required();
  brepair->add_flag("-q,--quiet", bquiet, "No progress output");
  brepair->callback([&] { rc = ma::backup_copy(config(), copy_from, copy_to, true, bquiet); });
  bool prune_dry = false;
  auto* bprune = backup->add_subcommand(
      "prune", "Remove base backups the retention policy does not keep, and unneeded data");
  bprune->add_option("--repo", repo_name, "Repository (default: the first configured)");
  bprune->add_flag("--dry-run", prune_dry, "Only show what would be removed");
  bprune->callback([&] { rc = ma::backup_prune(config(), repo_name, prune_dry); });
  auto* bkey = backup->add_subcommand("key", "The backup key");
  bkey->require_subcommand(1);
  auto* bkexport = bkey->add_subcommand("export", "Print the backup key for safekeeping");
  bkexport->callback([&] { rc = ma::backup_key_export(config()); });

  // restore
  ma::RestoreOptions restore_opts;
  auto* restore = app.add_subcommand(
      "restore", "Restore a database into a recovery database, or one account into itself");
  restore->add_option("--db", restore_opts.database, "Database to restore (with --into)");
  restore->add_option("--into", restore_opts.into, "New recovery database to create");
  restore->add_option("--user", restore_opts.user, "Account to restore into its live mailbox");
  restore->add_option("--folder", restore_opts.folder, "Only this folder (and its children)");
  restore->add_option("--into-folder", restore_opts.into_folder,
                      "Put restored folders under this folder, e.g. \"Recovered/2026-11-24\"");
  restore->add_option("--time", restore_opts.time,
                      "State at this time (2026-11-24T10:00:00Z, -2h, @unix); default: latest");
  restore->add_option("--seq", restore_opts.seq, "State at this journal sequence number");
  restore->add_flag("--dry-run", restore_opts.dry_run,
                    "Print what would be restored, write nothing");
  restore->add_flag("-q,--quiet", restore_opts.quiet, "No progress output");
  restore->callback([&] { rc = ma::restore(config(), restore_opts); });

  // health
  bool health_json = false;
  auto* health = app.add_subcommand(
      "health", "Backup health: exit 0 ok, 1 warning, 2 critical (a monitoring plugin)");
  health->add_flag("--json", health_json, "Machine-readable figures");
  health->callback([&] { rc = ma::health(config(), health_json); });

  auto* version = app.add_subcommand("version", "Print the version");
  version->callback([&] { std::printf("mailark 0.1.0\n"); });

  // Name an unknown subcommand instead of CLI11's "A subcommand is required".
  {
    CLI::App* current = &app;
    std::string path = "mailark";
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "-c" || arg == "--config") {
        ++i;
        continue;
      }
      if (arg.empty() || arg[0] == '-') continue;
      auto subs = current->get_subcommands([](CLI::App*) { return true; });
      if (subs.empty()) break;
      CLI::App* next = nullptr;
      for (CLI::App* sub : subs)
        if (sub->get_name() == arg) next = sub;
      if (!next) {
        std::fprintf(stderr, "mailark: unknown command '%s' for '%s' (see %s --help)\n",
                     arg.c_str(), path.c_str(), path.c_str());
        return ma::kExUsage;
      }
      current = next;
      path += " " + arg;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line on stderr, exit code 64 (EX_USAGE).
    std::string what = e.what();
    std::fprintf(stderr, "mailark: %s (see --help)\n", what.c_str());
    return ma::kExUsage;
  }
  return rc;
}
