// The ingress cache: a replay log of every message mailark accepted (raw bytes, envelope,
// ingress id, time), kept apart from the databases (invariant 6) with retention by age and
// size. A delivery is acknowledged only after its ingress record is durable, so mail
// accepted after the last backup can always be re-delivered. Format: docs/formats/ingress.md.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "os/file.h"

namespace mailark {

struct IngressRecord {
  Guid id;
  int64_t time_ms = 0;
  std::string from;                     // envelope sender, "" for the null sender
  std::vector<std::string> recipients;  // normalized addresses accepted for delivery
  std::string message;                  // raw bytes, CRLF line ends
  Digest message_sha256{};              // SHA-256 of `message` (set by the writer)
  // Set by scan(): the sender was told the outcome (acknowledge() was called). A record
  // without it may have been retried by the sender under a new ingress id.
  bool acknowledged = false;
};

struct IngressRetention {
  int64_t max_age_ms = 14LL * 86'400'000;
  uint64_t max_bytes = uint64_t{20} << 30;
  uint64_t segment_bytes = uint64_t{64} << 20;
};

struct IngressScanStats {
  uint64_t segments = 0;
  uint64_t records = 0;
  uint64_t damaged = 0;  // records that failed their checksum (reported, skipped)
  int64_t oldest_ms = 0;
};

class IngressCache {
 public:
  // Opens the cache directory (creating it). Each open writes to a fresh segment, so a
  // torn tail left by a crash is never appended to and several processes can share it.
  static Result<std::unique_ptr<IngressCache>> open(FileSystem& fs, const std::string& dir,
                                                    IngressRetention retention);
  ~IngressCache();

  // Appends and makes durable. Concurrent callers share fsyncs (group sync).
  Status append(const IngressRecord& record);

  // The two halves of append(), so a caller can do other durable work (the store commit)
  // while the fsync runs: write() returns a ticket, wait_durable() blocks until that record
  // is on stable storage.
  Result<uint64_t> write(const IngressRecord& record);
  Status wait_durable(uint64_t ticket);

  // Notes that the sender received the replies for record `id`. Not fsynced on its own: it
  // becomes durable with the next append. Losing it only makes replay more careful.
  Status acknowledge(const Guid& id);

  // Calls `visit` for every intact record with since <= time < until, oldest first. A
  // visitor returning non-ok stops the scan with that status.
  Status scan(int64_t since, int64_t until,
              const std::function<Status(const IngressRecord&)>& visit,
              IngressScanStats* stats = nullptr);

  // Removes whole segments older than the retention age, then oldest segments while the
  // cache is larger than its size limit. Returns the number of segments removed.
  Result<int> prune(int64_t now);

  static std::string encode(const IngressRecord& record);
  static std::string encode_ack(const Guid& id, int64_t time_ms);

 private:
  IngressCache(FileSystem& fs, std::string dir, IngressRetention retention)
      : fs_(fs), dir_(std::move(dir)), retention_(retention) {}
  Status open_segment_locked();
  Status sync_through(uint64_t ticket);
  Status append_unsynced(const std::string& bytes);
  // Reads every segment, calling `visit` with each intact record or acknowledgement.
  // With `messages` false, message bytes are neither verified nor copied (ack pass).
  Status read_all(const std::function<Status(IngressRecord&, bool is_ack)>& visit,
                  IngressScanStats* stats, bool messages);

  FileSystem& fs_;
  std::string dir_;
  IngressRetention retention_;

  std::mutex mu_;
  std::condition_variable synced_cv_;
  std::unique_ptr<WritableFile> active_;
  std::string active_path_;
  uint64_t appended_ = 0;  // tickets handed out
  uint64_t synced_ = 0;    // tickets durable
  bool syncing_ = false;
  Status sticky_error_;  // an fsync failure poisons the segment; the next append rotates
};

}  // namespace mailark
