// Authentication failure delays and per-address limits.
#include "protocol/auth_limiter.h"

#include <algorithm>

namespace mailark {

void AuthLimiter::expire(Clock::time_point now) {
  // Bounded work per call: the map only holds addresses that failed within a window.
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (now - it->second.window_start >= limits_.window)
      it = entries_.erase(it);
    else
      ++it;
  }
}

bool AuthLimiter::blocked(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return false;
  if (now - it->second.window_start >= limits_.window) {
    entries_.erase(it);
    return false;
  }
  return it->second.failures >= limits_.max_failures;
}

std::chrono::milliseconds AuthLimiter::failed(const std::string& address, Clock::time_point now) {
  std::lock_guard lock(mu_);
  if (entries_.size() > 10000) expire(now);
  Entry& e = entries_[address];
  if (e.failures == 0 || now - e.window_start >= limits_.window) {
    e.failures = 0;
    e.window_start = now;
  }
  ++e.failures;
  int factor = 1 << std::min(e.failures - 1, 2);
  return limits_.failure_delay * factor;
}

size_t AuthLimiter::tracked() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::string peer_address(const std::string& peer) {
  auto colon = peer.rfind(':');
  if (colon == std::string::npos) return peer;
  return peer.substr(0, colon);
}

}  // namespace mailark
