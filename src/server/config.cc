// TOML configuration through toml++ (Debian libtomlplusplus-dev); kept to this one file
// because the header is heavy.
#include "server/config.h"

#include <cstdlib>
#include <filesystem>
#include <toml++/toml.h>

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
  if (!t) return Status::ok();
  if (auto v = (*t)["enabled"].value<bool>()) out->enabled = *v;
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

Status read_duration(toml::node_view<toml::node> node, const char* what,
                     int64_t* out_ms) {
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
    return invalid("configuration " + path + " line " +
                   std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  Config c;
  c.config_path = path;
  std::string base = parent_dir(path);
  c.data_dir = resolve(base, root["data_dir"].value_or(std::string(".")));
  c.directory_path = resolve(c.data_dir, root["directory"]["path"].value_or(std::string("directory/directory.sqlite")));
  c.databases_path = resolve(c.data_dir, root["databases"]["path"].value_or(std::string("db")));
  c.ingress_path = resolve(c.data_dir, root["ingress"]["path"].value_or(std::string("ingress")));
  MK_RETURN_IF_ERROR(read_duration(root["ingress"]["max_age"], "ingress.max_age", &c.ingress.max_age_ms));
  MK_RETURN_IF_ERROR(read_size(root["ingress"]["max_size"], "ingress.max_size", &c.ingress.max_bytes));
  MK_RETURN_IF_ERROR(read_size(root["ingress"]["segment_size"], "ingress.segment_size", &c.ingress.segment_bytes));
  MK_RETURN_IF_ERROR(read_listener(root, "lmtp", &c.lmtp));
  MK_RETURN_IF_ERROR(read_size(root["delivery"]["max_message_size"], "delivery.max_message_size", &c.max_message_size));
  if (auto v = root["delivery"]["over_quota"].value<std::string>()) {
    if (*v == "temporary") c.over_quota_temporary = true;
    else if (*v == "permanent") c.over_quota_temporary = false;
    else return invalid("delivery.over_quota must be \"permanent\" or \"temporary\"");
  }
  c.recipient_delimiter = root["delivery"]["recipient_delimiter"].value_or(c.recipient_delimiter);
  c.delivery_threads = static_cast<int>(root["delivery"]["threads"].value_or(int64_t{c.delivery_threads}));
  if (c.delivery_threads < 1 || c.delivery_threads > 1024) return invalid("delivery.threads must be 1..1024");
  c.lmtp_timeout_s = static_cast<int>(root["lmtp"]["timeout_s"].value_or(int64_t{c.lmtp_timeout_s}));
  c.max_connections = static_cast<int>(root["server"]["max_connections"].value_or(int64_t{c.max_connections}));
  c.shutdown_grace_s = static_cast<int>(root["server"]["shutdown_grace_s"].value_or(int64_t{c.shutdown_grace_s}));
  if (auto v = root["log"]["level"].value<std::string>()) {
    if (!parse_log_level(*v, &c.log_level)) return invalid("log.level must be debug, info, warn or error");
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
