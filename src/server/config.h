// mailark.toml: the one configuration file. Relative paths are resolved against the
// directory holding the file. `default_config_text()` is what `mailark init` writes.
#pragma once

#include <cstdint>
#include <string>

#include "backup/backup.h"
#include "base/log.h"
#include "base/status.h"
#include "ingress/ingress_cache.h"

namespace mailark {

struct ListenerConfig {
  bool enabled = true;
  std::string address = "127.0.0.1";
  int port = 0;  // 0 = ephemeral; the chosen port is written to ports.json
};

struct Config {
  std::string config_path;
  std::string data_dir;        // holds ports.json, the pid file
  std::string directory_path;  // the directory's SQLite file
  std::string databases_path;  // one folder per database
  std::string ingress_path;
  IngressRetention ingress;

  ListenerConfig lmtp;
  // Off unless the configuration has the section ('mailark init' writes both), so a
  // configuration written before IMAP existed keeps starting as it did.
  ListenerConfig imap{false, "127.0.0.1", 143};
  ListenerConfig imaps{false, "127.0.0.1", 993};
  // CalDAV/CardDAV (and later the admin API) over HTTP; off for configurations written
  // before they existed.
  ListenerConfig http{false, "127.0.0.1", 8008};
  ListenerConfig https{false, "127.0.0.1", 8443};
  bool dav_plaintext_auth_loopback = true;
  uint64_t dav_max_resource_size = uint64_t{10} << 20;
  uint64_t dav_body_cache = uint64_t{32} << 20;  // recently read objects kept in memory
  int http_timeout_s = 300;
  int http_threads = 2;  // [http] threads; load_config sets one per core (at least 2)
  std::string tls_cert;  // PEM; empty or missing: no STARTTLS, and imaps cannot start
  std::string tls_key;
  int imap_timeout_s = 30 * 60;
  int imap_login_timeout_s = 60;
  bool imap_plaintext_auth_loopback = true;
  uint64_t imap_max_line = 64 * 1024;
  int imap_idle_poll_s = 30;
  int auth_max_failures = 10;
  int64_t auth_window_ms = 15 * 60 * 1000;
  int auth_failure_delay_ms = 2000;
  uint64_t max_message_size = uint64_t{50} << 20;
  bool over_quota_temporary = false;  // 452 4.2.2 instead of 552 5.2.2
  std::string recipient_delimiter = "+";
  int lmtp_timeout_s = 300;
  int max_connections = 1000;
  int shutdown_grace_s = 30;
  int delivery_threads = 32;

  LogLevel log_level = LogLevel::kInfo;

  // [backup], [backup.retention], [backup.health] and [[repository]]. Off when the
  // configuration has no [backup] section (one written before backups existed).
  BackupSettings backup;
};

Result<Config> load_config(const std::string& path);
std::string default_config_text();
// --config, else $MAILARK_CONFIG, else /etc/mailark/mailark.toml.
std::string resolve_config_path(const std::string& flag);

}  // namespace mailark
