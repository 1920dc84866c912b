// The opened data directory: configuration, directory, mail store, ingress cache and the
// delivery service over them. Shared by `mailark serve` and the admin subcommands, which
// work on the same files whether or not the server runs.
#pragma once

#include <memory>

#include "delivery/delivery.h"
#include "directory/directory.h"
#include "ingress/ingress_cache.h"
#include "mailstore/mail_store.h"
#include "server/config.h"

namespace mailark {

struct Services {
  Config config;
  std::unique_ptr<Directory> directory;
  std::unique_ptr<MailStore> store;
  std::unique_ptr<IngressCache> ingress;
  std::unique_ptr<Delivery> delivery;
};

// Opens everything the configuration names. The directory must exist (`mailark init`).
Result<std::unique_ptr<Services>> open_services(const Config& config);

// `mailark init DIR`: writes DIR/mailark.toml and the layout, and creates database "db1".
struct InitOptions {
  bool ephemeral_ports = false;  // port = 0 everywhere (development, tests)
  std::string listen_address = "127.0.0.1";
  std::string hostname = "localhost";  // the self-signed certificate's name
};
Status init_data_dir(const std::string& dir, const InitOptions& options);

}  // namespace mailark
