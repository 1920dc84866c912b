// `mailark serve`: wires listeners to services, writes ports.json, runs until SIGTERM or
// SIGINT, then stops accepting, lets in-flight deliveries finish and exits.
#pragma once

#include "base/status.h"
#include "server/config.h"

namespace mailark {

Status run_server(const Config& config);

}  // namespace mailark
