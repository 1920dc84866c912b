// A FileSystem for tests that wraps another one, injects I/O errors on demand and simulates
// a power loss: crash() throws away every byte that was not fsynced and every directory
// entry whose directory was not fsynced afterwards (the LevelDB / SQLite test6 approach).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "os/file.h"

namespace mailark {

class FaultInjectingFileSystem : public FileSystem {
 public:
  explicit FaultInjectingFileSystem(FileSystem& base) : base_(base) {}

  // After `n` more successful appends, every append fails with an I/O error. -1 disables.
  void fail_appends_after(int n);
  // While set, sync() and sync_dir() fail with an I/O error.
  void set_fail_syncs(bool fail);
  // Simulates a power loss: truncates files to their last synced size and removes entries
  // created or renamed into a directory since that directory was last synced.
  Status crash();
  int sync_count() const;
  int dir_sync_count() const;

  Result<std::unique_ptr<WritableFile>> create(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> open_append(const std::string& path) override;
  Result<std::unique_ptr<ReadableFile>> open_read(const std::string& path) override {
    return base_.open_read(path);
  }
  Result<std::string> read_file(const std::string& path) override { return base_.read_file(path); }
  Status rename(const std::string& from, const std::string& to) override;
  Status remove(const std::string& path) override;
  Status sync_dir(const std::string& path) override;
  Status make_dirs(const std::string& path) override { return base_.make_dirs(path); }
  bool exists(const std::string& path) override { return base_.exists(path); }
  Result<std::vector<std::string>> list_dir(const std::string& path) override {
    return base_.list_dir(path);
  }
  Result<uint64_t> file_size(const std::string& path) override { return base_.file_size(path); }
  Result<int64_t> modified_ms(const std::string& path) override { return base_.modified_ms(path); }

 private:
  friend class FaultWritableFile;
  Status on_append(const std::string& path, uint64_t new_size);
  Status on_sync(const std::string& path, uint64_t size);

  FileSystem& base_;
  mutable std::mutex mu_;
  int appends_left_ = -1;
  bool fail_syncs_ = false;
  int syncs_ = 0;
  int dir_syncs_ = 0;
  std::map<std::string, uint64_t> synced_size_;        // per file written through us
  std::map<std::string, std::set<std::string>> unsynced_entries_;  // dir -> paths
};

}  // namespace mailark
