// The IMAP server side (RFC 3501, RFC 9051 and the extensions in capabilities()): one
// coroutine per connection reads whole commands (lines and literals), and the command
// handlers in commands/ run on the blocking pool against the mail store.
#pragma once

#include <memory>
#include <string>

#include "directory/directory.h"
#include "mailstore/mail_store.h"
#include "net/net.h"
#include "protocol/auth_limiter.h"
#include "protocol/imap/mailbox_view.h"

namespace mailark::imap {

struct ImapOptions {
  std::string hostname;
  int login_timeout_s = 60;             // before authentication
  int timeout_s = 30 * 60;              // authenticated (RFC 3501 5.4: at least 30 minutes)
  bool plaintext_auth_loopback = true;  // LOGIN / PLAIN without TLS, only from loopback
  size_t max_line = 64 * 1024;
  uint64_t max_literal = uint64_t{64} << 20;  // APPEND size limit (and every other literal)
  uint64_t max_message_size = uint64_t{50} << 20;
  int max_bad_commands = 20;  // consecutive BADs before the server hangs up
  int idle_poll_s = 30;       // IDLE also looks for changes made by other processes
};

class ImapSession;

class ImapService {
 public:
  ImapService(Directory& directory, MailStore& store, net::BlockingPool& pool,
              net::SessionRegistry& sessions, AuthLimiter& auth_limiter, ImapOptions options,
              std::shared_ptr<net::TlsContext> tls)
      : directory_(directory),
        store_(store),
        pool_(pool),
        sessions_(sessions),
        auth_limiter_(auth_limiter),
        options_(std::move(options)),
        tls_(std::move(tls)) {}

  // Port 143 style: plaintext, STARTTLS when a certificate is configured.
  net::awaitable<void> serve(net::tcp::socket socket);
  // Port 993 style: TLS from the first byte.
  net::awaitable<void> serve_tls(net::tcp::socket socket);

  Directory& directory() { return directory_; }
  MailStore& store() { return store_; }
  AuthLimiter& auth_limiter() { return auth_limiter_; }
  RecentClaims& recent() { return recent_; }
  const ImapOptions& options() const { return options_; }
  bool tls_available() const { return tls_ != nullptr; }

 private:
  friend class ImapSession;
  net::awaitable<void> run_session(net::tcp::socket socket, bool implicit_tls);

  Directory& directory_;
  MailStore& store_;
  net::BlockingPool& pool_;
  net::SessionRegistry& sessions_;
  AuthLimiter& auth_limiter_;
  ImapOptions options_;
  std::shared_ptr<net::TlsContext> tls_;
  RecentClaims recent_;
};

}  // namespace mailark::imap
