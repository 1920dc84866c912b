// Fault injection and simulated power loss on top of another FileSystem.
#include "os/fault_file.h"

#include <unistd.h>

namespace mailark {

class FaultWritableFile : public WritableFile {
 public:
  FaultWritableFile(FaultInjectingFileSystem* fs, std::string path,
                    std::unique_ptr<WritableFile> base)
      : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
  Status append(std::string_view data) override {
    MK_RETURN_IF_ERROR(fs_->on_append(path_, base_->size() + data.size()));
    return base_->append(data);
  }
  Status sync() override {
    MK_RETURN_IF_ERROR(fs_->on_sync(path_, base_->size()));
    return base_->sync();
  }
  Status close() override { return base_->close(); }
  uint64_t size() const override { return base_->size(); }

 private:
  FaultInjectingFileSystem* fs_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

void FaultInjectingFileSystem::fail_appends_after(int n) {
  std::lock_guard lock(mu_);
  appends_left_ = n;
}
void FaultInjectingFileSystem::set_fail_syncs(bool fail) {
  std::lock_guard lock(mu_);
  fail_syncs_ = fail;
}
int FaultInjectingFileSystem::sync_count() const {
  std::lock_guard lock(mu_);
  return syncs_;
}
int FaultInjectingFileSystem::dir_sync_count() const {
  std::lock_guard lock(mu_);
  return dir_syncs_;
}

Status FaultInjectingFileSystem::on_append(const std::string& path, uint64_t) {
  std::lock_guard lock(mu_);
  if (appends_left_ == 0) return io_error("injected write failure on " + path);
  if (appends_left_ > 0) --appends_left_;
  return Status::ok();
}

Status FaultInjectingFileSystem::on_sync(const std::string& path, uint64_t size) {
  std::lock_guard lock(mu_);
  if (fail_syncs_) return io_error("injected fsync failure on " + path);
  ++syncs_;
  synced_size_[path] = size;
  return Status::ok();
}

Result<std::unique_ptr<WritableFile>> FaultInjectingFileSystem::create(const std::string& path) {
  bool existed = base_.exists(path);
  MK_ASSIGN_OR_RETURN(auto file, base_.create(path));
  std::lock_guard lock(mu_);
  synced_size_[path] = 0;
  if (!existed) unsynced_entries_[parent_dir(path)].insert(path);
  return std::unique_ptr<WritableFile>(new FaultWritableFile(this, path, std::move(file)));
}

Result<std::unique_ptr<WritableFile>> FaultInjectingFileSystem::open_append(
    const std::string& path) {
  bool existed = base_.exists(path);
  MK_ASSIGN_OR_RETURN(auto file, base_.open_append(path));
  std::lock_guard lock(mu_);
  if (!synced_size_.count(path)) synced_size_[path] = existed ? file->size() : 0;
  if (!existed) unsynced_entries_[parent_dir(path)].insert(path);
  return std::unique_ptr<WritableFile>(new FaultWritableFile(this, path, std::move(file)));
}

Status FaultInjectingFileSystem::rename(const std::string& from, const std::string& to) {
  MK_RETURN_IF_ERROR(base_.rename(from, to));
  std::lock_guard lock(mu_);
  auto it = synced_size_.find(from);
  if (it != synced_size_.end()) {
    synced_size_[to] = it->second;
    synced_size_.erase(it);
  }
  unsynced_entries_[parent_dir(from)].erase(from);
  unsynced_entries_[parent_dir(to)].insert(to);
  return Status::ok();
}

Status FaultInjectingFileSystem::remove(const std::string& path) {
  MK_RETURN_IF_ERROR(base_.remove(path));
  std::lock_guard lock(mu_);
  synced_size_.erase(path);
  unsynced_entries_[parent_dir(path)].erase(path);
  return Status::ok();
}

Status FaultInjectingFileSystem::sync_dir(const std::string& path) {
  {
    std::lock_guard lock(mu_);
    if (fail_syncs_) return io_error("injected fsync failure on " + path);
    ++dir_syncs_;
    unsynced_entries_.erase(path);
  }
  return base_.sync_dir(path);
}

Status FaultInjectingFileSystem::crash() {
  std::lock_guard lock(mu_);
  for (auto& [dir, paths] : unsynced_entries_) {
    for (const auto& p : paths) {
      ::unlink(p.c_str());
      synced_size_.erase(p);
    }
  }
  unsynced_entries_.clear();
  for (auto& [path, size] : synced_size_) {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0 && base_.exists(path))
      return io_error("truncate failed during simulated crash: " + path);
  }
  appends_left_ = -1;
  fail_syncs_ = false;
  return Status::ok();
}

}  // namespace mailark
