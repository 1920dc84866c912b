// Server lifecycle.
#include "server/server.h"
#include "server/backup_service.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include <boost/asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/time.h"
#include "net/net.h"
#include "os/file.h"
#include "protocol/dav/dav_service.h"
#include "protocol/http/http_server.h"
#include "protocol/imap/imap_session.h"
#include "protocol/lmtp/lmtp_session.h"
#include "server/services.h"
#include "storage/database.h"

namespace mailark {

namespace asio = boost::asio;

static std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

Status run_server(const Config& config) {
  set_log_level(config.log_level);
  // Dozens of blocking-pool threads would otherwise each get a malloc arena that keeps the
  // memory of the largest message it ever saw.
  mallopt(M_ARENA_MAX, 4);
  // A fixed mmap threshold: big transient buffers (large messages, the item list of a large
  // folder being selected) go back to the system when freed instead of staying in an arena
  // (glibc would otherwise raise the threshold after the first such free and keep them on
  // the heap). argon2 has its own scratch buffers.
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  set_reader_mmap_bytes(int64_t{4} << 30);
  // One server per data directory: a second would share the journal, the ingress cache and
  // the archive with the first. The lock goes with the process, also on kill -9.
  const std::string lock_path = join_path(config.data_dir, "server.lock");
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) return io_error("cannot open " + lock_path + ": " + std::strerror(errno));
  struct LockHolder {
    int fd;
    ~LockHolder() { ::close(fd); }
  } lock_holder{lock_fd};
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
    return conflict("another mailark server is already serving " + config.data_dir + " (" +
                    lock_path + " is locked)");
  MK_ASSIGN_OR_RETURN(auto services, open_services(config));
  std::string ports_path = join_path(config.data_dir, "ports.json");
  if (posix_fs().exists(ports_path)) (void)posix_fs().remove(ports_path);

  asio::io_context io(1);
  // HTTP connections run on threads of their own, each with its io_context and its own
  // listeners on the shared port(s): the kernel spreads new connections over them, a read
  // is answered on the thread its request woke (no hand-off to a pool thread and back), and
  // a slow one holds up the connections of its thread only, never IMAP or LMTP. Declared
  // before the pool: pool jobs post their results to these io_contexts.
  std::vector<std::unique_ptr<asio::io_context>> http_ios;
  const bool http_on = config.http.enabled || config.https.enabled;
  for (int i = 0; http_on && i < config.http_threads; ++i)
    http_ios.push_back(std::make_unique<asio::io_context>(1));
  std::vector<std::thread> http_threads;
  auto stop_http_threads = [&] {
    for (auto& h : http_ios) h->stop();
    for (auto& t : http_threads) t.join();
    http_threads.clear();
  };
  // Signals are caught from before ports.json exists, so a SIGTERM sent as soon as the
  // server looks ready is always a clean stop.
  asio::signal_set signals(io, SIGTERM, SIGINT);
  net::BlockingPool pool(config.delivery_threads);
  net::SessionRegistry sessions;
  std::vector<std::unique_ptr<net::Listener>> listeners;

  lmtp::LmtpOptions lmtp_options;
  lmtp_options.hostname = host_name();
  lmtp_options.timeout_s = config.lmtp_timeout_s;
  lmtp_options.over_quota_temporary = config.over_quota_temporary;
  lmtp::LmtpService lmtp_service(*services->delivery, pool, sessions, lmtp_options);
  if (config.lmtp.enabled) {
    auto l = std::make_unique<net::Listener>(
        io, "lmtp", [&](net::tcp::socket s) { return lmtp_service.serve(std::move(s)); },
        config.max_connections, "421 4.3.2 Too many connections, try again later\r\n");
    MK_RETURN_IF_ERROR(l->listen(config.lmtp.address, config.lmtp.port));
    listeners.push_back(std::move(l));
  }

  std::shared_ptr<net::TlsContext> tls;
  if (!config.tls_cert.empty() && posix_fs().exists(config.tls_cert)) {
    MK_ASSIGN_OR_RETURN(tls, net::TlsContext::load(config.tls_cert, config.tls_key));
  } else if (config.imaps.enabled) {
    return not_found("imaps is enabled but there is no TLS certificate at " + config.tls_cert);
  } else {
    MK_LOG_WARN("no TLS certificate at {}: IMAP offers no STARTTLS", config.tls_cert);
  }
  AuthLimits auth_limits;
  auth_limits.max_failures = config.auth_max_failures;
  auth_limits.window = std::chrono::seconds(config.auth_window_ms / 1000);
  auth_limits.failure_delay = std::chrono::milliseconds(config.auth_failure_delay_ms);
  AuthLimiter auth_limiter(auth_limits);
  imap::ImapOptions imap_options;
  imap_options.hostname = lmtp_options.hostname;
  imap_options.timeout_s = config.imap_timeout_s;
  imap_options.login_timeout_s = config.imap_login_timeout_s;
  imap_options.plaintext_auth_loopback = config.imap_plaintext_auth_loopback;
  imap_options.max_line = config.imap_max_line;
  imap_options.max_message_size = config.max_message_size;
  imap_options.max_literal = config.max_message_size;
  imap_options.idle_poll_s = config.imap_idle_poll_s;
  imap::ImapService imap_service(*services->directory, *services->store, pool, sessions,
                                 auth_limiter, imap_options, tls);
  std::string imap_refusal = "* BYE [UNAVAILABLE] Too many connections, try again later\r\n";
  if (config.imap.enabled) {
    auto l = std::make_unique<net::Listener>(
        io, "imap", [&](net::tcp::socket s) { return imap_service.serve(std::move(s)); },
        config.max_connections, imap_refusal);
    MK_RETURN_IF_ERROR(l->listen(config.imap.address, config.imap.port));
    listeners.push_back(std::move(l));
  }
  if (config.imaps.enabled) {
    auto l = std::make_unique<net::Listener>(
        io, "imaps", [&](net::tcp::socket s) { return imap_service.serve_tls(std::move(s)); },
        config.max_connections);
    MK_RETURN_IF_ERROR(l->listen(config.imaps.address, config.imaps.port));
    listeners.push_back(std::move(l));
  }

  services->store->set_body_cache_bytes(config.dav_body_cache);
  dav::DavOptions dav_options;
  dav_options.plaintext_auth_loopback = config.dav_plaintext_auth_loopback;
  dav_options.max_resource_size = config.dav_max_resource_size;
  dav::DavService dav_service(*services->directory, *services->store, auth_limiter, dav_options);
  http::HttpOptions http_options;
  http_options.timeout_s = config.http_timeout_s;
  // Room for the largest object plus XML around it; larger bodies get 413.
  http_options.max_body = std::max<uint64_t>(config.dav_max_resource_size + (1 << 20), 4 << 20);
  http::HttpService http_service(
      pool, sessions, http_options, tls,
      [&dav_service](const http::Request& r) { return dav_service.handle(r); },
      [&dav_service](const http::Request& r) { return dav_service.answers_at_once(r); });
  // One listener per HTTP thread and address, all on the port the first one got.
  auto listen_http = [&](const ListenerConfig& where, const char* name,
                         net::Listener::Serve serve) -> Status {
    net::Listener* first = nullptr;
    for (auto& h : http_ios) {
      auto l = std::make_unique<net::Listener>(*h, name, serve, config.max_connections);
      if (first) l->share_connection_limit(*first);
      MK_RETURN_IF_ERROR(
          first ? l->listen(where.address, first->port(), net::Listener::Sharing::kJoin)
                : l->listen(where.address, where.port, net::Listener::Sharing::kFirst));
      if (!first) first = l.get();
      listeners.push_back(std::move(l));
    }
    return Status::ok();
  };
  if (config.http.enabled)
    MK_RETURN_IF_ERROR(listen_http(
        config.http, "http", [&](net::tcp::socket s) { return http_service.serve(std::move(s)); }));
  if (config.https.enabled) {
    if (!tls)
      return not_found("https is enabled but there is no TLS certificate at " + config.tls_cert);
    MK_RETURN_IF_ERROR(listen_http(config.https, "https", [&](net::tcp::socket s) {
      return http_service.serve_tls(std::move(s));
    }));
  }

  nlohmann::json ports = nlohmann::json::object();
  for (auto& l : listeners) {
    if (ports.contains(l->name())) continue;  // one of the HTTP threads' listeners
    ports[l->name()] = l->port();
    MK_LOG_INFO("{} listening on port {}", l->name(), l->port());
  }
  MK_RETURN_IF_ERROR(publish_file(posix_fs(), ports_path, ports.dump() + "\n"));
  for (auto& l : listeners) l->start();
  for (auto& h : http_ios) http_threads.emplace_back([&context = *h] { context.run(); });

  BackupService backups(*services);
  backups.start();

  // Housekeeping: ingress retention at start and every ten minutes.
  asio::steady_timer housekeeping(io);
  bool stopping = false;
  asio::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        while (!stopping) {
          auto prune = [&] { return services->ingress->prune(now_ms()); };
          auto removed = co_await pool.run(std::move(prune));
          if (!removed.is_ok())
            MK_LOG_WARN("ingress retention failed: {}", removed.status().to_string());
          else if (*removed)
            MK_LOG_INFO("ingress retention removed {} segments", *removed);
          malloc_trim(0);       // give back what bursts of work left free in the arenas
          if (stopping) break;  // SIGTERM arrived while the prune ran: the timer was not armed yet
          housekeeping.expires_after(std::chrono::minutes(10));
          boost::system::error_code ec;
          co_await housekeeping.async_wait(asio::redirect_error(asio::use_awaitable, ec));
          if (ec) break;
        }
      },
      asio::detached);

  asio::steady_timer grace(io);
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) return;
    stopping = true;
    MK_LOG_INFO("signal {}: stopping; no new connections, finishing in-flight work", signo);
    for (auto& l : listeners) l->stop();
    housekeeping.cancel();
    sessions.shut_down();
    grace.expires_after(std::chrono::seconds(config.shutdown_grace_s));
    grace.async_wait([&](boost::system::error_code gec) {
      if (gec) return;
      MK_LOG_WARN("shutdown grace period over with {} sessions left; exiting", sessions.size());
      for (auto& h : http_ios) h->stop();
      io.stop();
    });
    // io.run() returns once every session has ended; the grace timer must not hold it.
    asio::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
          asio::steady_timer poll(io);
          while (sessions.size() > 0) {
            poll.expires_after(std::chrono::milliseconds(20));
            co_await poll.async_wait(asio::use_awaitable);
          }
          grace.cancel();
        },
        asio::detached);
  });

  MK_LOG_INFO("mailark serving (pid {})", static_cast<int>(getpid()));
  io.run();
  // Every session has ended (or the grace period is over): the HTTP threads have at most
  // closing listeners and unfinished TLS handshakes left.
  stop_http_threads();
  backups.stop();
  pool.join();
  MK_LOG_INFO("mailark stopped");
  return Status::ok();
}

}  // namespace mailark
