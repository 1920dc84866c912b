// LOGIN (RFC 3501 6.2.3) and AUTHENTICATE PLAIN (RFC 3501 6.2.2, RFC 4616, SASL-IR RFC 4959):
// the plaintext-without-TLS policy, failure delays and per-address limits, and opening the
// user's account. A session only ever sees the account it authenticated as.
#include <algorithm>

#include "base/base64.h"
#include "base/log.h"
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

namespace {

bool plaintext_allowed(const ImapContext& ctx) {
  return ctx.tls || (ctx.loopback && ctx.options().plaintext_auth_loopback);
}

void log_in(ImapContext& ctx, std::string_view login, std::string_view password) {
  AuthLimiter& limiter = ctx.service.auth_limiter();
  std::string address = peer_address(ctx.peer);
  if (limiter.blocked(address)) {
    MK_LOG_WARN("imap: authentication from {} refused: too many failures", address);
    ctx.delay = limiter.limits().failure_delay;
    return ctx.no("[UNAVAILABLE] Too many authentication failures; try again later");
  }
  Directory& directory = ctx.service.directory();
  auto normalized = normalize_address(login);
  bool good = false;
  if (normalized.is_ok()) {
    auto checked = directory.authenticate(*normalized, password);
    if (!checked.is_ok()) {
      MK_LOG_WARN("imap: cannot check credentials: {}", checked.status().to_string());
      return ctx.no("[UNAVAILABLE] Temporary failure, try again later");
    }
    good = *checked;
  }
  if (!good) {
    ctx.delay = limiter.failed(address);
    MK_LOG_INFO("imap: authentication failed for {} from {}", std::string(login).substr(0, 128),
                address);
    return ctx.no("[AUTHENTICATIONFAILED] Authentication failed");
  }
  auto user = directory.find_user(*normalized);
  if (!user.is_ok()) return ctx.no("[UNAVAILABLE] Temporary failure, try again later");
  auto account = ctx.store().open_or_create_account(user->database, user->guid, user->address);
  if (!account.is_ok()) {
    MK_LOG_WARN("imap: cannot open the account of {}: {}", user->address,
                account.status().to_string());
    return ctx.no("[UNAVAILABLE] Mailbox is not available, try again later");
  }
  ctx.account = *account;
  ctx.account->quota_bytes = user->quota_bytes;
  ctx.user = user->address;
  ctx.state = SessionState::kAuthenticated;
  MK_LOG_INFO("imap: {} logged in from {}", ctx.user, address);
  ctx.ok("[CAPABILITY " + capabilities(ctx) + "] Logged in");
}

// RFC 4616 message: [authzid] NUL authcid NUL passwd.
void plain_response(ImapContext& ctx, std::string_view encoded) {
  auto decoded = base64_decode(encoded);
  if (!decoded) return ctx.bad("Invalid base64 in the authentication response");
  std::string_view msg = *decoded;
  size_t first = msg.find('\0');
  size_t second = first == std::string_view::npos ? first : msg.find('\0', first + 1);
  if (second == std::string_view::npos || msg.find('\0', second + 1) != std::string_view::npos)
    return ctx.bad("Malformed PLAIN authentication response");
  std::string_view authzid = msg.substr(0, first);
  std::string_view authcid = msg.substr(first + 1, second - first - 1);
  std::string_view password = msg.substr(second + 1);
  if (!authzid.empty()) {
    auto a = normalize_address(authzid);
    auto b = normalize_address(authcid);
    if (!a.is_ok() || !b.is_ok() || *a != *b)
      return ctx.no("[AUTHORIZATIONFAILED] Authorization identity must be the login");
  }
  log_in(ctx, authcid, password);
}

}  // namespace

void cmd_login(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.size() != 2 || !cmd.args[0].is_astring() || !cmd.args[1].is_astring())
    return ctx.bad("LOGIN takes a user name and a password");
  if (!plaintext_allowed(ctx))
    return ctx.no("[PRIVACYREQUIRED] Plaintext authentication is disabled; use STARTTLS");
  log_in(ctx, cmd.args[0].text, cmd.args[1].text);
}

void cmd_authenticate(ImapContext& ctx, const Command& cmd) {
  if (cmd.args.empty() || cmd.args.size() > 2 || !cmd.args[0].is_atom())
    return ctx.bad("AUTHENTICATE takes a mechanism and an optional initial response");
  if (cmd.args[0].upper() != "PLAIN")
    return ctx.no("[CANNOT] Unsupported authentication mechanism");
  if (!plaintext_allowed(ctx))
    return ctx.no("[PRIVACYREQUIRED] Plaintext authentication is disabled; use STARTTLS");
  if (cmd.args.size() == 2) {
    if (!cmd.args[1].is_atom()) return ctx.bad("Invalid initial response");
    // SASL-IR: "=" is an empty initial response.
    return plain_response(ctx, cmd.args[1].text == "=" ? std::string_view() : cmd.args[1].text);
  }
  ctx.out += "+ \r\n";
  ctx.then = ImapContext::Then::kAuthContinue;
  ctx.auth_continue = [](ImapContext& c, std::string_view line) { plain_response(c, line); };
}

}  // namespace mailark::imap
