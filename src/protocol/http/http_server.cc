// HTTP/1.1 connections on Boost.Beast: keep-alive, Expect: 100-continue, header and body
// limits answered with 431/413 and a close, an idle deadline, and drain on shutdown.
#include "protocol/http/http_server.h"

#include <errno.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "base/log.h"

namespace mailark::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using net::awaitable;

std::string Request::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  return {};
}

bool Request::has_header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return true;
  return false;
}

const char* status_text(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 207:
      return "Multi-Status";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 423:
      return "Locked";
    case 424:
      return "Failed Dependency";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 507:
      return "Insufficient Storage";
    default:
      return "";
  }
}

namespace {

// Body bytes the read buffer makes room for at once (larger bodies arrive in pieces this
// big), and the buffer an idle connection may keep between requests.
constexpr uint64_t kBodyReadAhead = 256 * 1024;
constexpr size_t kIdleBuffer = 16 * 1024;

// A header name or value as sent: a CR or LF would end the field early (and let a value
// that came from a request inject fields), so each becomes a space.
void append_field_text(std::string& out, std::string_view text) {
  for (char c : text) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
}

// An answer as it goes on the wire: status line and fields, then the body (none for HEAD),
// and how much of that has been written.
struct Wire {
  std::string head;
  std::string body;
  std::chrono::milliseconds delay{0};
  bool close = false;
  size_t sent = 0;
  bool failed = false;  // a write failed: the peer is gone

  size_t size() const { return head.size() + body.size(); }
  // The bytes not yet written.
  std::array<asio::const_buffer, 2> rest() const {
    if (sent < head.size())
      return {asio::buffer(head.data() + sent, head.size() - sent), asio::buffer(body)};
    return {asio::buffer(body.data() + (sent - head.size()), size() - sent), asio::const_buffer()};
  }
  // Writes as much as the socket takes now, without waiting for room.
  void write_now(int fd) {
    while (sent < size() && !failed) {
      std::array<asio::const_buffer, 2> bufs = rest();
      iovec iov[2];
      msghdr msg{};
      msg.msg_iov = iov;
      for (const auto& b : bufs) {
        if (b.size() == 0) continue;
        iov[msg.msg_iovlen].iov_base = const_cast<void*>(b.data());
        iov[msg.msg_iovlen].iov_len = b.size();
        ++msg.msg_iovlen;
      }
      ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) failed = true;
        return;
      }
      sent += static_cast<size_t>(n);
    }
  }
};

Wire to_wire(Response response, const std::string& server, bool head, bool keep_alive) {
  Wire wire;
  wire.delay = response.delay;
  wire.close = !keep_alive || response.close;
  const int status = response.status;
  std::string& h = wire.head;
  h.reserve(256);
  h += "HTTP/1.1 ";
  h += std::to_string(status);
  h += ' ';
  h += status_text(status);
  h += "\r\nServer: ";
  append_field_text(h, server);
  h += "\r\n";
  for (const auto& [name, value] : response.headers) {
    append_field_text(h, name);
    h += ": ";
    append_field_text(h, value);
    h += "\r\n";
  }
  if (wire.close) h += "Connection: close\r\n";
  // 1xx, 204 and 304 answers have no body and no length (RFC 9110 8.6).
  if (status >= 200 && status != 204 && status != 304) {
    h += "Content-Length: ";
    h += std::to_string(response.body.size());
    h += "\r\n";
  }
  h += "\r\n";
  if (!head && status != 204 && status != 304) wire.body = std::move(response.body);
  return wire;
}

// One connection's loop over its requests, for a plain or a TLS stream.
template <typename Stream>
class HttpConnection {
 public:
  HttpConnection(HttpService& service, Stream& stream, beast::tcp_stream& lowest, std::string peer,
                 bool tls, bool loopback)
      : service_(service),
        stream_(stream),
        lowest_(lowest),
        peer_(std::move(peer)),
        tls_(tls),
        loopback_(loopback) {}

  awaitable<void> run();

 private:
  // Writes what the pool thread did not (after the answer's delay); false when the
  // connection ends here.
  awaitable<bool> send(Wire wire);
  awaitable<void> send_error(int status, const char* text);

  HttpService& service_;
  Stream& stream_;
  beast::tcp_stream& lowest_;
  std::string peer_;
  bool tls_;
  bool loopback_;
  beast::flat_buffer buffer_;
};

template <typename Stream>
awaitable<bool> HttpConnection<Stream>::send(Wire wire) {
  if (wire.delay.count() > 0) {
    asio::steady_timer wait(lowest_.get_executor());
    wait.expires_after(wire.delay);
    boost::system::error_code ignored;
    co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  if (wire.failed) co_return false;
  if (wire.sent < wire.size()) {
    std::array<asio::const_buffer, 2> rest = wire.rest();
    boost::system::error_code ec;
    lowest_.expires_after(std::chrono::seconds(service_.options().timeout_s));
    co_await asio::async_write(stream_, rest, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return false;
  }
  co_return !wire.close;
}

template <typename Stream>
awaitable<void> HttpConnection<Stream>::send_error(int status, const char* text) {
  Response r;
  r.status = status;
  r.set("Content-Type", "text/plain; charset=utf-8");
  r.body = std::string(text) + "\n";
  r.close = true;
  co_await send(to_wire(std::move(r), service_.options().server_name, false, false));
}

template <typename Stream>
awaitable<void> HttpConnection<Stream>::run() {
  const HttpOptions& options = service_.options();
  net::SessionRegistry& sessions = service_.sessions();
  beast::tcp_stream* lowest = &lowest_;
  asio::any_io_executor executor = lowest_.get_executor();
  int id = sessions.add([lowest, executor] {
    asio::post(executor, [lowest] {
      boost::system::error_code ignored;
      lowest->socket().shutdown(net::tcp::socket::shutdown_both, ignored);
      lowest->socket().close(ignored);
    });
  });
  for (int served = 0; served < options.max_requests_per_connection; ++served) {
    if (sessions.shutting_down()) break;
    auto parser = std::make_unique<bhttp::request_parser<bhttp::string_body>>();
    parser->header_limit(options.max_header);
    parser->body_limit(options.max_body);
    boost::system::error_code ec;
    lowest_.expires_after(std::chrono::seconds(options.timeout_s));
    co_await bhttp::async_read_header(stream_, buffer_, *parser,
                                      asio::redirect_error(asio::use_awaitable, ec));
    if (ec == bhttp::error::header_limit) {
      co_await send_error(431, "Request header fields too large");
      break;
    }
    if (ec == bhttp::error::body_limit) {
      co_await send_error(413, "Request body too large");
      break;
    }
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
        ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)
      break;
    if (ec) {
      co_await send_error(400, "Malformed HTTP request");
      break;
    }
    sessions.set_busy(id, true);
    if (!parser->is_done()) {
      auto& head = parser->get();
      auto expect = head[bhttp::field::expect];
      if (strncasecmp(expect.data(), "100-continue", std::min<size_t>(expect.size(), 12)) == 0 &&
          expect.size() == 12) {
        static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        co_await asio::async_write(stream_, asio::buffer(kContinue, sizeof kContinue - 1),
                                   asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      }
      // Room for the whole body up front: the buffer would otherwise grow from 512 bytes,
      // one recv and one trip through the reactor per 512 bytes of a multiget's hrefs.
      if (auto length = parser->content_length())
        buffer_.reserve(buffer_.size() + std::min<uint64_t>(*length, kBodyReadAhead));
      co_await bhttp::async_read(stream_, buffer_, *parser,
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec == bhttp::error::body_limit) {
        co_await send_error(413, "Request body too large");
        break;
      }
      if (ec) {
        if (ec != beast::error::timeout && ec != bhttp::error::end_of_stream &&
            ec != bhttp::error::partial_message)
          co_await send_error(400, "Malformed HTTP request body");
        break;
      }
    }
    auto message = parser->release();
    auto request = std::make_shared<Request>();
    request->method = std::string(message.method_string());
    request->target = std::string(message.target());
    for (const auto& field : message)
      request->headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    request->body = std::move(message.body());
    request->peer = peer_;
    request->tls = tls_;
    request->loopback = loopback_;
    const bool keep_alive = message.keep_alive();
    const bool head = request->method == "HEAD";
    HttpService* service = &service_;
    // A plain connection's answer is written by the thread that made it, as far as the
    // socket takes it without waiting: a pool thread handing it back to the I/O thread first
    // would put one more thread wake-up between the request and its answer. Nothing else uses the
    // socket meanwhile (the session is busy, so shutdown leaves it alone, and no operation
    // is pending that a deadline could cancel). TLS records are written by the I/O thread.
    const int fd = tls_ ? -1 : lowest_.socket().native_handle();
    auto handle = [service, request, head, keep_alive, fd]() -> Wire {
      Response response;
      try {
        response = service->handler()(*request);
      } catch (const std::exception& e) {
        MK_LOG_WARN("http: {} {} failed: {}", request->method, request->target, e.what());
        response = Response();
        response.status = 500;
        response.body = "Internal error\n";
        response.close = true;
      }
      Wire wire = to_wire(std::move(response), service->options().server_name, head, keep_alive);
      if (fd >= 0 && wire.delay.count() == 0) wire.write_now(fd);
      return wire;
    };
    Wire wire;
    if (service_.at_once(*request))
      wire = handle();
    else
      wire = co_await service_.pool().run(std::move(handle));
    bool go_on = co_await send(std::move(wire));
    sessions.set_busy(id, false);
    // An idle keep-alive connection keeps no large body buffer.
    if (buffer_.capacity() > kIdleBuffer) buffer_.shrink_to_fit();
    if (!go_on) break;
  }
  sessions.remove(id);
  boost::system::error_code ignored;
  lowest_.socket().shutdown(net::tcp::socket::shutdown_send, ignored);
}

std::pair<std::string, bool> describe_peer(const net::tcp::socket& socket) {
  boost::system::error_code ec;
  auto ep = socket.remote_endpoint(ec);
  if (ec) return {"unknown", false};
  return {ep.address().to_string() + ":" + std::to_string(ep.port()), ep.address().is_loopback()};
}

}  // namespace

awaitable<void> HttpService::serve(net::tcp::socket socket) {
  std::pair<std::string, bool> who = describe_peer(socket);
  beast::tcp_stream stream(std::move(socket));
  HttpConnection<beast::tcp_stream> connection(*this, stream, stream, who.first, false, who.second);
  co_await connection.run();
}

awaitable<void> HttpService::serve_tls(net::tcp::socket socket) {
  std::pair<std::string, bool> who = describe_peer(socket);
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), tls_->ssl_context());
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(30));
  boost::system::error_code ec;
  co_await stream.async_handshake(asio::ssl::stream_base::server,
                                  asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    MK_LOG_INFO("https: TLS handshake with {} failed: {}", who.first, ec.message());
    co_return;
  }
  HttpConnection<beast::ssl_stream<beast::tcp_stream>> connection(
      *this, stream, beast::get_lowest_layer(stream), who.first, true, who.second);
  co_await connection.run();
  beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(5));
  co_await stream.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace mailark::http
