// Networking on Boost.Asio with C++20 coroutines: a pool for blocking store work, a
// buffered connection with line reads and an idle deadline, listeners, and the registry
// that lets the server drain sessions on shutdown. Included only by protocol session files
// and the server wiring (Asio headers are heavy).
#pragma once

#include <utility>  // Boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"

namespace boost::asio::ssl {
class context;
}

namespace mailark::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
template <typename T>
using awaitable = asio::awaitable<T>;

// Runs blocking work (SQLite, fsync, argon2) off the I/O threads. The thread that became
// idle last takes the next job: under light load one warm thread (its stack, its malloc
// cache, the CPU caches it left) does the work, where a shared condition variable would
// hand the jobs round every thread of the pool in turn.
class BlockingPool {
 public:
  explicit BlockingPool(int threads);
  ~BlockingPool() { join(); }
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Runs `fn` on the pool and resumes the caller on its own executor with the result.
  // Callers pass a named function object (see the note on temporaries below).
  template <typename F>
  auto run(F fn) -> awaitable<decltype(fn())> {
    using R = decltype(fn());
    auto work = std::make_shared<F>(std::move(fn));
    // Named, not temporaries: GCC 12 destroys non-trivial temporaries of a co_await
    // full-expression twice.
    auto initiation = [this, work](auto handler) {
      auto ex = asio::get_associated_executor(handler);
      auto job = [work, ex, handler = std::move(handler)]() mutable {
        // An exception (bad_alloc from a hostile request, say) goes back to the caller's
        // coroutine, ending that session; escaping here would terminate the process.
        auto result = std::make_shared<std::optional<R>>();
        std::exception_ptr error;
        try {
          result->emplace((*work)());
        } catch (...) {
          error = std::current_exception();
        }
        asio::post(ex, [result, error, handler = std::move(handler)]() mutable {
          std::move(handler)(error, std::move(*result));
        });
      };
      post(std::make_unique<Job<decltype(job)>>(std::move(job)));
    };
    auto operation = asio::async_initiate<decltype(asio::use_awaitable),
                                          void(std::exception_ptr, std::optional<R>)>(
        std::move(initiation), asio::use_awaitable);
    std::optional<R> out = co_await std::move(operation);
    co_return std::move(*out);
  }
  // Runs the jobs already posted, then stops the threads. Jobs posted afterwards never run.
  void join();
  // Threads waiting for a job.
  size_t idle_threads();

 private:
  struct JobBase {
    virtual ~JobBase() = default;
    virtual void run() = 0;
  };
  template <typename Fn>
  struct Job : JobBase {
    explicit Job(Fn fn) : fn(std::move(fn)) {}
    void run() override { fn(); }
    Fn fn;
  };
  struct Worker;

  void post(std::unique_ptr<JobBase> job);
  void work();

  std::mutex mu_;
  std::deque<std::unique_ptr<JobBase>> queue_;  // jobs no idle thread has taken yet
  std::vector<Worker*> idle_;                   // the last one became idle last
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// A server certificate and key loaded for TLS (OpenSSL through Asio), shared by every
// connection of the listeners that use it.
class TlsContext {
 public:
  // Loads the PEM certificate chain and private key; kIo/kInvalid with OpenSSL's reason.
  static Result<std::shared_ptr<TlsContext>> load(const std::string& cert_path,
                                                  const std::string& key_path);
  ~TlsContext();
  struct Impl;
  Impl& impl() { return *impl_; }
  // The OpenSSL context for streams of other libraries (Beast's HTTP over TLS).
  boost::asio::ssl::context& ssl_context();

 private:
  explicit TlsContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A client connection: buffered reads, line framing with a length bound, writes, and an
// idle deadline that closes the socket when it passes.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(tcp::socket socket);
  ~Connection();

  enum class LineStatus { kOk, kTooLong, kClosed };
  // Reads one line (without CRLF or LF) of at most `max` bytes. An over-long line is
  // consumed up to its LF and reported as kTooLong, with its first bytes in `line`.
  awaitable<LineStatus> read_line(std::string* line, size_t max);
  // After kTooLong: the last bytes of that line (up to 256).
  const std::string& line_tail() const { return line_tail_; }
  // Feeds buffered and then newly read bytes to `consume` (which returns how many it used)
  // until it reports done. False when the peer closed first. Pass named function objects:
  // GCC 12 mishandles non-trivial temporaries inside a co_await full-expression, and (seen
  // here) a coroutine whose statements mix a call on a temporary into a compound
  // assignment; keep coroutine bodies to simple statements.
  awaitable<bool> read_until(const std::function<size_t(std::string_view)>& consume,
                             const std::function<bool()>& done);
  awaitable<bool> write(std::string data);
  // Starts TLS as the server (implicit TLS at connect, or after STARTTLS's OK). Bytes the
  // client sent in plaintext after the command are discarded, so nothing injected before the
  // handshake can be taken as sent under TLS. False when the handshake fails.
  awaitable<bool> start_tls(TlsContext& context);
  bool is_tls() const { return tls_ != nullptr; }
  // True when a complete line is already buffered (pipelined commands): replies can wait.
  bool has_buffered_line() const;

  void set_idle_timeout(std::chrono::seconds timeout) {
    timeout_ = timeout;
    touch();
  }
  // True once the idle deadline passed. The pending read is then cancelled so the session
  // can send its timeout reply; if the peer does not take it, the socket is closed shortly
  // after.
  bool timed_out() const { return timed_out_; }
  // Arms the watchdog; call once after construction (the Connection must be owned by a
  // shared_ptr), from the connection's executor.
  void start_watchdog();
  void close();
  // Interrupts a pending read (used to drain idle sessions on shutdown).
  void cancel();
  bool closed() const { return closed_; }
  asio::any_io_executor executor() { return socket_.get_executor(); }
  std::string peer() const { return peer_; }
  bool peer_is_loopback() const { return loopback_; }

 private:
  awaitable<bool> fill();
  std::string_view buffered() const { return {buffer_.data() + start_, end_ - start_}; }
  void on_watchdog();
  void touch() { deadline_ = std::chrono::steady_clock::now() + timeout_; }

  struct Tls;
  tcp::socket socket_;
  std::unique_ptr<Tls> tls_;
  asio::steady_timer timer_;
  std::chrono::seconds timeout_{300};
  std::chrono::steady_clock::time_point deadline_;
  // Received bytes are buffer_[start_, end_); the rest of buffer_ is room for the next read.
  // The buffer is given back while the connection waits with nothing buffered, so an idle
  // connection holds no read buffer (IMAP keeps thousands of idle sessions); it starts
  // small and grows only for a peer that sends a lot at once.
  std::string buffer_;
  size_t start_ = 0;
  size_t end_ = 0;
  bool last_read_full_ = false;
  std::string line_tail_;
  bool closed_ = false;
  bool timed_out_ = false;
  std::string peer_;
  bool loopback_ = false;
};

// Live sessions, so shutdown can interrupt the idle ones and wait for the busy ones.
class SessionRegistry {
 public:
  // `interrupt` runs (on shutdown) for sessions that are idle at that moment.
  int add(std::function<void()> interrupt);
  void remove(int id);
  void set_busy(int id, bool busy);
  // Interrupts idle sessions now; busy ones are interrupted when they become idle.
  void shut_down();
  bool shutting_down() const;
  size_t size() const;

 private:
  struct Entry {
    std::function<void()> interrupt;
    bool busy = false;
  };
  mutable std::mutex mu_;
  std::map<int, Entry> sessions_;
  int next_ = 1;
  bool shutting_down_ = false;
};

// Accepts connections on one address and starts `serve` for each as a detached coroutine on
// the listener's io_context.
class Listener {
 public:
  using Serve = std::function<awaitable<void>(tcp::socket)>;
  // `refusal` is written to a connection refused because `max_connections` are open (for
  // example "421 4.3.2 Too many connections\r\n"); empty closes silently.
  Listener(asio::io_context& io, std::string name, Serve serve, int max_connections,
           std::string refusal = {});
  // How a listener shares its port with others of this process (SO_REUSEPORT): the kernel
  // spreads new connections over a group's listeners, each run by its own thread.
  enum class Sharing {
    kAlone,
    kFirst,  // the first of a group: fails like kAlone when anyone else listens there
    kJoin,   // binds the port the first one got
  };
  // Binds and listens; port 0 picks a free port (see port()).
  Status listen(const std::string& address, int port, Sharing sharing = Sharing::kAlone);
  // Counts this listener's connections against `other`'s limit (listeners sharing a port).
  void share_connection_limit(const Listener& other) { active_ = other.active_; }
  void start();
  // Stops accepting; callable from any thread.
  void stop();
  int port() const { return port_; }
  const std::string& name() const { return name_; }

 private:
  awaitable<void> accept_loop();

  asio::io_context& io_;
  std::string name_;
  Serve serve_;
  int max_connections_;
  std::string refusal_;
  std::shared_ptr<std::atomic<int>> active_ = std::make_shared<std::atomic<int>>(0);
  tcp::acceptor acceptor_;
  int port_ = 0;
};

}  // namespace mailark::net
