// The local tier: a repository in a directory (by default under the data directory, better on
// another disk). Every file is published atomically (temp file, fsync, rename, fsync dir).
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <set>

#include "backup/backend.h"
#include "os/file.h"

namespace mailark {
namespace {

bool is_temporary(const std::string& name) {
  return name.find(".tmp-") != std::string::npos;
}

class LocalBackend : public RepositoryBackend {
 public:
  LocalBackend(FileSystem& fs, std::string root) : fs_(fs), root_(std::move(root)) {}

  std::string describe() const override { return "local " + root_; }

  Status put(const std::string& name, std::string_view bytes) override {
    std::string path = root_ + "/" + name;
    MK_RETURN_IF_ERROR(ensure_dir(parent_dir(path)));
    // Packs are written once and read back only by a restore or verify, usually much later:
    // not worth a copy through the page cache.
    MK_RETURN_IF_ERROR(publish_file(fs_, path, bytes, /*uncached=*/name.rfind("packs/", 0) == 0));
    crash_point();
    return Status::ok();
  }

  Result<std::string> get(const std::string& name) override {
    std::string path = root_ + "/" + name;
    if (!fs_.exists(path)) return not_found(describe() + ": no " + name);
    return fs_.read_file(path);
  }

  Result<std::string> get_range(const std::string& name, uint64_t offset,
                                uint64_t length) override {
    std::string path = root_ + "/" + name;
    if (!fs_.exists(path)) return not_found(describe() + ": no " + name);
    MK_ASSIGN_OR_RETURN(auto file, fs_.open_read(path));
    if (offset >= file->size()) return std::string();
    return file->read_at(offset,
                         static_cast<size_t>(std::min<uint64_t>(length, file->size() - offset)));
  }

  Result<std::vector<RepositoryFile>> list(const std::string& prefix) override {
    std::vector<RepositoryFile> out;
    size_t slash = prefix.rfind('/');
    std::string dir = slash == std::string::npos ? "" : prefix.substr(0, slash);
    MK_RETURN_IF_ERROR(walk(dir, prefix, &out));
    std::sort(out.begin(), out.end(),
              [](const RepositoryFile& a, const RepositoryFile& b) { return a.name < b.name; });
    return out;
  }

  Result<uint64_t> size(const std::string& name) override {
    std::string path = root_ + "/" + name;
    if (!fs_.exists(path)) return not_found(describe() + ": no " + name);
    return fs_.file_size(path);
  }

  Status remove(const std::string& name) override {
    std::string path = root_ + "/" + name;
    if (!fs_.exists(path)) return Status::ok();
    MK_RETURN_IF_ERROR(fs_.remove(path));
    return fs_.sync_dir(parent_dir(path));
  }

 private:
  // Fault injection for the crash tests: with MAILARK_CRASH_AFTER_PUTS=N in the environment
  // the process kills itself (SIGKILL, as kill -9) right after its N-th file is published.
  void crash_point() {
    static const long limit = [] {
      const char* v = std::getenv("MAILARK_CRASH_AFTER_PUTS");
      return v ? std::atol(v) : 0L;
    }();
    if (limit > 0 && puts_.fetch_add(1) + 1 >= limit) ::raise(SIGKILL);
  }

  // Creates missing directories and makes each creation durable in its parent.
  Status ensure_dir(const std::string& dir) {
    {
      std::lock_guard lock(mu_);
      if (known_dirs_.count(dir)) return Status::ok();
    }
    if (!fs_.exists(dir)) {
      std::string parent = parent_dir(dir);
      if (parent != dir && !parent.empty()) MK_RETURN_IF_ERROR(ensure_dir(parent));
      MK_RETURN_IF_ERROR(fs_.make_dirs(dir));
      if (!parent.empty()) MK_RETURN_IF_ERROR(fs_.sync_dir(parent));
    }
    std::lock_guard lock(mu_);
    known_dirs_.insert(dir);
    return Status::ok();
  }

  Status walk(const std::string& rel_dir, const std::string& prefix,
              std::vector<RepositoryFile>* out) {
    std::string path = rel_dir.empty() ? root_ : root_ + "/" + rel_dir;
    if (!fs_.exists(path)) return Status::ok();
    MK_ASSIGN_OR_RETURN(auto names, fs_.list_dir(path));
    for (const auto& n : names) {
      if (is_temporary(n)) continue;
      std::string rel = rel_dir.empty() ? n : rel_dir + "/" + n;
      std::string full = root_ + "/" + rel;
      // Only descend where the prefix can still match.
      bool could_match = rel.compare(0, std::min(rel.size(), prefix.size()), prefix, 0,
                                     std::min(rel.size(), prefix.size())) == 0;
      if (!could_match) continue;
      auto sub = fs_.list_dir(full);
      if (sub.is_ok()) {
        MK_RETURN_IF_ERROR(walk(rel, prefix, out));
      } else if (rel.compare(0, prefix.size(), prefix) == 0) {
        MK_ASSIGN_OR_RETURN(uint64_t size, fs_.file_size(full));
        out->push_back({rel, size});
      }
    }
    return Status::ok();
  }

  FileSystem& fs_;
  std::string root_;
  std::mutex mu_;
  std::set<std::string> known_dirs_;
  std::atomic<long> puts_{0};
};

}  // namespace

std::unique_ptr<RepositoryBackend> make_local_backend(FileSystem& fs, std::string root) {
  return std::make_unique<LocalBackend>(fs, std::move(root));
}

}  // namespace mailark
