// The content-addressed blob store of one database: every message body is stored once under
// the SHA-256 of its raw bytes, zstd-compressed, and verified against that hash on every
// read (invariant 3). Layout and file format: docs/formats/blob.md.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "os/file.h"

namespace mailark {

// Streams one blob's content in pieces, so a large message is never held whole: decoding and
// the SHA-256 run as the bytes go by. A damaged stream is reported as soon as it is found; a
// content hash mismatch only at the end, so callers that must never send unverified bytes
// read the blob once through (verify) before streaming it out.
class BlobReader {
 public:
  // A blob file, or a blob in its encoded form (kept inline in the database).
  static Result<std::unique_ptr<BlobReader>> open_file(FileSystem& fs, const std::string& path,
                                                       const Digest& digest);
  static Result<std::unique_ptr<BlobReader>> open_encoded(std::string encoded,
                                                          const Digest& digest);
  ~BlobReader();

  uint64_t size() const { return size_; }
  // Appends up to `max` content bytes to `out` and returns how many; 0 once everything has
  // been read and verified. kCorrupt when the data is damaged or does not hash to the digest.
  Result<size_t> read(size_t max, std::string* out);

 private:
  BlobReader(const Digest& digest, uint64_t size, uint8_t kind);
  Status refill();

  Digest digest_;
  uint64_t size_ = 0;
  uint8_t kind_ = 0;
  std::unique_ptr<ReadableFile> file_;  // or
  std::string encoded_;                 // the whole encoded blob when inline
  uint64_t offset_ = 0;                 // next encoded byte to read
  uint64_t encoded_size_ = 0;
  std::string input_;  // encoded bytes read, not yet decoded
  size_t input_pos_ = 0;
  uint64_t produced_ = 0;
  bool done_ = false;
  void* dstream_ = nullptr;  // ZSTD_DStream
  Sha256 hash_;
};

// Memory that reads made one after another reuse (a search going through a folder's
// messages): kept allocated from one read to the next, so a large body is not allocated,
// zero-filled and faulted in again for every message.
struct BlobBuffers {
  std::string encoded;  // the blob as stored, as read
  std::string content;  // the verified content: what a read gives
};

class BlobStore {
 public:
  // `root` is the database's blobs/ directory; created by create_layout().
  BlobStore(FileSystem& fs, std::string root) : fs_(fs), root_(std::move(root)) {}

  // Creates root, tmp/ and the 256 fan-out directories, durably.
  Status create_layout();

  struct PutResult {
    Digest digest{};
    uint64_t stored_size = 0;  // bytes on disk
    // The fan-out directory holding the new entry. It must be synced (sync_dirs) before any
    // metadata that references the blob commits; group commit shares that fsync.
    std::string dir_to_sync;
    bool was_present = false;
  };
  // Stores `content` durably (file fsynced). Idempotent: an intact existing copy is kept; a
  // corrupt existing copy is replaced (self-heal).
  // `known_digest`, when given, is the caller's SHA-256 of `content` (saves hashing twice).
  Result<PutResult> put(std::string_view content, const Digest* known_digest = nullptr);
  Status sync_dirs(const std::set<std::string>& dirs);

  // Returns the content, verified against `digest`. A mismatch or undecodable file is
  // kCorrupt naming the blob; a missing file is kNotFound.
  Result<std::string> get(const Digest& digest) const;
  // The same into `buffers.content`, reusing their memory.
  Status get(const Digest& digest, BlobBuffers& buffers) const;
  // A streaming reader of the blob; kNotFound when the file is missing.
  Result<std::unique_ptr<BlobReader>> open(const Digest& digest) const;
  // get() without keeping the bytes.
  Status verify(const Digest& digest) const;
  bool contains(const Digest& digest) const;
  Status remove(const Digest& digest);
  // Removes temporary files older than `min_age_ms` (left by a crash mid-write; younger ones
  // may belong to another process writing right now). Returns how many were removed.
  int remove_stale_temporaries(int64_t now_ms, int64_t min_age_ms);
  // Every blob file present (for the checker), by digest; names that are not digests are
  // returned in `strays`.
  Result<std::vector<Digest>> list(std::vector<std::string>* strays = nullptr) const;

  std::string path_of(const Digest& digest) const;
  const std::string& root() const { return root_; }

  // File encoding, exposed for the checker and tests. Small blobs are kept in the same
  // encoding inside the database (messages.data) instead of a file of their own.
  static std::string encode(std::string_view content);
  static Result<std::string> decode(std::string_view file_bytes, const std::string& what);
  // decode() plus the check that the content hashes to `digest` (kCorrupt otherwise).
  static Result<std::string> decode_verified(std::string_view encoded, const Digest& digest);
  // The same into `content`, reusing its memory.
  static Status decode_verified(std::string_view encoded, const Digest& digest,
                                std::string& content);
  // The zstd frame inside an encoded blob ("" when it is stored raw); kCorrupt when the
  // header is damaged. Call after decode_verified().
  static Result<std::string> zstd_frame(std::string_view encoded);

 private:
  FileSystem& fs_;
  std::string root_;
};

}  // namespace mailark
