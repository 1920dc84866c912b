// TOML configuration through toml++ (Debian libtomlplusplus-dev); kept to this one file
// because the header is heavy.
#include "server/config.h"

#include <toml++/toml.h>
#include <cstdlib>
#include <filesystem>

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

[tls]
# PEM certificate chain and private key for imaps and STARTTLS. 'mailark init' creates a
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

[log]
level = "info"
)toml";
}

}  // namespace mailark
