// Admin subcommand implementations.
#include "admin/commands.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <sstream>

#include "base/hash.h"
#include "base/log.h"
#include "base/time.h"
#include "mailstore/check.h"
#include "os/file.h"
#include "server/server.h"
#include "server/services.h"

namespace mailark::admin {
namespace {

bool stdout_is_tty() {
  return isatty(STDOUT_FILENO) == 1;
}

Result<std::unique_ptr<Services>> open(const std::string& config_path) {
  MK_ASSIGN_OR_RETURN(Config config, load_config(config_path));
  set_log_level(LogLevel::kWarn);
  return open_services(config);
}

int fail_status(const Status& s, int code = 1) {
  return fail(s.message(), code);
}

Result<std::string> read_password(bool from_stdin, bool* generated) {
  *generated = false;
  std::string pw;
  if (from_stdin) {
    if (!std::getline(std::cin, pw)) return invalid("no password on standard input");
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
    if (pw.empty()) return invalid("empty password on standard input");
    return pw;
  }
  if (isatty(STDIN_FILENO)) {
    termios old{};
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    std::string again;
    std::fprintf(stderr, "Password: ");
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
    std::getline(std::cin, pw);
    std::fprintf(stderr, "\nRepeat password: ");
    std::getline(std::cin, again);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
    if (pw != again) return invalid("passwords do not match");
    if (pw.empty()) return invalid("empty password");
    return pw;
  }
  // Not interactive and no --password-stdin: make one up and show it once.
  static const char kAlphabet[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  for (uint8_t byte : Guid::random().bytes) pw += kAlphabet[byte % (sizeof kAlphabet - 1)];
  *generated = true;
  return pw;
}

std::string date_only(int64_t ms) {
  return format_time_s(ms).substr(0, 10);
}

}  // namespace

int fail(const std::string& reason, int code) {
  std::fprintf(stderr, "mailark: %s\n", reason.c_str());
  return code;
}

int init(const std::string& dir, bool ephemeral_ports, const std::string& listen_address) {
  InitOptions options;
  options.ephemeral_ports = ephemeral_ports;
  options.listen_address = listen_address;
  char host[256] = {0};
  // The certificate names this host (when it has a domain) besides localhost.
  if (gethostname(host, sizeof host - 1) == 0 && host[0] && std::strchr(host, '.') != nullptr)
    options.hostname = host;
  Status s = init_data_dir(dir, options);
  if (!s.is_ok()) return fail_status(s);
  std::printf(
      "initialized %s\n  configuration: %s/mailark.toml\n  first database: db1\n"
      "  TLS: self-signed certificate %s/tls/cert.pem (replace it with a trusted one)\n",
      dir.c_str(), dir.c_str(), dir.c_str());
  return 0;
}

int serve(const std::string& config_path) {
  auto config = load_config(config_path);
  if (!config.is_ok()) return fail_status(config.status(), kExConfig);
  Status s = run_server(*config);
  if (!s.is_ok()) return fail_status(s);
  return 0;
}

int tenant_add(const std::string& config_path, const std::string& domain) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  Status s = (*sv)->directory->add_tenant(domain);
  if (!s.is_ok()) return fail_status(s);
  std::printf("tenant %s added\n", normalize_domain(domain).value().c_str());
  return 0;
}

int tenant_list(const std::string& config_path) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  auto tenants = (*sv)->directory->tenants();
  if (!tenants.is_ok()) return fail_status(tenants.status());
  std::printf("%-40s %6s  %s\n", "TENANT", "USERS", "CREATED");
  for (const auto& t : *tenants)
    std::printf("%-40s %6lld  %s\n", t.domain.c_str(), static_cast<long long>(t.users),
                date_only(t.created_ms).c_str());
  return 0;
}

int tenant_del(const std::string& config_path, const std::string& domain) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  Status s = (*sv)->directory->remove_tenant(domain);
  if (!s.is_ok()) return fail_status(s);
  std::printf("tenant %s deleted\n", domain.c_str());
  return 0;
}

int user_add(const std::string& config_path, const UserAddOptions& o) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  Services& s = **sv;
  uint64_t quota = 0;
  if (!o.quota.empty()) {
    auto q = parse_size(o.quota);
    if (!q) return fail("--quota must be a size such as 2GB, not '" + o.quota + "'");
    quota = *q;
  }
  auto address = normalize_address(o.address);
  if (!address.is_ok()) return fail_status(address.status());
  if (s.directory->find_user(*address).is_ok()) return fail("user " + *address + " already exists");
  bool generated = false;
  auto password = read_password(o.password_stdin, &generated);
  if (!password.is_ok()) return fail_status(password.status());
  auto user = s.directory->add_user(*address, *password, quota, o.database);
  if (!user.is_ok()) return fail_status(user.status());
  auto account = s.store->create_account(user->database, user->guid, user->address);
  if (!account.is_ok()) {
    (void)s.directory->remove_user(user->address);
    return fail("cannot create the mailbox of " + user->address + ": " +
                account.status().message());
  }
  std::printf("user %s added on database %s\n", user->address.c_str(), user->database.c_str());
  if (generated) std::printf("password: %s\n", password->c_str());
  return 0;
}

int user_list(const std::string& config_path, const std::string& domain) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  auto users = (*sv)->directory->users(domain);
  if (!users.is_ok()) return fail_status(users.status());
  std::printf("%-40s %-12s %12s %12s\n", "USER", "DATABASE", "USED", "QUOTA");
  for (const auto& u : *users) {
    std::string used = "-";
    auto account = (*sv)->store->account(u.database, u.address);
    if (account.is_ok()) {
      auto usage = (*sv)->store->usage(*account);
      if (usage.is_ok()) used = format_size(usage->bytes);
    } else {
      used = "unavailable";
    }
    std::printf("%-40s %-12s %12s %12s\n", u.address.c_str(), u.database.c_str(), used.c_str(),
                u.quota_bytes ? format_size(u.quota_bytes).c_str() : "unlimited");
  }
  return 0;
}

int user_del(const std::string& config_path, const std::string& address) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  auto user = (*sv)->directory->find_user(address);
  if (!user.is_ok()) return fail_status(user.status());
  Status s = (*sv)->directory->remove_user(user->address);
  if (!s.is_ok()) return fail_status(s);
  auto account = (*sv)->store->account(user->database, user->address);
  if (account.is_ok()) {
    Status d = (*sv)->store->delete_account(*account);
    if (!d.is_ok())
      return fail("user removed from the directory, but its mailbox on " + user->database +
                  " could not be deleted: " + d.message());
  }
  std::printf("user %s deleted\n", user->address.c_str());
  return 0;
}

int user_passwd(const std::string& config_path, const std::string& address, bool password_stdin) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  auto user = (*sv)->directory->find_user(address);
  if (!user.is_ok()) return fail_status(user.status());
  bool generated = false;
  auto password = read_password(password_stdin, &generated);
  if (!password.is_ok()) return fail_status(password.status());
  Status s = (*sv)->directory->set_password(user->address, *password);
  if (!s.is_ok()) return fail_status(s);
  std::printf("password of %s changed\n", user->address.c_str());
  if (generated) std::printf("password: %s\n", password->c_str());
  return 0;
}

int user_quota(const std::string& config_path, const std::string& address,
               const std::string& quota) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  uint64_t bytes = 0;
  if (quota != "unlimited" && quota != "0") {
    auto q = parse_size(quota);
    if (!q) return fail("quota must be a size such as 2GB or 'unlimited', not '" + quota + "'");
    bytes = *q;
  }
  Status s = (*sv)->directory->set_quota(address, bytes);
  if (!s.is_ok()) return fail_status(s);
  std::printf("quota of %s set to %s\n", address.c_str(),
              bytes ? format_size(bytes).c_str() : "unlimited");
  return 0;
}

int db_add(const std::string& config_path, const std::string& name) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  Status v = validate_database_name(name);
  if (!v.is_ok()) return fail_status(v);
  auto existing = (*sv)->directory->databases();
  if (!existing.is_ok()) return fail_status(existing.status());
  for (const auto& d : *existing)
    if (d.name == name) return fail("database " + name + " already exists");
  Status s = (*sv)->store->create_database(name);
  if (!s.is_ok()) return fail_status(s);
  s = (*sv)->directory->add_database(name);
  if (!s.is_ok()) return fail_status(s);
  std::printf("database %s created at %s\n", name.c_str(),
              (*sv)->store->database_dir(name).c_str());
  return 0;
}

int db_list(const std::string& config_path) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  auto dbs = (*sv)->directory->databases();
  if (!dbs.is_ok()) return fail_status(dbs.status());
  std::printf("%-16s %6s %10s %12s  %s\n", "DATABASE", "USERS", "ITEMS", "SIZE", "PATH");
  for (const auto& d : *dbs) {
    std::string dir = (*sv)->store->database_dir(d.name);
    auto st = database_stats(dir);
    std::printf("%-16s %6lld %10s %12s  %s\n", d.name.c_str(), static_cast<long long>(d.users),
                st.is_ok() ? std::to_string(st->items).c_str() : "?",
                st.is_ok() ? format_size(st->bytes).c_str() : "unavailable", dir.c_str());
  }
  return 0;
}

int db_recreate(const std::string& config_path, const std::string& name) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  Services& s = **sv;
  auto dbs = s.directory->databases();
  if (!dbs.is_ok()) return fail_status(dbs.status());
  bool known = false;
  for (const auto& d : *dbs) known = known || d.name == name;
  if (!known) return fail("no database " + name + " in the directory (use 'mailark db add')");
  std::string dir = s.store->database_dir(name);
  if (posix_fs().exists(dir + "/meta.sqlite"))
    return fail("database " + name + " still has files at " + dir + "; move them away first");
  Status c = s.store->create_database(name);
  if (!c.is_ok()) return fail_status(c);
  auto users = s.directory->users();
  if (!users.is_ok()) return fail_status(users.status());
  int created = 0;
  for (const auto& u : *users) {
    if (u.database != name) continue;
    auto a = s.store->create_account(name, u.guid, u.address);
    if (!a.is_ok()) return fail("mailbox of " + u.address + ": " + a.status().message());
    ++created;
  }
  std::printf("database %s recreated empty with %d mailboxes; refill it with 'mailark replay'\n",
              name.c_str(), created);
  return 0;
}

int deliver(const std::string& config_path, const std::vector<std::string>& to,
            const std::string& from) {
  // Postfix copies stderr into bounces: only the one "mailark:" line may appear there.
  auto sv = open(config_path);
  set_log_level(LogLevel::kOff);
  if (!sv.is_ok()) return fail_status(sv.status(), kExTempFail);
  Services& s = **sv;
  std::vector<User> users;
  for (const auto& addr : to) {
    auto user = s.delivery->resolve_recipient(addr);
    if (!user.is_ok()) {
      switch (user.status().code()) {
        case ErrorCode::kNotFound:
          return fail("<" + addr + ">: user unknown", kExNoUser);
        case ErrorCode::kInvalid:
          return fail("<" + addr + ">: " + user.status().message(), kExUsage);
        case ErrorCode::kOverQuota:
          return fail("<" + addr + ">: mailbox is full",
                      s.config.over_quota_temporary ? kExTempFail : kExCantCreat);
        default:
          return fail("<" + addr + ">: " + user.status().message(), kExTempFail);
      }
    }
    users.push_back(*user);
  }
  // Read at most one byte more than the limit, so an oversized message is refused without
  // holding all of it.
  std::string raw;
  const uint64_t limit = s.config.max_message_size;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
    raw.append(buf, n);
    if (raw.size() > limit + raw.size() / 20 + 1) break;
  }
  if (std::ferror(stdin)) return fail("cannot read the message from standard input", kExIoErr);
  std::string message = to_crlf(raw);
  if (message.size() > limit)
    return fail("message larger than the limit of " + format_size(limit), kExDataErr);
  if (message.find('\0') != std::string::npos)
    return fail("message contains NUL characters", kExDataErr);
  Guid ingress_id;
  auto results = s.delivery->deliver(from, users, std::move(message), &ingress_id);
  // Our exit code is the reply: from here on the MTA will not retry this message.
  s.delivery->acknowledge(ingress_id);
  int code = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    const Status& r = results[i];
    if (r.is_ok()) continue;
    int c = kExTempFail;
    if (r.code() == ErrorCode::kOverQuota)
      c = s.config.over_quota_temporary ? kExTempFail : kExCantCreat;
    else if (r.code() == ErrorCode::kTooLarge)
      c = kExDataErr;
    else if (r.code() == ErrorCode::kNotFound)
      c = kExNoUser;
    fail("<" + users[i].address + ">: " + r.message(), c);
    if (code == 0 || c == kExTempFail) code = c;
  }
  return code;
}

int check(const std::string& config_path, const std::string& database, bool quiet) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  std::vector<std::string> names;
  auto dbs = (*sv)->directory->databases();
  if (!dbs.is_ok()) return fail_status(dbs.status());
  for (const auto& d : *dbs)
    if (database.empty() || d.name == database) names.push_back(d.name);
  // A recovery database (made by `mailark restore --db`) is not in the directory.
  if (!database.empty() && names.empty() && validate_database_name(database).is_ok() &&
      posix_fs().exists((*sv)->store->database_dir(database) + "/meta.sqlite"))
    names.push_back(database);
  if (!database.empty() && names.empty()) return fail("no database " + database);
  bool show_progress = !quiet && stdout_is_tty();
  int bad = 0;
  for (const auto& name : names) {
    std::string dir = (*sv)->store->database_dir(name);
    CheckReport r = check_database(dir, name, [&](const std::string& step) {
      if (show_progress) std::fprintf(stderr, "\r%s: checking %-30s", name.c_str(), step.c_str());
    });
    if (show_progress) std::fprintf(stderr, "\r%60s\r", "");
    for (const auto& p : r.problems)
      std::printf("%s: PROBLEM %s: %s\n", name.c_str(), p.location.c_str(), p.what.c_str());
    if (!quiet)
      for (const auto& n : r.notes)
        std::printf("%s: note %s: %s\n", name.c_str(), n.location.c_str(), n.what.c_str());
    if (r.ok()) {
      std::printf("%s: ok (%llu accounts, %llu items, %llu blobs, %llu journal records)\n",
                  name.c_str(), static_cast<unsigned long long>(r.accounts),
                  static_cast<unsigned long long>(r.items),
                  static_cast<unsigned long long>(r.blobs),
                  static_cast<unsigned long long>(r.journal_records));
    } else {
      std::printf("%s: FAILED with %zu problems\n", name.c_str(), r.problems.size());
      ++bad;
    }
  }
  if (bad)
    return fail(std::to_string(bad) + " of " + std::to_string(names.size()) +
                (names.size() == 1 ? " database" : " databases") + " failed the check");
  return 0;
}

int stats(const std::string& config_path) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  auto dbs = (*sv)->directory->databases();
  if (!dbs.is_ok()) return fail_status(dbs.status());
  std::printf("%-16s %8s %10s %12s %12s %12s\n", "DATABASE", "ACCOUNTS", "ITEMS", "BYTES", "STORED",
              "JOURNAL");
  int failed = 0;
  for (const auto& d : *dbs) {
    auto st = database_stats((*sv)->store->database_dir(d.name));
    if (!st.is_ok()) {
      std::printf("%-16s unavailable: %s\n", d.name.c_str(), st.status().message().c_str());
      ++failed;
      continue;
    }
    std::printf("%-16s %8llu %10llu %12llu %12llu %12llu\n", d.name.c_str(),
                static_cast<unsigned long long>(st->accounts),
                static_cast<unsigned long long>(st->items),
                static_cast<unsigned long long>(st->bytes),
                static_cast<unsigned long long>(st->stored_bytes),
                static_cast<unsigned long long>(st->journal_records));
  }
  if (failed) return fail(std::to_string(failed) + " databases could not be read");
  return 0;
}

int replay(const std::string& config_path, const ReplayOptions& o) {
  auto sv = open(config_path);
  if (!sv.is_ok()) return fail_status(sv.status());
  Services& s = **sv;
  int64_t now = now_ms();
  int64_t since = 0, until = INT64_MAX;
  if (!o.since.empty()) {
    auto t = parse_time(o.since, now);
    if (!t)
      return fail("--since: cannot read time '" + o.since + "' (use 2026-11-24T10:00:00Z or -2h)");
    since = *t;
  } else if (!o.list) {
    return fail("--since is required (use --since -1d, or a time such as 2026-11-24T10:00:00Z)");
  }
  if (!o.until.empty()) {
    auto t = parse_time(o.until, now);
    if (!t) return fail("--until: cannot read time '" + o.until + "'");
    until = *t;
  }
  if (until <= since) return fail("--until must be after --since");
  std::string only_user;
  if (!o.user.empty()) {
    auto a = normalize_address(o.user);
    if (!a.is_ok()) return fail_status(a.status());
    only_user = *a;
    if (!o.list && !s.directory->find_user(only_user).is_ok()) return fail("no user " + only_user);
  }
  IngressScanStats scan_stats;
  if (o.list) {
    std::printf("%-24s %-32s %10s  %-30s %s\n", "TIME", "INGRESS ID", "BYTES", "FROM",
                "RECIPIENTS");
    uint64_t shown = 0;
    Status st = s.ingress->scan(
        since, until,
        [&](const IngressRecord& r) {
          std::string rcpts;
          bool match = only_user.empty();
          for (const auto& x : r.recipients) {
            if (!rcpts.empty()) rcpts += ",";
            rcpts += x;
            if (x == only_user) match = true;
          }
          if (!match) return Status::ok();
          ++shown;
          std::printf("%-24s %-32s %10zu  %-30s %s\n", format_time_ms(r.time_ms).c_str(),
                      r.id.hex().c_str(), r.message.size(), r.from.empty() ? "<>" : r.from.c_str(),
                      rcpts.c_str());
          return Status::ok();
        },
        &scan_stats);
    if (!st.is_ok()) return fail_status(st);
    std::printf(
        "%llu records shown; cache holds %llu records in %llu segments%s\n",
        static_cast<unsigned long long>(shown), static_cast<unsigned long long>(scan_stats.records),
        static_cast<unsigned long long>(scan_stats.segments),
        scan_stats.oldest_ms ? (", oldest " + format_time_s(scan_stats.oldest_ms)).c_str() : "");
    if (scan_stats.damaged)
      return fail(std::to_string(scan_stats.damaged) + " damaged records were skipped");
    return 0;
  }
  ReplayCounts counts;
  bool progress = !o.quiet && stdout_is_tty();
  Status st = s.ingress->scan(
      since, until,
      [&](const IngressRecord& r) {
        s.delivery->replay(r, only_user, &counts);
        if (progress && counts.records % 100 == 0)
          std::fprintf(stderr, "\rreplaying: %llu records",
                       static_cast<unsigned long long>(counts.records));
        return Status::ok();
      },
      &scan_stats);
  if (progress) std::fprintf(stderr, "\r%40s\r", "");
  if (!st.is_ok()) return fail_status(st);
  std::printf(
      "replayed %llu records: %llu delivered, %llu already present, %llu failed, "
      "%llu retried by the sender (skipped)\n",
      static_cast<unsigned long long>(counts.records),
      static_cast<unsigned long long>(counts.delivered),
      static_cast<unsigned long long>(counts.skipped),
      static_cast<unsigned long long>(counts.failed),
      static_cast<unsigned long long>(counts.retried));
  if (scan_stats.oldest_ms)
    std::printf("the ingress cache covers %s until now\n",
                format_time_s(scan_stats.oldest_ms).c_str());
  if (counts.failed)
    return fail(std::to_string(counts.failed) + " deliveries failed; see messages above");
  if (scan_stats.damaged)
    return fail(std::to_string(scan_stats.damaged) + " damaged ingress records were skipped");
  return 0;
}

}  // namespace mailark::admin
