// The HTTP/1.1 listener side (Boost.Beast): one coroutine per connection reads requests with
// bounded headers and bodies, runs the handler (on the connection's own thread when it
// waits for nothing, else on the blocking pool) and writes the answer.
// It knows nothing of DAV: CalDAV/CardDAV (and later the admin API) are handlers. Beast's
// headers stay inside http_server.cc; handlers see only these plain structs.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "net/net.h"

namespace mailark::http {

struct Request {
  std::string method;  // as sent, upper case by convention ("PROPFIND")
  std::string target;  // request-target, e.g. "/dav/calendars/a@b.test/default/"
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer;  // "ip:port"
  bool tls = false;
  bool loopback = false;
  // The first header of that name (case-insensitive), "" when absent.
  std::string header(std::string_view name) const;
  bool has_header(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Waited before the answer is sent (authentication failures); the connection is free
  // meanwhile for nothing else, as with IMAP.
  std::chrono::milliseconds delay{0};
  bool close = false;  // close the connection after this answer
  void set(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

// The reason phrase of a status code ("Multi-Status" for 207).
const char* status_text(int status);

// Runs on the blocking pool (it may block on the store), or on the connection's thread when
// `AtOnce` said so; must not throw.
using Handler = std::function<Response(const Request&)>;
// Whether the handler answers `request` without waiting on anything slow (no fsync, no
// password hashing, nothing but reads of the store): such requests run on the connection's
// own thread, which saves handing them to a pool thread and back. Called on that thread;
// must be quick and must not throw.
using AtOnce = std::function<bool(const Request&)>;

struct HttpOptions {
  std::string server_name = "mailark";
  int timeout_s = 300;                     // idle keep-alive and slow requests
  uint64_t max_body = uint64_t{16} << 20;  // larger bodies get 413 and a close
  uint32_t max_header = 32 * 1024;         // larger headers get 431 and a close
  int max_requests_per_connection = 10000;
};

class HttpService {
 public:
  HttpService(net::BlockingPool& pool, net::SessionRegistry& sessions, HttpOptions options,
              std::shared_ptr<net::TlsContext> tls, Handler handler, AtOnce at_once = {})
      : pool_(pool),
        sessions_(sessions),
        options_(std::move(options)),
        tls_(std::move(tls)),
        handler_(std::move(handler)),
        at_once_(std::move(at_once)) {}

  net::awaitable<void> serve(net::tcp::socket socket);
  // TLS from the first byte (https).
  net::awaitable<void> serve_tls(net::tcp::socket socket);

  net::BlockingPool& pool() { return pool_; }
  net::SessionRegistry& sessions() { return sessions_; }
  const HttpOptions& options() const { return options_; }
  const Handler& handler() const { return handler_; }
  bool at_once(const Request& request) const { return at_once_ && at_once_(request); }

 private:
  net::BlockingPool& pool_;
  net::SessionRegistry& sessions_;
  HttpOptions options_;
  std::shared_ptr<net::TlsContext> tls_;
  Handler handler_;
  AtOnce at_once_;
};

}  // namespace mailark::http
