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
  const Status& operator[](size_t i) const { return statuses[i]; }
};

struct Transaction {
  bool has_sender = false;
  std::string sender;
  std::vector<User> recipients;
  void reset() {
    has_sender = false;
    sender.clear();
    recipients.clear();
  }
};

std::string lhlo_reply(const std::string& host, uint64_t max_size) {
  return reply(250, std::vector<std::string>{host, "PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                                             "SIZE " + std::to_string(max_size)});
}

}  // namespace

awaitable<void> LmtpService::serve(net::tcp::socket socket) {
  auto conn = std::make_shared<net::Connection>(std::move(socket));
  conn->set_idle_timeout(std::chrono::seconds(options_.timeout_s));
  conn->start_watchdog();
  std::weak_ptr<net::Connection> weak = conn;
  int session_id = sessions_.add([weak] {
    if (auto c = weak.lock()) c->cancel();
  });
  struct Unregister {
    net::SessionRegistry& r;
    int id;
    ~Unregister() { r.remove(id); }
  } unregister{sessions_, session_id};

  MK_LOG_DEBUG("lmtp: connection from {}", conn->peer());
  const uint64_t max_size = delivery_.options().max_message_size;
  std::string out = reply(220, options_.hostname + " LMTP mailark ready");
  bool greeted = false;
  int errors = 0;
  Transaction tx;
  std::string line;

  auto flush = [&]() -> awaitable<bool> {
    if (out.empty()) co_return true;
    bool ok = co_await conn->write(std::move(out));
    out.clear();
    co_return ok;
  };

  while (true) {
    // Replies to pipelined commands go out together once the client's batch is read.
    if (!conn->has_buffered_line() && !co_await flush()) break;
    if (sessions_.shutting_down()) {
      out += reply(421, "4.3.2 " + options_.hostname + " Service shutting down");
      co_await flush();
      break;
    }
    auto status = co_await conn->read_line(&line, kMaxCommandLine);
    if (status == net::Connection::LineStatus::kClosed) {
      if (conn->timed_out()) {
        out += reply(421, "4.4.2 " + options_.hostname + " Idle timeout, closing connection");
        co_await flush();
      } else if (sessions_.shutting_down() && !conn->closed()) {
        out += reply(421, "4.3.2 " + options_.hostname + " Service shutting down");
        co_await flush();
      }
      break;
    }
    if (status == net::Connection::LineStatus::kTooLong) {
      out += reply(500, "5.5.2 Line too long");
      if (++errors >= 20) break;
      continue;
    }
    ParsedCommand parsed = parse_command(line);
    if (parsed.error) {
      out += parsed.error->reply + "\r\n";
      if (++errors >= 20) {
        out += reply(421, "4.7.0 Too many errors, closing connection");
        co_await flush();
        break;
      }
      continue;
    }
    Command& cmd = *parsed.command;
    switch (cmd.verb) {
      case Verb::kLhlo:
        greeted = true;
        tx.reset();
        out += lhlo_reply(options_.hostname, max_size);
        break;
      case Verb::kHelo:
      case Verb::kEhlo:
        out += reply(500, "5.5.1 This is LMTP: use LHLO");
        ++errors;
        break;
      case Verb::kMail: {
        if (!greeted) {
          out += reply(503, "5.5.1 Send LHLO first");
          break;
        }
        if (tx.has_sender) {
          out += reply(503, "5.5.1 Nested MAIL command");
          break;
        }
        std::string bad;
        for (const auto& [key, value] : cmd.params) {
          if (key == "SIZE") {
            char* end = nullptr;
            unsigned long long n = std::strtoull(value.c_str(), &end, 10);
            if (value.empty() || *end) bad = reply(501, "5.5.4 Bad SIZE parameter");
            else if (n > max_size) bad = reply(552, "5.3.4 Message size exceeds fixed limit");
          } else if (key == "BODY") {
            std::string v = value;
            for (char& c : v) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            if (v != "7BIT" && v != "8BITMIME") bad = reply(501, "5.5.4 Unsupported BODY type");
          } else {
            bad = reply(555, "5.5.4 Unsupported parameter " + key);
          }
          if (!bad.empty()) break;
        }
        if (!bad.empty()) {
          out += bad;
          break;
        }
        tx.has_sender = true;
        tx.sender = cmd.path;
        out += reply(250, "2.1.0 Sender ok");
        break;
      }
      case Verb::kRcpt: {
        if (!tx.has_sender) {
          out += reply(503, "5.5.1 Need MAIL command first");
          break;
        }
        if (!cmd.params.empty()) {
          out += reply(555, "5.5.4 Unsupported parameter " + cmd.params.front().first);
          break;
        }
        if (tx.recipients.size() >= options_.max_recipients) {
          out += reply(452, "4.5.3 Too many recipients");
          break;
        }
        std::string path = cmd.path;
        sessions_.set_busy(session_id, true);
        auto lookup = [this, path] { return delivery_.resolve_recipient(path); };
        auto user = co_await pool_.run(std::move(lookup));
        sessions_.set_busy(session_id, false);
        if (user.is_ok()) {
          tx.recipients.push_back(*user);
          out += reply_for_status(Status::ok(), path, options_.over_quota_temporary, true);
        } else {
          out += reply_for_status(user.status(), path, options_.over_quota_temporary, true);
        }
        break;
      }
      case Verb::kData: {
        if (!tx.has_sender) {
          out += reply(503, "5.5.1 Need MAIL command first");
          break;
        }
        if (tx.recipients.empty()) {
          out += reply(503, "5.5.1 No valid recipients");
          break;
        }
        out += reply(354, "Start mail input; end with <CRLF>.<CRLF>");
        if (!co_await flush()) goto done;
        sessions_.set_busy(session_id, true);
        DataReader reader(max_size);
        Guid ingress_id;
        bool complete = co_await conn->read_until(
            [&](std::string_view bytes) { return reader.feed(bytes); },
            [&] { return reader.done(); });
        if (!complete) {
          // The connection dropped or stalled mid-DATA: nothing was stored or acknowledged.
          MK_LOG_INFO("lmtp: {} {} during DATA after {} bytes; nothing stored", conn->peer(),
                      conn->timed_out() ? "timed out" : "disconnected", reader.received_bytes());
          if (conn->timed_out()) {
            out += reply(421, "4.4.2 " + options_.hostname + " Timeout during DATA, nothing stored");
            co_await flush();
          }
          sessions_.set_busy(session_id, false);
          goto done;
        }
        if (reader.too_large()) {
          for (const auto& u : tx.recipients)
            out += reply_for_status(too_large("size"), u.address, options_.over_quota_temporary, false);
        } else if (reader.has_nul()) {
          for (const auto& u : tx.recipients)
            out += reply(554, "5.6.0 <" + u.address + "> Message contains NUL characters");
        } else {
          if (reader.bare_lf_lines())
            MK_LOG_DEBUG("lmtp: {} sent {} lines ending in bare LF; normalized to CRLF",
                         conn->peer(), reader.bare_lf_lines());
          auto store = [this, sender = tx.sender, rcpts = tx.recipients,
                        msg = reader.take_message()]() mutable {
            DeliveryResults r;
            r.statuses = delivery_.deliver(sender, rcpts, std::move(msg), &r.ingress_id);
            return r;
          };
          auto results = co_await pool_.run(std::move(store));
          for (size_t i = 0; i < tx.recipients.size(); ++i)
            out += reply_for_status(results[i], tx.recipients[i].address,
                                    options_.over_quota_temporary, false);
          ingress_id = results.ingress_id;
        }
        tx.reset();
        if (!co_await flush()) {
          sessions_.set_busy(session_id, false);
          goto done;
        }
        // The replies are written: the sender will not retry this message.
        delivery_.acknowledge(ingress_id);
        ingress_id = Guid{};
        sessions_.set_busy(session_id, false);
        break;
      }
      case Verb::kBdat:
        out += reply(502, "5.5.1 BDAT is not supported");
        break;
      case Verb::kRset:
        tx.reset();
        out += reply(250, "2.0.0 Ok");
        break;
      case Verb::kNoop:
        out += reply(250, "2.0.0 Ok");
        break;
      case Verb::kVrfy:
        if (cmd.argument.empty()) {
          out += reply(501, "5.5.4 Syntax: VRFY address");
          break;
        }
        out += reply(252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
        break;
      case Verb::kHelp:
        out += reply(214, "2.0.0 Commands: LHLO MAIL RCPT DATA RSET NOOP QUIT VRFY");
        break;
      case Verb::kQuit:
        out += reply(221, "2.0.0 " + options_.hostname + " closing connection");
        co_await flush();
        goto done;
      case Verb::kUnknown:
        out += reply(500, "5.5.1 Unknown command");
        break;
    }
  }
done:
  conn->close();
  MK_LOG_DEBUG("lmtp: connection from {} closed", conn->peer());
}

}  // namespace mailark::lmtp
