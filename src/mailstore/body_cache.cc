// BodyCache: an LRU list of digests beside a hash map of bodies, under one mutex.
#include "mailstore/body_cache.h"

#include "base/log.h"

namespace mailark {

void BodyCache::set_capacity(size_t bytes) {
  std::lock_guard lock(mu_);
  capacity_ = bytes;
  evict_locked();
}

bool BodyCache::get(const Digest& digest, std::string& out) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(digest);
    if (it == entries_.end()) return false;
    recent_.splice(recent_.begin(), recent_, it->second.recent);
    out.assign(it->second.body);
  }
  if (sha256(out) == digest) return true;
  MK_LOG_ERROR("body cache: the copy of {} in memory no longer matches it; dropped",
               to_hex(digest));
  // Entries never change once kept (put() skips a digest it holds), so this is the copy
  // that failed, unless another reader dropped it first.
  std::lock_guard lock(mu_);
  auto it = entries_.find(digest);
  if (it != entries_.end()) {
    bytes_ -= it->second.body.size();
    recent_.erase(it->second.recent);
    entries_.erase(it);
  }
  return false;
}

void BodyCache::put(const Digest& digest, std::string_view body) {
  if (body.size() > kMaxBody) return;
  std::lock_guard lock(mu_);
  if (body.size() > capacity_ || entries_.count(digest)) return;
  recent_.push_front(digest);
  entries_.emplace(digest, Entry{std::string(body), recent_.begin()});
  bytes_ += body.size();
  evict_locked();
}

void BodyCache::evict_locked() {
  while (bytes_ > capacity_ && !recent_.empty()) {
    auto it = entries_.find(recent_.back());
    bytes_ -= it->second.body.size();
    entries_.erase(it);
    recent_.pop_back();
  }
}

size_t BodyCache::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

size_t BodyCache::entries() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

}  // namespace mailark
