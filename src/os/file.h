// The one file I/O interface of mailark (STYLE.md rule 4). Blob store, ingress cache and
// every file we publish go through a FileSystem so tests can inject faults and simulate a
// power loss (FaultInjectingFileSystem). SQLite does its own I/O through its VFS; its
// durability is proven by the kill -9 tests instead.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace mailark {

// A file open for writing. Not thread-safe; one writer at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status append(std::string_view data) = 0;
  // append() for a large file written once and not read back soon (a backup pack): where the
  // file system allows, it bypasses the page cache (O_DIRECT), which saves copying every byte
  // into it (on a VM about a second of CPU per GB). Same result and durability rules.
  virtual Status append_uncached(std::string_view data) { return append(data); }
  // Makes everything appended so far durable (fdatasync).
  virtual Status sync() = 0;
  virtual Status close() = 0;
  virtual uint64_t size() const = 0;
};

// A file open for positional reads. Thread-safe.
class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to `n` bytes at `offset`; fewer only at end of file.
  virtual Result<std::string> read_at(uint64_t offset, size_t n) const = 0;
  // The same into `buf` (room for `n` bytes); returns how many were read.
  virtual Result<size_t> read_into(uint64_t offset, char* buf, size_t n) const = 0;
  virtual uint64_t size() const = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates (or truncates) `path` for writing.
  virtual Result<std::unique_ptr<WritableFile>> create(const std::string& path) = 0;
  // Opens `path` for appending, creating it if absent.
  virtual Result<std::unique_ptr<WritableFile>> open_append(const std::string& path) = 0;
  virtual Result<std::unique_ptr<ReadableFile>> open_read(const std::string& path) = 0;
  virtual Result<std::string> read_file(const std::string& path) = 0;
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  // Removes a file or an empty directory.
  virtual Status remove(const std::string& path) = 0;
  // fsync of a directory, making creations, renames and removals in it durable.
  virtual Status sync_dir(const std::string& path) = 0;
  virtual Status make_dirs(const std::string& path) = 0;
  virtual bool exists(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> list_dir(const std::string& path) = 0;
  virtual Result<uint64_t> file_size(const std::string& path) = 0;
  // Last modification time, ms since the epoch.
  virtual Result<int64_t> modified_ms(const std::string& path) = 0;
};

// The process-wide POSIX implementation.
FileSystem& posix_fs();

// Writes `contents` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
// Readers see either the old file or the new one, never a mix, even after a crash.
// `uncached`: written past the page cache where possible (WritableFile::append_uncached).
Status publish_file(FileSystem& fs, const std::string& path, std::string_view contents,
                    bool uncached = false);

// publish_file() for a secret (keys): the file is mode 0600 from its first byte, whatever
// the umask, and the rename carries that mode to `path`.
Status publish_secret_file(FileSystem& fs, const std::string& path, std::string_view contents);

// publish_file() without the final directory fsync, for callers that batch directory
// fsyncs (group commit): writes `tmp`, fsyncs it and renames it to `path`. `tmp` is
// removed on failure.
Status write_synced_and_rename(FileSystem& fs, const std::string& tmp, const std::string& path,
                               std::string_view contents, bool uncached = false);

std::string parent_dir(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);

}  // namespace mailark
