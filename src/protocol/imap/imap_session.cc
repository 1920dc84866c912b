// IMAP session: greeting, command framing (lines, literals, "+" continuations), dispatch to
// the command table on the blocking pool, and the commands that talk to the connection
// themselves (STARTTLS, IDLE, AUTHENTICATE's continuation, LOGOUT).
#include "protocol/imap/imap_session.h"

#include <boost/asio/this_coro.hpp>

#include "base/log.h"
#include "protocol/imap/imap_context.h"

namespace mailark::imap {

using net::awaitable;
namespace asio = net::asio;

namespace {

std::string tag_of(std::string_view line) {
  size_t end = 0;
  while (end < line.size() && end < 64 && line[end] > ' ' && line[end] < 0x7f && line[end] != '{' &&
         line[end] != '(' && line[end] != ')' && line[end] != '%' && line[end] != '*' &&
         line[end] != '"' && line[end] != '\\' && line[end] != '+')
    ++end;
  if (end == 0 || end == line.size() || line[end] != ' ') return "*";
  return std::string(line.substr(0, end));
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::toupper(static_cast<unsigned char>(a[i])) !=
        std::toupper(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

// Before authentication nothing needs more than a password: small literals and commands, so
// an unauthenticated peer cannot make the server buffer megabytes.
CommandFramer::Limits login_limits(const ImapOptions& o) {
  return CommandFramer::Limits{std::min<size_t>(o.max_line, 8192), 8192, 16384};
}

CommandFramer::Limits session_limits(const ImapOptions& o) {
  return CommandFramer::Limits{o.max_line, o.max_literal, o.max_literal + 1024 * 1024};
}

// Replies are held back while pipelined commands are waiting, up to this much.
constexpr size_t kMaxHeldOutput = 64 * 1024;

}  // namespace

// One connection. Each step is a small member coroutine (see net.h on GCC 12).
class ImapSession : public std::enable_shared_from_this<ImapSession> {
 public:
  ImapSession(ImapService& service, std::shared_ptr<net::Connection> conn)
      : service_(service),
        conn_(std::move(conn)),
        ctx_(service),
        framer_(login_limits(service.options())),
        idle_timer_(conn_executor()),
        idle_done_timer_(conn_executor()) {}
  ~ImapSession();

  awaitable<void> run(bool implicit_tls);

 private:
  enum class Read { kCommand, kTooLarge, kLineTooLong, kUnfollowable, kClosed };
  net::asio::any_io_executor conn_executor();
  awaitable<Read> read_command();
  awaitable<bool> read_literal(uint64_t size);
  awaitable<bool> flush();
  // Runs one parsed command; false when the session ends.
  awaitable<bool> execute(const ParseResult& parsed);
  awaitable<bool> run_handler(const CommandSpec& spec, const Command& cmd);
  awaitable<bool> finish(const CommandSpec& spec, const Command& cmd);
  awaitable<bool> idle(const CommandSpec& spec, const Command& cmd);
  awaitable<void> idle_notifier();
  awaitable<bool> auth_continue();
  awaitable<void> goodbye(std::string text);
  // Counts a BAD; at the limit says BYE and returns false.
  awaitable<bool> count_bad();
  void after_login();
  void sync_after(const CommandSpec& spec, const Command& cmd);

  ImapService& service_;
  std::shared_ptr<net::Connection> conn_;
  ImapContext ctx_;
  CommandFramer framer_;
  std::string line_;
  std::string too_large_tag_;
  int session_id_ = 0;
  int listener_id_ = 0;
  int bad_count_ = 0;
  // IDLE
  asio::steady_timer idle_timer_;       // the notifier's poll; cancelled by a change
  asio::steady_timer idle_done_timer_;  // cancelled when the notifier has finished
  bool idle_done_ = false;
  bool notifier_running_ = false;
};

ImapSession::~ImapSession() {
  if (listener_id_) service_.store().unsubscribe(listener_id_);
}

net::asio::any_io_executor ImapSession::conn_executor() {
  return conn_->executor();
}

awaitable<bool> ImapSession::flush() {
  if (ctx_.out.empty()) co_return true;
  std::string data;
  data.swap(ctx_.out);
  bool ok = co_await conn_->write(std::move(data));
  co_return ok;
}

awaitable<bool> ImapSession::count_bad() {
  if (++bad_count_ < service_.options().max_bad_commands) co_return true;
  co_await goodbye("Too many invalid commands");
  co_return false;
}

awaitable<void> ImapSession::goodbye(std::string text) {
  ctx_.out += "* BYE " + text + "\r\n";
  co_await flush();
  conn_->close();
}

awaitable<bool> ImapSession::read_literal(uint64_t size) {
  uint64_t remaining = size;
  std::function<size_t(std::string_view)> consume = [this, &remaining](std::string_view data) {
    size_t take = static_cast<size_t>(std::min<uint64_t>(remaining, data.size()));
    framer_.feed_literal(data.substr(0, take));
    remaining -= take;
    return take;
  };
  std::function<bool()> done = [&remaining] { return remaining == 0; };
  bool ok = co_await conn_->read_until(consume, done);
  co_return ok;
}

awaitable<ImapSession::Read> ImapSession::read_command() {
  framer_.reset();
  bool first = true;
  while (true) {
    auto status = co_await conn_->read_line(&line_, service_.options().max_line);
    if (status == net::Connection::LineStatus::kClosed) co_return Read::kClosed;
    if (status == net::Connection::LineStatus::kTooLong) {
      // line_ holds the start of the over-long line, enough for its tag.
      if (first) too_large_tag_ = tag_of(line_);
      // A non-synchronizing literal announced at its end is coming regardless.
      const std::string& tail = conn_->line_tail();
      bool nonsync = tail.size() >= 2 && tail.compare(tail.size() - 2, 2, "+}") == 0;
      co_return nonsync ? Read::kUnfollowable : Read::kLineTooLong;
    }
    if (first) {
      too_large_tag_ = tag_of(line_);
      first = false;
    }
    CommandFramer::Step step = framer_.feed_line(line_);
    if (step == CommandFramer::Step::kComplete) break;
    if (step == CommandFramer::Step::kTooLarge) {
      // A non-synchronizing literal is on its way regardless: the stream cannot be followed.
      bool nonsync = line_.size() >= 2 && line_.compare(line_.size() - 2, 2, "+}") == 0;
      co_return nonsync ? Read::kUnfollowable : Read::kTooLarge;
    }
    if (step == CommandFramer::Step::kSyncLiteral) {
      ctx_.out += "+ Ready for literal data\r\n";
      if (!co_await flush()) co_return Read::kClosed;
    }
    if (!co_await read_literal(framer_.literal_size())) co_return Read::kClosed;
  }
  if (line_.capacity() > 4096) std::string().swap(line_);
  co_return Read::kCommand;
}

void ImapSession::sync_after(const CommandSpec& spec, const Command& cmd) {
  if (spec.flags & kNoSync) return;
  bool allow_expunge = !(spec.flags & kNoExpungeSync) || cmd.uid;
  ctx_.sync(allow_expunge, (spec.flags & kForceSync) != 0);
}

void ImapSession::after_login() {
  conn_->set_idle_timeout(std::chrono::seconds(service_.options().timeout_s));
  framer_.set_limits(session_limits(service_.options()));
  {
    std::lock_guard lock(ctx_.changes->mu);
    ctx_.changes->account = ctx_.account->guid;
  }
  std::weak_ptr<ChangeFlag> weak = ctx_.changes;
  listener_id_ = service_.store().subscribe([weak](const ChangeEvent& event) {
    auto flag = weak.lock();
    if (!flag) return;
    std::lock_guard lock(flag->mu);
    if (event.folder == Guid{} && event.account == flag->account) flag->folders_changed = true;
    if (flag->folder == Guid{} || event.folder != flag->folder) return;
    flag->dirty = true;
    if (flag->wake) flag->wake();
  });
}

awaitable<bool> ImapSession::run_handler(const CommandSpec& spec, const Command& cmd) {
  const CommandSpec* s = &spec;
  const Command* c = &cmd;
  auto job = [this, s, c] {
    // The selected folder must still be the one the view describes before anything acts on
    // it by name.
    if (ctx_.state == SessionState::kSelected && !ctx_.check_selected_folder()) {
      ctx_.out += "* BYE Selected mailbox was deleted\r\n";
      ctx_.then = ImapContext::Then::kDrop;
      return true;
    }
    s->handler(ctx_, *c);
    if (!ctx_.more) sync_after(*s, *c);
    return true;
  };
  co_await service_.pool_.run(std::move(job));
  if (ctx_.then == ImapContext::Then::kDrop) co_return true;  // finish() closes
  while (ctx_.more) {
    if (ctx_.then == ImapContext::Then::kDrop) co_return false;
    if (!co_await flush()) co_return false;
    auto next = [this, s, c] {
      if (!ctx_.more()) {
        ctx_.more = nullptr;
        sync_after(*s, *c);
      }
      return true;
    };
    co_await service_.pool_.run(std::move(next));
  }
  co_return true;
}

awaitable<bool> ImapSession::execute(const ParseResult& parsed) {
  ctx_.result.clear();
  ctx_.more = nullptr;
  ctx_.then = ImapContext::Then::kNone;
  ctx_.delay = std::chrono::milliseconds(0);
  if (!parsed.command) {
    ctx_.out += parsed.tag + " BAD " + parsed.error + "\r\n";
    co_return co_await count_bad();
  }
  const Command& cmd = *parsed.command;
  ctx_.tag = cmd.tag;
  ctx_.uid_command = cmd.uid;
  const CommandSpec* spec = find_command(cmd.name);
  std::string refusal;
  if (!spec || (cmd.uid && !(spec->flags & kUidForm))) {
    refusal = "BAD Unknown command";
  } else if ((spec->flags & kNotAuthenticatedOnly) &&
             ctx_.state != SessionState::kNotAuthenticated) {
    refusal = "BAD Already authenticated";
  } else if ((spec->flags & (kAuthenticatedOnly | kSelectedOnly)) &&
             ctx_.state == SessionState::kNotAuthenticated) {
    refusal = "BAD Not authenticated";
  } else if ((spec->flags & kSelectedOnly) && ctx_.state != SessionState::kSelected) {
    refusal = "BAD No mailbox selected";
  }
  if (!refusal.empty()) {
    ctx_.out += cmd.tag + " " + refusal + "\r\n";
    co_return co_await count_bad();
  }
  bool was_authenticated = ctx_.state != SessionState::kNotAuthenticated;
  if (!co_await run_handler(*spec, cmd)) co_return false;
  if (!was_authenticated && ctx_.state != SessionState::kNotAuthenticated) after_login();
  co_return co_await finish(*spec, cmd);
}

// What follows the handler: the connection-level part of the command, then its tagged reply.
awaitable<bool> ImapSession::finish(const CommandSpec& spec, const Command& cmd) {
  switch (ctx_.then) {
    case ImapContext::Then::kDrop:
      co_await flush();
      conn_->close();
      co_return false;
    case ImapContext::Then::kIdle:
      co_return co_await idle(spec, cmd);
    case ImapContext::Then::kAuthContinue:
      if (!co_await auth_continue()) co_return false;
      break;
    default:
      break;
  }
  if (ctx_.delay.count() > 0) {
    asio::steady_timer delay(conn_executor());
    delay.expires_after(ctx_.delay);
    boost::system::error_code ec;
    co_await delay.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ctx_.result.empty()) ctx_.result = "OK Completed";
  if (ctx_.result.compare(0, 3, "BAD") == 0) {
    if (bad_count_ + 1 >= service_.options().max_bad_commands) {
      ctx_.out += ctx_.tag + " " + ctx_.result + "\r\n";
      co_return co_await count_bad();
    }
    ++bad_count_;
  } else {
    bad_count_ = 0;
  }
  ctx_.out += ctx_.tag + " " + ctx_.result + "\r\n";
  if (ctx_.then == ImapContext::Then::kLogout) {
    co_await flush();
    conn_->close();
    co_return false;
  }
  if (ctx_.then == ImapContext::Then::kStartTls) {
    if (!co_await flush()) co_return false;
    bool ok = co_await conn_->start_tls(*service_.tls_);
    if (!ok) co_return false;
    ctx_.tls = true;
  }
  co_return true;
}

awaitable<bool> ImapSession::auth_continue() {
  if (!co_await flush()) co_return false;
  auto status = co_await conn_->read_line(&line_, service_.options().max_line);
  if (status == net::Connection::LineStatus::kClosed) co_return false;
  if (status == net::Connection::LineStatus::kTooLong) {
    ctx_.bad("Authentication response too long");
    co_return true;
  }
  if (line_ == "*") {
    ctx_.bad("Authentication cancelled");
    co_return true;
  }
  std::string response = line_;
  auto job = [this, response] {
    auto handler = std::move(ctx_.auth_continue);
    ctx_.auth_continue = nullptr;
    if (handler) handler(ctx_, response);
    return true;
  };
  co_await service_.pool_.run(std::move(job));
  if (ctx_.state != SessionState::kNotAuthenticated && !listener_id_) after_login();
  co_return true;
}

awaitable<bool> ImapSession::idle(const CommandSpec& spec, const Command& cmd) {
  // The continuation ("+ idling") and any changes found at the start are in ctx_.out.
  if (!co_await flush()) co_return false;
  idle_done_ = false;
  notifier_running_ = true;
  {
    std::weak_ptr<ImapSession> weak = weak_from_this();
    net::asio::any_io_executor ex = conn_executor();
    std::lock_guard lock(ctx_.changes->mu);
    ctx_.changes->wake = [weak, ex] {
      asio::post(ex, [weak] {
        if (auto self = weak.lock()) self->idle_timer_.cancel();
      });
    };
  }
  asio::co_spawn(conn_executor(), idle_notifier(), asio::detached);
  // Waiting for DONE is idle time: shutdown may interrupt it.
  service_.sessions_.set_busy(session_id_, false);
  net::Connection::LineStatus status = net::Connection::LineStatus::kClosed;
  if (!service_.sessions_.shutting_down())
    status = co_await conn_->read_line(&line_, service_.options().max_line);
  service_.sessions_.set_busy(session_id_, true);
  idle_done_ = true;
  {
    std::lock_guard lock(ctx_.changes->mu);
    ctx_.changes->wake = nullptr;
  }
  idle_timer_.cancel();
  while (notifier_running_) {
    idle_done_timer_.expires_after(std::chrono::seconds(60));
    boost::system::error_code ec;
    co_await idle_done_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (status == net::Connection::LineStatus::kClosed) {
    if (conn_->timed_out())
      co_await goodbye("Autologout; idle for too long");
    else if (service_.sessions_.shutting_down() && !conn_->closed())
      co_await goodbye("Server shutting down");
    co_return false;
  }
  if (status == net::Connection::LineStatus::kOk && iequals(line_, "DONE")) {
    ctx_.ok("IDLE terminated");
  } else {
    ctx_.bad("Expected DONE");
  }
  ctx_.then = ImapContext::Then::kNone;
  co_return co_await finish(spec, cmd);
}

awaitable<void> ImapSession::idle_notifier() {
  auto self = shared_from_this();  // keeps the session alive while this runs
  while (!idle_done_) {
    bool dirty = false;
    {
      std::lock_guard lock(ctx_.changes->mu);
      dirty = ctx_.changes->dirty;
    }
    bool polled = false;
    if (!dirty) {
      idle_timer_.expires_after(std::chrono::seconds(service_.options().idle_poll_s));
      boost::system::error_code ec;
      co_await idle_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      polled = !ec;
      if (idle_done_) break;
    }
    auto job = [this, polled] {
      ctx_.sync(true, polled);
      std::string data;
      data.swap(ctx_.out);
      return data;
    };
    std::string data = co_await service_.pool_.run(std::move(job));
    // Written even when DONE arrived meanwhile: the view already counts these changes.
    if (!data.empty() && !co_await conn_->write(std::move(data))) break;
  }
  notifier_running_ = false;
  idle_done_timer_.cancel();
}

awaitable<void> ImapSession::run(bool implicit_tls) {
  net::SessionRegistry& sessions = service_.sessions_;
  std::weak_ptr<net::Connection> weak = conn_;
  session_id_ = sessions.add([weak] {
    if (auto c = weak.lock()) c->cancel();
  });
  ctx_.peer = conn_->peer();
  ctx_.loopback = conn_->peer_is_loopback();
  bool ok = true;
  if (implicit_tls) {
    ok = co_await conn_->start_tls(*service_.tls_);
    ctx_.tls = ok;
  }
  if (ok) {
    ctx_.out = "* OK [CAPABILITY " + capabilities(ctx_) + "] mailark IMAP ready\r\n";
    while (true) {
      bool hold = conn_->has_buffered_line() && ctx_.out.size() < kMaxHeldOutput;
      if (!hold && !co_await flush()) break;
      if (sessions.shutting_down()) {
        co_await goodbye("Server shutting down");
        break;
      }
      Read read = co_await read_command();
      if (read == Read::kClosed) {
        if (conn_->timed_out()) {
          co_await goodbye("Autologout; idle for too long");
        } else if (sessions.shutting_down() && !conn_->closed()) {
          co_await goodbye("Server shutting down");
        }
        break;
      }
      if (read == Read::kUnfollowable) {
        co_await goodbye("[TOOBIG] Literal too large");
        break;
      }
      if (read == Read::kLineTooLong || read == Read::kTooLarge) {
        ctx_.out += too_large_tag_ + (read == Read::kTooLarge ? " NO [TOOBIG] Literal too large\r\n"
                                                              : " BAD Command line too long\r\n");
        if (!co_await count_bad()) break;
        continue;
      }
      ParseResult parsed = parse_command(framer_.command());
      framer_.reset();
      // Busy until the reply is out: shutdown lets the command finish instead of cutting
      // its output (an APPEND's OK, a FETCH literal) short.
      sessions.set_busy(session_id_, true);
      bool go_on = co_await execute(parsed);
      if (!go_on) co_await flush();
      sessions.set_busy(session_id_, false);
      if (!go_on) break;
    }
  }
  if (ctx_.state != SessionState::kNotAuthenticated)
    MK_LOG_DEBUG("imap {}: session from {} ended", ctx_.user, ctx_.peer);
  sessions.remove(session_id_);
  conn_->close();
}

awaitable<void> ImapService::run_session(net::tcp::socket socket, bool implicit_tls) {
  auto conn = std::make_shared<net::Connection>(std::move(socket));
  conn->set_idle_timeout(std::chrono::seconds(options_.login_timeout_s));
  conn->start_watchdog();
  auto session = std::make_shared<ImapSession>(*this, std::move(conn));
  co_await session->run(implicit_tls);
}

awaitable<void> ImapService::serve(net::tcp::socket socket) {
  return run_session(std::move(socket), false);
}

awaitable<void> ImapService::serve_tls(net::tcp::socket socket) {
  return run_session(std::move(socket), true);
}

}  // namespace mailark::imap
