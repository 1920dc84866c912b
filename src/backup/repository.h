// A backup repository (format: docs/formats/backup-repository.md): content-addressed objects
// (message bodies and metadata trees, named by the SHA-256 of their content) packed into
// encrypted pack files, index files that say where each object is, base-backup snapshots and
// archived journal segments. Written only by appending new files under names derived from
// their content, so an interrupted write leaves a valid repository, and the next writer
// indexes any pack that lost its index instead of uploading it again.
// Not thread-safe: one Repository object per thread; several processes may write one
// repository at the same time (each file is written whole, under a unique name). Internally a
// full pack is hashed and written on a thread of its own while the next one fills; every
// other use of the backend waits for that write first, and flush() reports its outcome.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "backup/backend.h"
#include "backup/crypto.h"
#include "base/hash.h"
#include "base/status.h"
#include "storage/journal.h"

namespace mailark {

inline constexpr int kRepositoryFormatVersion = 1;
// Present while `backup prune` runs; writers do not start then (docs/formats/backup-repository.md).
inline constexpr const char* kPruneMarker = "locks/prune";

enum class ObjectType : uint8_t { kMessage = 1, kTree = 2 };

struct ObjectLocation {
  Digest pack{};
  uint64_t offset = 0;
  uint32_t length = 0;      // sealed bytes in the pack
  uint64_t raw_length = 0;  // content bytes
  ObjectType type = ObjectType::kMessage;
};

// How the repository key is obtained: a key file, or a passphrase run through argon2id with
// the salt stored in the repository's config.
struct KeySource {
  std::optional<BackupKey> key;  // from the key file
  std::string passphrase;        // used when `key` is empty
  Argon2Params argon2;           // for new passphrase repositories
};

// One archived journal segment: records first..last of one database.
struct JournalSegment {
  std::string database_guid;
  int64_t first = 0;
  int64_t last = 0;
  std::string file;  // "journal/<guid>/<first>-<last>"
};

// What a problem-finding pass reports; each entry names the file or object.
struct RepositoryProblem {
  std::string where;  // "pack 3fa4…", "index 91bc…", "snapshot …", "config"
  std::string what;
};

class Repository {
 public:
  // Opens the repository in `backend`; kNotFound when there is none, kInvalid for a key that
  // does not match it ("wrong key").
  static Result<std::unique_ptr<Repository>> open(std::string name,
                                                  std::unique_ptr<RepositoryBackend> backend,
                                                  const KeySource& key);
  // Creates one (kExists when the backend already holds a repository).
  static Result<std::unique_ptr<Repository>> create(std::string name,
                                                    std::unique_ptr<RepositoryBackend> backend,
                                                    const KeySource& key, Cipher cipher);
  // Creates one with the same id, key parameters and cipher as `like` (a copy target).
  static Result<std::unique_ptr<Repository>> create_like(std::string name,
                                                         std::unique_ptr<RepositoryBackend> backend,
                                                         const Repository& like);
  ~Repository();

  const std::string& name() const { return name_; }
  std::string describe() const { return name_ + " (" + backend_->describe() + ")"; }
  const std::string& id() const { return id_; }
  const std::string& key_id() const { return key_id_; }
  RepositoryBackend& backend() { return *io(); }

  // Reads every index file, and indexes packs that an interrupted writer left without one
  // (writing a new index file for them unless `read_only`). Damaged index files are skipped
  // and reported in `problems` (their packs are then indexed from their own headers).
  Status load_index(bool read_only = false, std::vector<RepositoryProblem>* problems = nullptr);
  bool has_object(const Digest& id) const;
  std::optional<ObjectLocation> locate(const Digest& id) const;
  size_t object_count() const { return index_.size(); }
  // Packs the index names, with their sizes.
  const std::map<Digest, uint64_t>& packs() const { return pack_sizes_; }

  // The object's content, decrypted and verified against its id (kCorrupt names the object
  // and pack; kNotFound when the index does not know it).
  Result<std::string> read_object(const Digest& id);

  // Adds an object unless the repository (or this writer) already has it. Returns true when
  // it was new. Objects become durable with the pack holding them; call flush() at the end.
  // `zstd_frame`: the content already compressed (one zstd frame), as the store keeps it, so
  // it is not compressed again; an empty frame means store it uncompressed.
  Result<bool> add_object(ObjectType type, const Digest& id, std::string_view content,
                          std::optional<std::string_view> zstd_frame = std::nullopt);
  // The two halves of add_object(), for callers that seal on other threads: seal_object() is
  // thread-safe; add_sealed() appends what it returned (unless the object is there already).
  Result<std::string> seal_object(const Digest& id, std::string_view content,
                                  std::optional<std::string_view> zstd_frame = std::nullopt) const;
  Result<bool> add_sealed(ObjectType type, const Digest& id, std::string_view sealed,
                          uint64_t raw_length);
  // Writes the open pack and the index of every pack written since the last index file.
  Status flush();
  uint64_t bytes_uploaded() const { return bytes_uploaded_; }

  // Base backups. A snapshot is written last, after everything it references is durable.
  Result<std::string> write_snapshot(const std::string& json);  // returns its id
  Result<std::vector<std::string>> snapshot_ids();
  Result<std::string> read_snapshot(const std::string& id);  // the JSON
  Status remove_snapshot(const std::string& id);

  // Journal archive of one database (by database GUID).
  Status write_segment(const std::string& database_guid, const std::vector<JournalRecord>& records);
  Result<std::vector<JournalSegment>> segments(const std::string& database_guid);
  // Every database GUID with archived journal.
  Result<std::vector<std::string>> archived_databases();
  // The records, each checked against its hash and chained within the segment.
  Result<std::vector<JournalRecord>> read_segment(const JournalSegment& segment);

  // Every pack file re-read: its name is the hash of its bytes, its header decrypts, and every
  // object decrypts and hashes to its id.
  Status verify_pack(const Digest& pack, std::vector<RepositoryProblem>* problems);

  // Packs are closed at this size.
  static constexpr size_t kPackTarget = 16u << 20;
  // For prune: writes one index file naming every indexed pack except `drop` (returns its
  // name), and removes a pack file.
  Result<std::string> rewrite_index(const std::set<Digest>& drop);
  // For prune's compaction: reads each object (verified) and writes it again into new packs;
  // the index then points at the new copies. Call flush() afterwards.
  Status rewrite_objects(const std::set<Digest>& ids);
  Status remove_pack(const Digest& pack);

  // For copy and repair: raw files moved between tiers unchanged.
  Result<std::string> read_file(const std::string& name) { return backend_->get(name); }

 private:
  Repository(std::string name, std::unique_ptr<RepositoryBackend> backend);
  Status read_config(const KeySource& key);
  Result<std::string> seal_file(std::string_view magic, std::string_view plain,
                                std::string_view context);
  Result<std::string> open_file(std::string_view magic, std::string_view bytes,
                                std::string_view context);
  Status append_to_pack(ObjectType type, const Digest& id, std::string_view content,
                        std::optional<std::string_view> zstd_frame = std::nullopt);
  Status append_sealed(ObjectType type, const Digest& id, std::string_view sealed,
                       uint64_t raw_length);
  Status finish_pack();
  // Waits for the pack being written, then records it in the index (or the write's failure
  // in write_error_).
  Status wait_pack_write();
  // The backend, once no pack write is in flight.
  RepositoryBackend* io();
  Status write_index();
  Result<std::vector<std::pair<Digest, ObjectLocation>>> read_pack_header(const Digest& pack,
                                                                          uint64_t size);

  std::string name_;
  std::unique_ptr<RepositoryBackend> backend_;
  std::string id_;
  std::string key_id_;
  std::string config_text_;
  Cipher cipher_ = Cipher::kAes256Gcm;
  std::optional<BackupKey> key_;

  std::unordered_map<Digest, ObjectLocation, DigestHash> index_;
  std::map<Digest, uint64_t> pack_sizes_;
  // Packs written (or found unindexed) whose entries are not in an index file yet.
  std::vector<Digest> unindexed_packs_;

  // The pack being filled.
  std::string pack_;
  struct PendingEntry {
    Digest id;
    ObjectLocation location;
  };
  std::vector<PendingEntry> pending_;
  std::unordered_set<Digest, DigestHash> pending_ids_;
  // The pack being hashed and written (its id when done), and what it holds.
  std::future<Result<Digest>> pack_write_;
  uint64_t pack_write_size_ = 0;
  std::vector<PendingEntry> writing_;
  std::unordered_set<Digest, DigestHash> writing_ids_;
  Status write_error_ = Status::ok();
  uint64_t bytes_uploaded_ = 0;
  std::string last_index_written_;
};

}  // namespace mailark
