// Recently read small bodies (calendar objects and contacts), decoded, by digest: a body read
// again skips the messages lookup and the decompression. Readers still check every body
// against its digest (invariant 3), so a cached body is verified on every read too.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "base/hash.h"

namespace mailark {

class BodyCache {
 public:
  // Bodies larger than this are never kept: a cache for objects, not for mail.
  static constexpr size_t kMaxBody = 64 * 1024;

  // 0 bytes: nothing is kept.
  void set_capacity(size_t bytes);
  // Copies the body into `out` when it is kept and still matches `digest` (a mismatch,
  // which only damaged memory can cause, drops the entry); false otherwise.
  bool get(const Digest& digest, std::string& out);
  // Keeps `body`, read and verified against `digest` by the caller, evicting the least
  // recently used bodies beyond the capacity.
  void put(const Digest& digest, std::string_view body);
  size_t bytes() const;
  size_t entries() const;

 private:
  struct Entry {
    std::string body;
    std::list<Digest>::iterator recent;
  };
  void evict_locked();

  mutable std::mutex mu_;
  size_t capacity_ = 0;
  size_t bytes_ = 0;
  std::list<Digest> recent_;  // most recently used first
  std::unordered_map<Digest, Entry, DigestHash> entries_;
};

}  // namespace mailark
