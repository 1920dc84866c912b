// Connection, registry and listener implementations.
#include "net/net.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include "base/log.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mailark::net {

struct BlockingPool::Worker {
  std::condition_variable wake;
  std::unique_ptr<JobBase> job;  // handed over by post() while this worker was idle
};

BlockingPool::BlockingPool(int threads) {
  threads_.reserve(static_cast<size_t>(std::max(threads, 1)));
  for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { work(); });
}

void BlockingPool::post(std::unique_ptr<JobBase> job) {
  std::unique_lock lock(mu_);
  if (stopping_) return;
  if (idle_.empty()) {
    queue_.push_back(std::move(job));
    return;
  }
  Worker* worker = idle_.back();
  idle_.pop_back();
  worker->job = std::move(job);
  lock.unlock();
  worker->wake.notify_one();
}

void BlockingPool::work() {
  Worker self;
  std::unique_lock lock(mu_);
  while (true) {
    std::unique_ptr<JobBase> job;
    if (!queue_.empty()) {
      job = std::move(queue_.front());
      queue_.pop_front();
    } else if (stopping_) {
      return;
    } else {
      idle_.push_back(&self);
      self.wake.wait(lock, [&] { return self.job != nullptr || stopping_; });
      if (!self.job) {  // stopping: leave the idle stack before `self` goes away
        idle_.erase(std::find(idle_.begin(), idle_.end(), &self));
        continue;
      }
      job = std::move(self.job);
    }
    lock.unlock();
    job->run();
    job.reset();  // the job's captures die off the lock
    lock.lock();
  }
}

size_t BlockingPool::idle_threads() {
  std::lock_guard lock(mu_);
  return idle_.size();
}

void BlockingPool::join() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (Worker* w : idle_) w->wake.notify_one();
  }
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

struct TlsContext::Impl {
  asio::ssl::context context{asio::ssl::context::tls_server};
};

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsContext::~TlsContext() = default;
asio::ssl::context& TlsContext::ssl_context() {
  return impl_->context;
}

Result<std::shared_ptr<TlsContext>> TlsContext::load(const std::string& cert_path,
                                                     const std::string& key_path) {
  auto impl = std::make_unique<Impl>();
  SSL_CTX* ctx = impl->context.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections give their OpenSSL record buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  auto openssl_error = [](const std::string& what) {
    unsigned long e = ERR_get_error();
    char text[256] = "unknown error";
    if (e) ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    return what + ": " + text;
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_path.c_str()) != 1)
    return io_error(openssl_error("cannot load TLS certificate " + cert_path));
  if (SSL_CTX_use_PrivateKey_file(ctx, key_path.c_str(), SSL_FILETYPE_PEM) != 1)
    return io_error(openssl_error("cannot load TLS key " + key_path));
  if (SSL_CTX_check_private_key(ctx) != 1)
    return invalid(openssl_error("TLS key " + key_path + " does not match " + cert_path));
  return std::shared_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

struct Connection::Tls {
  Tls(tcp::socket& socket, asio::ssl::context& context) : stream(socket, context) {}
  asio::ssl::stream<tcp::socket&> stream;
};

Connection::Connection(tcp::socket socket)
    : socket_(std::move(socket)), timer_(socket_.get_executor()) {
  boost::system::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) {
    peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
    loopback_ = ep.address().is_loopback();
  }
  socket_.set_option(tcp::no_delay(true), ec);
  touch();
}

Connection::~Connection() {
  close();
}

void Connection::start_watchdog() {
  timer_.expires_at(deadline_);
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->closed_) return;
    self->on_watchdog();
  });
}

void Connection::on_watchdog() {
  if (std::chrono::steady_clock::now() < deadline_) {
    start_watchdog();
    return;
  }
  boost::system::error_code ignored;
  if (!timed_out_) {
    MK_LOG_DEBUG("connection {} idle timeout", peer_);
    timed_out_ = true;
    socket_.cancel(ignored);
    // Give the session a few seconds to write its goodbye, then close regardless.
    deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    start_watchdog();
    return;
  }
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  timer_.cancel();
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

void Connection::cancel() {
  boost::system::error_code ec;
  socket_.cancel(ec);
}

// (At namespace scope: GCC 12 miscompiles constexpr locals inside coroutine bodies.)
constexpr size_t kSmallRead = 4096;
constexpr size_t kLinePrefix = 256;
constexpr size_t kLargeRead = 65536;

awaitable<bool> Connection::fill() {
  if (closed_) co_return false;
  if (start_ == end_) {
    start_ = end_ = 0;
    if (buffer_.size() > kSmallRead) std::string().swap(buffer_);
    if (!tls_) {
      // Wait for data before taking a buffer. (Not under TLS: a whole record may already
      // sit decrypted-pending inside the TLS engine while the socket is quiet.)
      std::string().swap(buffer_);
      boost::system::error_code wait_ec;
      co_await socket_.async_wait(tcp::socket::wait_read,
                                  asio::redirect_error(asio::use_awaitable, wait_ec));
      if (wait_ec || timed_out_ || closed_) co_return false;
    }
  } else if (start_ > 0 && start_ >= end_ / 2) {
    std::memmove(buffer_.data(), buffer_.data() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  size_t want = last_read_full_ ? kLargeRead : kSmallRead;
  if (buffer_.size() < end_ + want) buffer_.resize(end_ + want);
  size_t room = buffer_.size() - end_;
  boost::system::error_code ec;
  size_t n = 0;
  if (tls_) {
    n = co_await tls_->stream.async_read_some(asio::buffer(buffer_.data() + end_, room),
                                              asio::redirect_error(asio::use_awaitable, ec));
  } else {
    n = co_await socket_.async_read_some(asio::buffer(buffer_.data() + end_, room),
                                         asio::redirect_error(asio::use_awaitable, ec));
  }
  end_ += n;
  last_read_full_ = n == room;
  if (ec || n == 0 || timed_out_) co_return false;
  touch();
  co_return true;
}

awaitable<bool> Connection::start_tls(TlsContext& context) {
  if (closed_ || tls_) co_return false;
  start_ = end_ = 0;
  std::string().swap(buffer_);
  tls_ = std::make_unique<Tls>(socket_, context.impl().context);
  boost::system::error_code ec;
  co_await tls_->stream.async_handshake(asio::ssl::stream_base::server,
                                        asio::redirect_error(asio::use_awaitable, ec));
  if (ec || timed_out_) {
    MK_LOG_DEBUG("connection {}: TLS handshake failed: {}", peer_, ec.message());
    close();
    co_return false;
  }
  touch();
  co_return true;
}

bool Connection::has_buffered_line() const {
  return std::memchr(buffer_.data() + start_, '\n', end_ - start_) != nullptr;
}

awaitable<Connection::LineStatus> Connection::read_line(std::string* line, size_t max) {
  bool too_long = false;
  while (true) {
    const char* base = buffer_.data();
    const void* found = std::memchr(base + start_, '\n', end_ - start_);
    if (found) {
      size_t lf = static_cast<size_t>(static_cast<const char*>(found) - base);
      size_t end = lf;
      if (end > start_ && buffer_[end - 1] == '\r') --end;
      if (!too_long && end - start_ <= max) {
        line->assign(base + start_, end - start_);
      } else {
        if (!too_long) line->assign(base + start_, std::min<size_t>(end - start_, kLinePrefix));
        too_long = true;
        // The end of the line too: it may announce a literal the caller must not take for
        // commands.
        size_t tail = std::min<size_t>(end - start_, kLinePrefix);
        line_tail_.assign(base + end - tail, tail);
      }
      start_ = lf + 1;
      co_return too_long ? LineStatus::kTooLong : LineStatus::kOk;
    }
    if (end_ - start_ > max + 2) {
      // Drop what we have of the over-long line (keeping its start, for the caller's error
      // reply) and keep reading to its end.
      if (!too_long) line->assign(buffer_.data() + start_, kLinePrefix);
      too_long = true;
      start_ = end_ = 0;
    }
    if (!co_await fill()) co_return LineStatus::kClosed;
  }
}

awaitable<bool> Connection::read_until(const std::function<size_t(std::string_view)>& consume,
                                       const std::function<bool()>& done) {
  while (true) {
    if (start_ < end_) {
      size_t used = consume(buffered());
      start_ += used;
      if (start_ == end_) start_ = end_ = 0;
    }
    if (done()) co_return true;
    bool more = co_await fill();
    if (!more) co_return false;
  }
}

awaitable<bool> Connection::write(std::string data) {
  if (closed_) co_return false;
  boost::system::error_code ec;
  if (tls_) {
    co_await asio::async_write(tls_->stream, asio::buffer(data),
                               asio::redirect_error(asio::use_awaitable, ec));
  } else {
    co_await asio::async_write(socket_, asio::buffer(data),
                               asio::redirect_error(asio::use_awaitable, ec));
  }
  if (!timed_out_) touch();
  co_return !ec;
}

int SessionRegistry::add(std::function<void()> interrupt) {
  std::lock_guard lock(mu_);
  int id = next_++;
  sessions_[id] = Entry{std::move(interrupt), false};
  return id;
}

void SessionRegistry::remove(int id) {
  std::lock_guard lock(mu_);
  sessions_.erase(id);
}

void SessionRegistry::set_busy(int id, bool busy) {
  std::function<void()> interrupt;
  {
    std::lock_guard lock(mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    it->second.busy = busy;
    if (!busy && shutting_down_) interrupt = it->second.interrupt;
  }
  if (interrupt) interrupt();
}

void SessionRegistry::shut_down() {
  std::vector<std::function<void()>> idle;
  {
    std::lock_guard lock(mu_);
    shutting_down_ = true;
    for (auto& [id, e] : sessions_)
      if (!e.busy) idle.push_back(e.interrupt);
  }
  for (auto& f : idle) f();
}

bool SessionRegistry::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutting_down_;
}

size_t SessionRegistry::size() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

Listener::Listener(asio::io_context& io, std::string name, Serve serve, int max_connections,
                   std::string refusal)
    : io_(io),
      name_(std::move(name)),
      serve_(std::move(serve)),
      max_connections_(max_connections),
      refusal_(std::move(refusal)),
      acceptor_(io) {}

Status Listener::listen(const std::string& address, int port, Sharing sharing) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return invalid(name_ + ": bad listen address " + address);
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  auto failed = [&] {
    return io_error(name_ + ": cannot listen on " + address + ":" + std::to_string(port) + ": " +
                    ec.message());
  };
  if (sharing == Sharing::kFirst && port != 0) {
    // A socket without SO_REUSEPORT cannot bind a port anyone listens on, also another
    // process's listener that set SO_REUSEPORT (which the group's own binds would join).
    tcp::acceptor probe(io_);
    probe.open(ep.protocol(), ec);
    if (!ec) probe.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) probe.bind(ep, ec);
    if (ec) return failed();
  }
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && sharing != Sharing::kAlone) {
    const int on = 1;
    if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
      ec.assign(errno, boost::system::system_category());
  }
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return failed();
  port_ = acceptor_.local_endpoint().port();
  return Status::ok();
}

void Listener::start() {
  asio::co_spawn(io_, accept_loop(), asio::detached);
}

void Listener::stop() {
  // The acceptor belongs to its io_context's thread.
  asio::post(io_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
}

awaitable<void> Listener::accept_loop() {
  while (acceptor_.is_open()) {
    boost::system::error_code ec;
    tcp::socket socket =
        co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (!acceptor_.is_open()) break;
      MK_LOG_WARN("{}: accept failed: {}", name_, ec.message());
      continue;
    }
    if (*active_ >= max_connections_) {
      MK_LOG_WARN("{}: connection limit {} reached, refusing a connection", name_,
                  max_connections_);
      if (!refusal_.empty()) {
        // Best effort, never blocking the accept loop: a fresh socket's buffer is empty.
        socket.non_blocking(true, ec);
        socket.write_some(asio::buffer(refusal_), ec);
      }
      socket.shutdown(tcp::socket::shutdown_both, ec);
      socket.close(ec);
      continue;
    }
    ++*active_;
    auto active = active_;
    asio::co_spawn(io_, serve_(std::move(socket)), [active](std::exception_ptr e) {
      --*active;
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          MK_LOG_ERROR("session ended by exception: {}", ex.what());
        }
      }
    });
  }
}

}  // namespace mailark::net
