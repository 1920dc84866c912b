// Opening and initializing a data directory.
#include "server/services.h"

#include "os/file.h"
#include "server/certificate.h"

#include <cstring>

namespace mailark {

Result<std::unique_ptr<Services>> open_services(const Config& config) {
  auto s = std::make_unique<Services>();
  s->config = config;
  if (!posix_fs().exists(config.directory_path))
    return not_found("no directory at " + config.directory_path + " (run 'mailark init')");
  MK_ASSIGN_OR_RETURN(s->directory, Directory::open(config.directory_path, false));
  MK_RETURN_IF_ERROR(posix_fs().make_dirs(config.databases_path));
  s->store = std::make_unique<MailStore>(posix_fs(), config.databases_path);
  MK_ASSIGN_OR_RETURN(s->ingress,
                      IngressCache::open(posix_fs(), config.ingress_path, config.ingress));
  DeliveryOptions d;
  d.max_message_size = config.max_message_size;
  d.recipient_delimiter = config.recipient_delimiter;
  s->delivery = std::make_unique<Delivery>(*s->directory, *s->store, *s->ingress, d);
  return s;
}

Status init_data_dir(const std::string& dir, const InitOptions& options) {
  FileSystem& fs = posix_fs();
  std::string config_path = join_path(dir, "mailark.toml");
  if (fs.exists(config_path)) return exists_error(config_path + " already exists");
  MK_RETURN_IF_ERROR(fs.make_dirs(dir));
  std::string text = default_config_text();
  if (options.ephemeral_ports) {
    for (const char* port : {"\nport = 24\n", "\nport = 143\n", "\nport = 993\n", "\nport = 8008\n",
                             "\nport = 8443\n"}) {
      size_t pos = text.find(port);
      if (pos != std::string::npos) text.replace(pos, std::strlen(port), "\nport = 0\n");
    }
  }
  if (options.listen_address != "127.0.0.1") {
    size_t pos;
    std::string from = "address = \"127.0.0.1\"";
    while ((pos = text.find(from)) != std::string::npos)
      text.replace(pos, from.size(), "address = \"" + options.listen_address + "\"");
  }
  MK_RETURN_IF_ERROR(publish_file(fs, config_path, text));
  MK_ASSIGN_OR_RETURN(Config config, load_config(config_path));
  MK_RETURN_IF_ERROR(fs.make_dirs(parent_dir(config.directory_path)));
  MK_RETURN_IF_ERROR(fs.make_dirs(config.databases_path));
  MK_RETURN_IF_ERROR(fs.make_dirs(config.ingress_path));
  {
    MK_ASSIGN_OR_RETURN(auto directory, Directory::open(config.directory_path, true));
    MK_RETURN_IF_ERROR(directory->add_database("db1"));
  }
  if (!config.tls_cert.empty() && !config.tls_key.empty() && !fs.exists(config.tls_cert)) {
    MK_RETURN_IF_ERROR(fs.make_dirs(parent_dir(config.tls_cert)));
    MK_RETURN_IF_ERROR(fs.make_dirs(parent_dir(config.tls_key)));
    Status cert = create_self_signed_certificate(config.tls_cert, config.tls_key, options.hostname);
    // A host name the certificate cannot carry: the certificate still names localhost.
    if (cert.code() == ErrorCode::kInvalid && options.hostname != "localhost")
      cert = create_self_signed_certificate(config.tls_cert, config.tls_key, "localhost");
    MK_RETURN_IF_ERROR(cert);
  }
  MailStore store(fs, config.databases_path);
  MK_RETURN_IF_ERROR(store.create_database("db1"));
  // Backups work unattended from the first minute: a key (0600) and the local repository.
  if (config.backup.enabled) {
    if (!config.backup.key_file.empty() && !fs.exists(config.backup.key_file)) {
      MK_ASSIGN_OR_RETURN(BackupKey key, BackupKey::generate());
      MK_RETURN_IF_ERROR(publish_secret_file(fs, config.backup.key_file, key.to_text()));
    }
    BackupEngine backups(fs, store, config.backup);
    MK_RETURN_IF_ERROR(backups.repository("", /*create=*/true).status());
  }
  MK_RETURN_IF_ERROR(fs.sync_dir(dir));
  return Status::ok();
}

}  // namespace mailark
