// TOML configuration through toml++ (Debian libtomlplusplus-dev); kept to this one file
// because the header is heavy.
#include "server/config.h"

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "base/time.h"
#include "os/file.h"

namespace mailark {
namespace {

std::string resolve(const std::string& base, const std::string& path) {
  std::filesystem::path p = (path.empty() || path[0] == '/') ? std::filesystem::path(path)
                                                             : std::filesystem::path(base) / path;
  std::string out = p.lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

Status read_listener(const toml::table& root, const char* name, ListenerConfig* out) {
  const toml::table* t = root[name].as_table();
  if (!t) return Status::ok();  // absent: the built-in default (IMAP off for older configs)
  out->enabled = (*t)["enabled"].value_or(true);
  if (auto v = (*t)["address"].value<std::string>()) out->address = *v;
  if (auto v = (*t)["port"].value<int64_t>()) {
    if (*v < 0 || *v > 65535) return invalid(std::string(name) + ".port must be 0..65535");
    out->port = static_cast<int>(*v);
  }
  return Status::ok();
}

Status read_size(toml::node_view<toml::node> node, const char* what, uint64_t* out) {
  if (!node) return Status::ok();
  if (auto n = node.value<int64_t>()) {
    if (*n < 0) return invalid(std::string(what) + " must not be negative");
    *out = static_cast<uint64_t>(*n);
    return Status::ok();
  }
  auto s = node.value<std::string>();
  auto parsed = s ? parse_size(*s) : std::nullopt;
  if (!parsed) return invalid(std::string(what) + " must be a size such as \"50MB\"");
  *out = *parsed;
  return Status::ok();
}

Status read_duration(toml::node_view<toml::node> node, const char* what, int64_t* out_ms) {
  if (!node) return Status::ok();
  auto s = node.value<std::string>();
  auto parsed = s ? parse_duration_ms(*s) : std::nullopt;
  if (!parsed) return invalid(std::string(what) + " must be a duration such as \"7d\"");
  *out_ms = *parsed;
  return Status::ok();
}

Status read_int(toml::node_view<toml::node> node, const char* what, int lo, int hi, int* out) {
  if (!node) return Status::ok();
  auto v = node.value<int64_t>();
  if (!v || *v < lo || *v > hi)
    return invalid(std::string(what) + " must be a whole number " + std::to_string(lo) + ".." +
                   std::to_string(hi));
  *out = static_cast<int>(*v);
  return Status::ok();
}

Status read_repository(const toml::table& t, const std::string& data_dir, size_t index,
                       RepositorySettings* out) {
  std::string where = "repository #" + std::to_string(index + 1);
  auto name = t["name"].value<std::string>();
  if (!name || name->empty()) return invalid(where + " needs a name");
  for (char ch : *name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_'))
      return invalid("repository name '" + *name + "' may hold letters, digits, '-' and '_' only");
  out->name = *name;
  where = "repository " + *name;
  out->type = t["type"].value_or(std::string("local"));
  if (out->type == "local") {
    auto path = t["path"].value<std::string>();
    if (!path) return invalid(where + " (local) needs a path");
    out->path = resolve(data_dir, *path);
  } else if (out->type == "s3") {
    S3Settings& s3 = out->s3;
    auto endpoint = t["endpoint"].value<std::string>();
    auto bucket = t["bucket"].value<std::string>();
    if (!endpoint || !bucket) return invalid(where + " (s3) needs endpoint and bucket");
    s3.endpoint = *endpoint;
    s3.bucket = *bucket;
    s3.region = t["region"].value_or(s3.region);
    s3.prefix = t["prefix"].value_or(std::string());
    if (!s3.prefix.empty() && s3.prefix.back() != '/') s3.prefix += '/';
    s3.path_style = t["path_style"].value_or(true);
    if (auto ca = t["ca_file"].value<std::string>()) s3.ca_file = resolve(data_dir, *ca);
    s3.access_key = t["access_key"].value_or(std::string());
    s3.secret_key = t["secret_key"].value_or(std::string());
    if (auto f = t["secret_key_file"].value<std::string>()) {
      auto text = posix_fs().read_file(resolve(data_dir, *f));
      if (!text.is_ok()) return invalid(where + ": secret_key_file: " + text.status().message());
      s3.secret_key = *text;
      while (!s3.secret_key.empty() &&
             std::isspace(static_cast<unsigned char>(s3.secret_key.back())))
        s3.secret_key.pop_back();
    }
    if (s3.access_key.empty() || s3.secret_key.empty())
      return invalid(where + " (s3) needs access_key and secret_key or secret_key_file");
    if (auto v = t["timeout_s"].value<int64_t>()) s3.timeout_s = static_cast<int>(*v);
  } else {
    return invalid(where + ": type must be \"local\" or \"s3\"");
  }
  return Status::ok();
}

Status read_backup(toml::table& root, const std::string& data_dir, BackupSettings* b) {
  const toml::table* t = root["backup"].as_table();
  if (!t) return Status::ok();
  b->enabled = (*t)["enabled"].value_or(true);
  if (auto v = (*t)["key_file"].value<std::string>()) b->key_file = resolve(data_dir, *v);
  if (auto v = (*t)["passphrase_file"].value<std::string>())
    b->passphrase_file = resolve(data_dir, *v);
  if (b->key_file.empty() && b->passphrase_file.empty())
    return invalid("backup needs key_file or passphrase_file");
  b->cipher = (*t)["cipher"].value_or(b->cipher);
  MK_RETURN_IF_ERROR(parse_cipher(b->cipher).status());
  MK_RETURN_IF_ERROR(read_duration(root["backup"]["archive_interval"], "backup.archive_interval",
                                   &b->archive_interval_ms));
  if (b->archive_interval_ms < 100)
    return invalid("backup.archive_interval must be at least 100ms");
  if (auto v = (*t)["base_interval"].value<std::string>(); v && *v == "off") {
    b->base_interval_ms = 0;
  } else {
    MK_RETURN_IF_ERROR(read_duration(root["backup"]["base_interval"], "backup.base_interval",
                                     &b->base_interval_ms));
  }
  MK_RETURN_IF_ERROR(read_int(root["backup"]["scrub_rotation"], "backup.scrub_rotation", 1, 1000,
                              &b->scrub_rotation));
  if (auto v = (*t)["full_interval"].value<std::string>(); v && *v == "always") {
    b->full_interval_ms = 0;
  } else {
    MK_RETURN_IF_ERROR(read_duration(root["backup"]["full_interval"], "backup.full_interval",
                                     &b->full_interval_ms));
  }
  b->state_path = resolve(data_dir, (*t)["state"].value_or(std::string("backup-state.json")));
  RetentionPolicy& r = b->retention;
  auto ret = root["backup"]["retention"];
  MK_RETURN_IF_ERROR(
      read_int(ret["keep_last"], "backup.retention.keep_last", 1, 100000, &r.keep_last));
  MK_RETURN_IF_ERROR(
      read_int(ret["keep_hourly"], "backup.retention.keep_hourly", 0, 100000, &r.keep_hourly));
  MK_RETURN_IF_ERROR(
      read_int(ret["keep_daily"], "backup.retention.keep_daily", 0, 100000, &r.keep_daily));
  MK_RETURN_IF_ERROR(
      read_int(ret["keep_weekly"], "backup.retention.keep_weekly", 0, 100000, &r.keep_weekly));
  MK_RETURN_IF_ERROR(
      read_int(ret["keep_monthly"], "backup.retention.keep_monthly", 0, 100000, &r.keep_monthly));
  HealthThresholds& h = b->health;
  auto hv = root["backup"]["health"];
  MK_RETURN_IF_ERROR(
      read_duration(hv["backup_warn_age"], "backup.health.backup_warn_age", &h.backup_warn_ms));
  MK_RETURN_IF_ERROR(read_duration(hv["backup_critical_age"], "backup.health.backup_critical_age",
                                   &h.backup_critical_ms));
  MK_RETURN_IF_ERROR(read_duration(hv["archive_lag_warn"], "backup.health.archive_lag_warn",
                                   &h.archive_lag_warn_ms));
  MK_RETURN_IF_ERROR(read_duration(hv["archive_lag_critical"], "backup.health.archive_lag_critical",
                                   &h.archive_lag_critical_ms));
  if (const toml::array* repos = root["repository"].as_array()) {
    for (size_t i = 0; i < repos->size(); ++i) {
      const toml::table* rt = (*repos)[i].as_table();
      if (!rt) return invalid("[[repository]] entries must be tables");
      RepositorySettings rs;
      MK_RETURN_IF_ERROR(read_repository(*rt, data_dir, i, &rs));
      for (const auto& other : b->repositories)
        if (other.name == rs.name) return invalid("two repositories are named " + rs.name);
      b->repositories.push_back(std::move(rs));
    }
  }
  if (b->enabled && b->repositories.empty())
    return invalid("backup is enabled but no [[repository]] is configured");
  return Status::ok();
}

}  // namespace

std::string resolve_config_path(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("MAILARK_CONFIG"); env && *env) return env;
  return "/etc/mailark/mailark.toml";
}

Result<Config> load_config(const std::string& path) {
  if (!posix_fs().exists(path))
    return not_found("no configuration at " + path +
                     " (create one with 'mailark init DIR', then pass --config DIR/mailark.toml "
                     "or set MAILARK_CONFIG)");
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return invalid("configuration " + path + " line " + std::to_string(e.source().begin.line) +
                   ": " + std::string(e.description()));
  }
  Config c;
  c.config_path = path;
  std::string base = parent_dir(path);
  c.data_dir = resolve(base, root["data_dir"].value_or(std::string(".")));
  c.directory_path = resolve(
      c.data_dir, root["directory"]["path"].value_or(std::string("directory/directory.sqlite")));
  c.databases_path = resolve(c.data_dir, root["databases"]["path"].value_or(std::string("db")));
  c.ingress_path = resolve(c.data_dir, root["ingress"]["path"].value_or(std::string("ingress")));
  MK_RETURN_IF_ERROR(
      read_duration(root["ingress"]["max_age"], "ingress.max_age", &c.ingress.max_age_ms));
  MK_RETURN_IF_ERROR(
      read_size(root["ingress"]["max_size"], "ingress.max_size", &c.ingress.max_bytes));
  MK_RETURN_IF_ERROR(
      read_size(root["ingress"]["segment_size"], "ingress.segment_size", &c.ingress.segment_bytes));
  MK_RETURN_IF_ERROR(read_listener(root, "lmtp", &c.lmtp));
  MK_RETURN_IF_ERROR(read_listener(root, "imap", &c.imap));
  MK_RETURN_IF_ERROR(read_listener(root, "imaps", &c.imaps));
  MK_RETURN_IF_ERROR(read_listener(root, "http", &c.http));
  MK_RETURN_IF_ERROR(read_listener(root, "https", &c.https));
  if (auto v = root["dav"]["plaintext_auth"].value<std::string>()) {
    if (*v == "loopback")
      c.dav_plaintext_auth_loopback = true;
    else if (*v == "never")
      c.dav_plaintext_auth_loopback = false;
    else
      return invalid("dav.plaintext_auth must be \"loopback\" or \"never\"");
  }
  MK_RETURN_IF_ERROR(read_size(root["dav"]["max_resource_size"], "dav.max_resource_size",
                               &c.dav_max_resource_size));
  if (c.dav_max_resource_size < 1024) return invalid("dav.max_resource_size must be at least 1KB");
  MK_RETURN_IF_ERROR(read_size(root["dav"]["body_cache"], "dav.body_cache", &c.dav_body_cache));
  c.http_timeout_s =
      static_cast<int>(root["http"]["timeout_s"].value_or(int64_t{c.http_timeout_s}));
  if (c.http_timeout_s < 1) return invalid("http.timeout_s must be positive");
  c.http_threads = static_cast<int>(root["http"]["threads"].value_or(
      int64_t{std::max(2, static_cast<int>(std::thread::hardware_concurrency()))}));
  if (c.http_threads < 1 || c.http_threads > 256) return invalid("http.threads must be 1..256");
  if (auto v = root["tls"]["cert"].value<std::string>()) c.tls_cert = resolve(c.data_dir, *v);
  if (auto v = root["tls"]["key"].value<std::string>()) c.tls_key = resolve(c.data_dir, *v);
  c.imap_timeout_s =
      static_cast<int>(root["imap"]["timeout_s"].value_or(int64_t{c.imap_timeout_s}));
  if (c.imap_timeout_s < 1800)
    return invalid("imap.timeout_s must be at least 1800 (RFC 3501 5.4)");
  c.imap_login_timeout_s =
      static_cast<int>(root["imap"]["login_timeout_s"].value_or(int64_t{c.imap_login_timeout_s}));
  if (c.imap_login_timeout_s < 1) return invalid("imap.login_timeout_s must be positive");
  if (auto v = root["imap"]["plaintext_auth"].value<std::string>()) {
    if (*v == "loopback")
      c.imap_plaintext_auth_loopback = true;
    else if (*v == "never")
      c.imap_plaintext_auth_loopback = false;
    else
      return invalid("imap.plaintext_auth must be \"loopback\" or \"never\"");
  }
  MK_RETURN_IF_ERROR(read_size(root["imap"]["max_line"], "imap.max_line", &c.imap_max_line));
  if (c.imap_max_line < 1024 || c.imap_max_line > (16u << 20))
    return invalid("imap.max_line must be 1KB..16MB");
  c.imap_idle_poll_s =
      static_cast<int>(root["imap"]["idle_poll_s"].value_or(int64_t{c.imap_idle_poll_s}));
  if (c.imap_idle_poll_s < 1) return invalid("imap.idle_poll_s must be positive");
  c.auth_max_failures =
      static_cast<int>(root["auth"]["max_failures"].value_or(int64_t{c.auth_max_failures}));
  if (c.auth_max_failures < 1) return invalid("auth.max_failures must be positive");
  MK_RETURN_IF_ERROR(read_duration(root["auth"]["window"], "auth.window", &c.auth_window_ms));
  c.auth_failure_delay_ms =
      static_cast<int>(root["auth"]["failure_delay_ms"].value_or(int64_t{c.auth_failure_delay_ms}));
  if (c.auth_failure_delay_ms < 0 || c.auth_failure_delay_ms > 60000)
    return invalid("auth.failure_delay_ms must be 0..60000");
  MK_RETURN_IF_ERROR(read_size(root["delivery"]["max_message_size"], "delivery.max_message_size",
                               &c.max_message_size));
  if (auto v = root["delivery"]["over_quota"].value<std::string>()) {
    if (*v == "temporary")
      c.over_quota_temporary = true;
    else if (*v == "permanent")
      c.over_quota_temporary = false;
    else
      return invalid("delivery.over_quota must be \"permanent\" or \"temporary\"");
  }
  c.recipient_delimiter = root["delivery"]["recipient_delimiter"].value_or(c.recipient_delimiter);
  c.delivery_threads =
      static_cast<int>(root["delivery"]["threads"].value_or(int64_t{c.delivery_threads}));
  if (c.delivery_threads < 1 || c.delivery_threads > 1024)
    return invalid("delivery.threads must be 1..1024");
  c.lmtp_timeout_s =
      static_cast<int>(root["lmtp"]["timeout_s"].value_or(int64_t{c.lmtp_timeout_s}));
  c.max_connections =
      static_cast<int>(root["server"]["max_connections"].value_or(int64_t{c.max_connections}));
  c.shutdown_grace_s =
      static_cast<int>(root["server"]["shutdown_grace_s"].value_or(int64_t{c.shutdown_grace_s}));
  MK_RETURN_IF_ERROR(read_backup(root, c.data_dir, &c.backup));
  if (auto v = root["log"]["level"].value<std::string>()) {
    if (!parse_log_level(*v, &c.log_level))
      return invalid("log.level must be debug, info, warn or error");
  }
  return c;
}

std::string default_config_text() {
  return R"toml(# mailark configuration. Relative paths are relative to data_dir, which is relative to
# this file. Sizes take K/M/G suffixes ("50MB"); durations s/m/h/d/w ("14d").

# Where ports.json and the server's runtime files go.
data_dir = "."

[directory]
# Tenants, users, password hashes, quotas and routes. Keep it apart from the databases.
path = "directory/directory.sqlite"

[databases]
# One folder per database (SQLite file + blob store). May sit on its own disk.
path = "db"

[ingress]
# Replay cache of every accepted message. Put it on a different disk than the databases
# so that one failure never takes the means of recovery with it.
path = "ingress"
max_age = "14d"
max_size = "20GB"
segment_size = "64MB"

[lmtp]
enabled = true
address = "127.0.0.1"
# 0 picks a free port; every listener's port is written to ports.json in data_dir.
port = 24
timeout_s = 300

[imap]
enabled = true
address = "127.0.0.1"
port = 143
# Authenticated sessions are logged out after this many idle seconds (at least 1800).
timeout_s = 1800
# Connections that have not logged in yet.
login_timeout_s = 60
# "loopback": LOGIN and AUTHENTICATE PLAIN are allowed without TLS from 127.0.0.1 and ::1
# only (development, a webmail on the same host); "never": TLS is always required.
plaintext_auth = "loopback"
# Longest command line; literals (APPEND) are bounded by delivery.max_message_size.
max_line = "64KB"
# IDLE also checks every this many seconds for changes made by other processes.
idle_poll_s = 30

[imaps]
# IMAP over TLS from the first byte (RFC 8314).
enabled = true
address = "127.0.0.1"
port = 993

[http]
# CalDAV and CardDAV (calendars and contacts) over plain HTTP. Clients find them through
# /.well-known/caldav and /.well-known/carddav; the URLs are under /dav/.
enabled = true
address = "127.0.0.1"
port = 8008
# Idle keep-alive connections are closed after this many seconds.
timeout_s = 300
# Threads serving HTTP and HTTPS connections (default: one per core, at least 2). Reads
# are answered on them directly; changes and password checks go to the [delivery] pool.
# threads = 4

[https]
# The same over TLS (the certificate in [tls]).
enabled = true
address = "127.0.0.1"
port = 8443

[dav]
# "loopback": Basic authentication over plain http only from 127.0.0.1 and ::1;
# "never": https is always required.
plaintext_auth = "loopback"
# Largest event or contact a client may store (CALDAV/CARDDAV:max-resource-size).
max_resource_size = "10MB"
# Memory for events and contacts read recently (each still checked against its SHA-256 when
# read again); "0" keeps none.
body_cache = "32MB"

[tls]
# PEM certificate chain and private key for imaps, STARTTLS and https. 'mailark init' creates a
# self-signed pair; replace it with a certificate clients trust.
cert = "tls/cert.pem"
key = "tls/key.pem"

[auth]
# Failed logins are answered after a delay that doubles up to 4x; an address with this many
# failures within the window is refused until the window has passed.
max_failures = 10
window = "15m"
failure_delay_ms = 2000

[delivery]
max_message_size = "50MB"
# "permanent" answers 552 5.2.2 when a mailbox is full, "temporary" 452 4.2.2.
over_quota = "permanent"
# user+tag@domain is delivered to user@domain.
recipient_delimiter = "+"
threads = 32

[server]
max_connections = 1000
# Seconds to let in-flight deliveries finish after SIGTERM.
shutdown_grace_s = 30

[backup]
# Every base backup, the journal archive and every restore use this key. 'mailark init'
# created it (mode 0600). Without it no backup can be read: keep a copy somewhere safe
# ('mailark backup key export'). Alternatively passphrase_file = "..." (argon2id).
key_file = "backup.key"
cipher = "aes-256-gcm"
# New journal records (and the messages they reference) are shipped to every repository
# at least this often while the server runs.
archive_interval = "1s"
# Scheduled base backup to the first repository, then copied to the others ("off" to disable).
base_interval = "4h"
# A base backup is full (it reads every account, folder and item) when the newest full one
# is older than this ("always": every one); in between they are incremental: the journal
# since the full one is archived and the bodies it names verified, which takes seconds.
full_interval = "1d"
# Each full base backup re-reads 1/N of the message bodies already backed up, so every
# stored body is verified again every N full backups ('backup run --verify-all' reads them
# all). Incremental ones re-read the blob files modified since the previous backup.
scrub_rotation = 24
# Outcomes of backups and archive runs, read by 'mailark health'.
state = "backup-state.json"

[backup.retention]
# 'mailark backup prune' keeps these base backups per database (the newest always).
keep_last = 3
keep_hourly = 24
keep_daily = 7
keep_weekly = 4
keep_monthly = 12

[backup.health]
# 'mailark health' turns warning/critical past these ages.
backup_warn_age = "9h"
backup_critical_age = "25h"
archive_lag_warn = "1m"
archive_lag_critical = "15m"

# Repositories, in the order restores try them. Put the local one on another disk than the
# databases; add an off-site one:
#   [[repository]]
#   name = "offsite"
#   type = "s3"
#   endpoint = "https://s3.eu-central-1.amazonaws.com"
#   region = "eu-central-1"
#   bucket = "acme-mail-backup"
#   prefix = "mailark/"
#   access_key = "AKIA..."
#   secret_key_file = "s3.secret"
[[repository]]
name = "local"
type = "local"
path = "backup"

[log]
level = "info"
)toml";
}

}  // namespace mailark
