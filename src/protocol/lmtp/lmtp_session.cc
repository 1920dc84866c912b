// LMTP session: greeting, LHLO, transaction state, DATA and one reply per recipient.
#include "protocol/lmtp/lmtp_session.h"

#include "base/log.h"
#include "protocol/lmtp/lmtp_parser.h"

namespace mailark::lmtp {

using net::awaitable;

std::string reply_for_status(const Status& status, const std::string& address,
                             bool over_quota_temporary, bool at_rcpt) {
  std::string who = "<" + address + ">";
  switch (status.code()) {
    case ErrorCode::kOk:
      return at_rcpt ? reply(250, "2.1.5 " + who + " Recipient ok")
                     : reply(250, "2.0.0 " + who + " Saved");
    case ErrorCode::kNotFound:
      return reply(550, "5.1.1 " + who + " User unknown");
    case ErrorCode::kInvalid:
      return at_rcpt ? reply(501, "5.1.3 " + who + " Bad recipient address syntax")
                     : reply(554, "5.6.0 " + who + " Message rejected");
    case ErrorCode::kOverQuota:
      return over_quota_temporary ? reply(452, "4.2.2 " + who + " Mailbox is full")
                                  : reply(552, "5.2.2 " + who + " Mailbox is full");
    case ErrorCode::kTooLarge:
      return reply(552, "5.3.4 " + who + " Message too big for system");
    default:
      return reply(451, "4.3.0 " + who + " Temporary failure, try again later");
  }
}

namespace {

struct DeliveryResults {
  std::vector<Status> statuses;
  Guid ingress_id;
};

std::string lhlo_reply(const std::string& host, uint64_t max_size) {
  return reply(250, std::vector<std::string>{host, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                                             "SIZE " + std::to_string(max_size)});
}

}  // namespace

// One connection. Each command is a plain function or a small member coroutine; keeping
// locals out of one big coroutine body also keeps clear of GCC 12 coroutine-frame bugs with
// objects declared inside switch cases.
class LmtpSession {
 public:
  LmtpSession(LmtpService& service, std::shared_ptr<net::Connection> conn)
      : service_(service), conn_(std::move(conn)),
        max_size_(service.delivery_.options().max_message_size) {}

  awaitable<void> run();

 private:
  enum class Next { kContinue, kClose };

  awaitable<bool> flush();
  // Handles one parsed command; returns whether the session goes on.
  awaitable<Next> handle(Command& cmd);
  std::string handle_mail(const Command& cmd);
  awaitable<void> handle_rcpt(const Command& cmd);
  awaitable<Next> handle_data();
  void reset_transaction() {
    has_sender_ = false;
    sender_.clear();
    recipients_.clear();
  }
  const std::string& host() const { return service_.options_.hostname; }

  LmtpService& service_;
  std::shared_ptr<net::Connection> conn_;
  uint64_t max_size_;
  int session_id_ = 0;
  std::string out_;
  bool greeted_ = false;
  int errors_ = 0;
  bool has_sender_ = false;
  std::string sender_;
  std::vector<User> recipients_;
};

awaitable<bool> LmtpSession::flush() {
  if (out_.empty()) co_return true;
  std::string data = std::move(out_);
  out_.clear();
  bool ok = co_await conn_->write(std::move(data));
  co_return ok;
}

std::string LmtpSession::handle_mail(const Command& cmd) {
  if (!greeted_) return reply(503, "5.5.1 Send LHLO first");
  if (has_sender_) return reply(503, "5.5.1 Nested MAIL command");
  for (const auto& [key, value] : cmd.params) {
    if (key == "SIZE") {
      char* end = nullptr;
      unsigned long long n = std::strtoull(value.c_str(), &end, 10);
      if (value.empty() || *end) return reply(501, "5.5.4 Bad SIZE parameter");
      if (n > max_size_) return reply(552, "5.3.4 Message size exceeds fixed limit");
    } else if (key == "BODY") {
      std::string v = value;
      for (char& c : v) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (v != "7BIT" && v != "8BITMIME") return reply(501, "5.5.4 Unsupported BODY type");
    } else {
      return reply(555, "5.5.4 Unsupported parameter " + key);
    }
  }
  has_sender_ = true;
  sender_ = cmd.path;
  return reply(250, "2.1.0 Sender ok");
}

awaitable<void> LmtpSession::handle_rcpt(const Command& cmd) {
  const LmtpOptions& options = service_.options_;
  if (!has_sender_) {
    out_ += reply(503, "5.5.1 Need MAIL command first");
    co_return;
  }
  if (!cmd.params.empty()) {
    out_ += reply(555, "5.5.4 Unsupported parameter " + cmd.params.front().first);
    co_return;
  }
  if (recipients_.size() >= options.max_recipients) {
    out_ += reply(452, "4.5.3 Too many recipients");
    co_return;
  }
  std::string path = cmd.path;
  Delivery& delivery = service_.delivery_;
  auto lookup = [&delivery, path] { return delivery.resolve_recipient(path); };
  service_.sessions_.set_busy(session_id_, true);
  Result<User> user = co_await service_.pool_.run(std::move(lookup));
  service_.sessions_.set_busy(session_id_, false);
  if (user.is_ok()) {
    recipients_.push_back(*user);
    out_ += reply_for_status(Status::ok(), path, options.over_quota_temporary, true);
  } else {
    out_ += reply_for_status(user.status(), path, options.over_quota_temporary, true);
  }
}

awaitable<LmtpSession::Next> LmtpSession::handle_data() {
  const LmtpOptions& options = service_.options_;
  if (!has_sender_) {
    out_ += reply(503, "5.5.1 Need MAIL command first");
    co_return Next::kContinue;
  }
  if (recipients_.empty()) {
    out_ += reply(503, "5.5.1 No valid recipients");
    co_return Next::kContinue;
  }
  out_ += reply(354, "Start mail input; end with <CRLF>.<CRLF>");
  if (!co_await flush()) co_return Next::kClose;

  struct Busy {
    net::SessionRegistry& r;
    int id;
    Busy(net::SessionRegistry& reg, int i) : r(reg), id(i) { r.set_busy(id, true); }
    ~Busy() { r.set_busy(id, false); }
  } busy(service_.sessions_, session_id_);

  DataReader reader(max_size_);
  std::function<size_t(std::string_view)> consume = [&reader](std::string_view bytes) {
    return reader.feed(bytes);
  };
  std::function<bool()> finished = [&reader] { return reader.done(); };
  bool complete = co_await conn_->read_until(consume, finished);
  if (!complete) {
    // The connection dropped or stalled mid-DATA: nothing was stored or acknowledged.
    MK_LOG_INFO("lmtp: {} {} during DATA after {} bytes; nothing stored", conn_->peer(),
                conn_->timed_out() ? "timed out" : "disconnected", reader.received_bytes());
    if (conn_->timed_out()) {
      out_ += reply(421, "4.4.2 " + host() + " Timeout during DATA, nothing stored");
      co_await flush();
    }
    co_return Next::kClose;
  }
  Guid ingress_id;
  if (reader.too_large()) {
    for (const auto& u : recipients_)
      out_ += reply_for_status(too_large("size"), u.address, options.over_quota_temporary, false);
  } else if (reader.has_nul()) {
    for (const auto& u : recipients_)
      out_ += reply(554, "5.6.0 <" + u.address + "> Message contains NUL characters");
  } else {
    if (reader.bare_lf_lines())
      MK_LOG_DEBUG("lmtp: {} sent {} lines ending in bare LF; normalized to CRLF", conn_->peer(),
                   reader.bare_lf_lines());
    Delivery& delivery = service_.delivery_;
    auto store = [&delivery, sender = sender_, rcpts = recipients_,
                  msg = reader.take_message()]() mutable {
      DeliveryResults r;
      r.statuses = delivery.deliver(sender, rcpts, std::move(msg), &r.ingress_id);
      return r;
    };
    DeliveryResults results = co_await service_.pool_.run(std::move(store));
    for (size_t i = 0; i < recipients_.size(); ++i)
      out_ += reply_for_status(results.statuses[i], recipients_[i].address,
                               options.over_quota_temporary, false);
    ingress_id = results.ingress_id;
  }
  reset_transaction();
  if (!co_await flush()) co_return Next::kClose;
  // The replies are written: the sender will not retry this message.
  service_.delivery_.acknowledge(ingress_id);
  co_return Next::kContinue;
}

awaitable<LmtpSession::Next> LmtpSession::handle(Command& cmd) {
  switch (cmd.verb) {
    case Verb::kLhlo:
      greeted_ = true;
      reset_transaction();
      out_ += lhlo_reply(host(), max_size_);
      break;
    case Verb::kHelo:
    case Verb::kEhlo:
      out_ += reply(500, "5.5.1 This is LMTP: use LHLO");
      ++errors_;
      break;
    case Verb::kMail:
      out_ += handle_mail(cmd);
      break;
    case Verb::kRcpt:
      co_await handle_rcpt(cmd);
      break;
    case Verb::kData:
      co_return co_await handle_data();
    case Verb::kBdat:
      out_ += reply(502, "5.5.1 BDAT is not supported");
      break;
    case Verb::kRset:
      reset_transaction();
      out_ += reply(250, "2.0.0 Ok");
      break;
    case Verb::kNoop:
      out_ += reply(250, "2.0.0 Ok");
      break;
    case Verb::kVrfy:
      if (cmd.argument.empty()) out_ += reply(501, "5.5.4 Syntax: VRFY address");
      else out_ += reply(252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
      break;
    case Verb::kHelp:
      out_ += reply(214, "2.0.0 Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY");
      break;
    case Verb::kQuit:
      out_ += reply(221, "2.0.0 " + host() + " closing connection");
      co_await flush();
      co_return Next::kClose;
    case Verb::kUnknown:
      out_ += reply(500, "5.5.1 Unknown command");
      break;
  }
  co_return Next::kContinue;
}

awaitable<void> LmtpSession::run() {
  net::SessionRegistry& sessions = service_.sessions_;
  std::weak_ptr<net::Connection> weak = conn_;
  session_id_ = sessions.add([weak] {
    if (auto c = weak.lock()) c->cancel();
  });
  MK_LOG_DEBUG("lmtp: connection from {}", conn_->peer());
  out_ = reply(220, host() + " LMTP mailark ready");
  std::string line;
  while (true) {
    // Replies to pipelined commands go out together once the client's batch is read.
    if (!conn_->has_buffered_line() && !co_await flush()) break;
    if (sessions.shutting_down()) {
      out_ += reply(421, "4.3.2 " + host() + " Service shutting down");
      co_await flush();
      break;
    }
    auto status = co_await conn_->read_line(&line, kMaxCommandLine);
    if (status == net::Connection::LineStatus::kClosed) {
      if (conn_->timed_out()) {
        out_ += reply(421, "4.4.2 " + host() + " Idle timeout, closing connection");
        co_await flush();
      } else if (sessions.shutting_down() && !conn_->closed()) {
        out_ += reply(421, "4.3.2 " + host() + " Service shutting down");
        co_await flush();
      }
      break;
    }
    if (status == net::Connection::LineStatus::kTooLong) {
      out_ += reply(500, "5.5.2 Line too long");
      if (++errors_ >= 20) break;
      continue;
    }
    ParsedCommand parsed = parse_command(line);
    if (parsed.error) {
      out_ += parsed.error->reply + "\r\n";
      if (++errors_ >= 20) {
        out_ += reply(421, "4.7.0 Too many errors, closing connection");
        co_await flush();
        break;
      }
      continue;
    }
    if (co_await handle(*parsed.command) == Next::kClose) break;
  }
  sessions.remove(session_id_);
  conn_->close();
  MK_LOG_DEBUG("lmtp: connection from {} closed", conn_->peer());
}

awaitable<void> LmtpService::serve(net::tcp::socket socket) {
  auto conn = std::make_shared<net::Connection>(std::move(socket));
  conn->set_idle_timeout(std::chrono::seconds(options_.timeout_s));
  conn->start_watchdog();
  auto session = std::make_shared<LmtpSession>(*this, std::move(conn));
  co_await session->run();
}

}  // namespace mailark::lmtp
