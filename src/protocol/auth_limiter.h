// Authentication failure accounting shared by every protocol (IMAP now, DAV later): each
// failure from an address is answered after a delay that grows with the failures, and an
// address that failed too often within the window is refused without a password check until
// the window has passed. Thread-safe; in memory (a restart forgets, which only helps users).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace mailark {

struct AuthLimits {
  int max_failures = 10;  // per address within `window`
  std::chrono::seconds window{15 * 60};
  std::chrono::milliseconds failure_delay{2000};  // first failure; doubles, up to 4x
};

class AuthLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit AuthLimiter(AuthLimits limits) : limits_(limits) {}

  // True when `address` (a peer IP) may not try now.
  bool blocked(const std::string& address, Clock::time_point now = Clock::now());
  // Records a failure; returns how long to wait before answering it.
  std::chrono::milliseconds failed(const std::string& address,
                                   Clock::time_point now = Clock::now());
  // A successful login does not clear the address's failures (one good account must not
  // unlock guessing at others), but its own delay is not applied.
  const AuthLimits& limits() const { return limits_; }
  size_t tracked() const;

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point window_start;
  };
  void expire(Clock::time_point now);

  AuthLimits limits_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

// The address part of "ip:port" / "[v6]:port" peer strings, for counting per address.
std::string peer_address(const std::string& peer);

}  // namespace mailark
