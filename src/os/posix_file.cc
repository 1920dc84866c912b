// POSIX implementation of the FileSystem interface, and the atomic publish helper.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/hash.h"
#include "os/file.h"

namespace mailark {
namespace {

Status errno_status(const std::string& what, const std::string& path) {
  int e = errno;
  std::string msg = what + " " + path + ": " + std::strerror(e);
  if (e == ENOENT) return not_found(msg);
  if (e == EEXIST) return exists_error(msg);
  if (e == ENOSPC || e == EDQUOT) return io_error(msg);
  return io_error(msg);
}

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status append(std::string_view data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status("write", path_);
      }
      data.remove_prefix(static_cast<size_t>(n));
      size_ += static_cast<uint64_t>(n);
    }
    return Status::ok();
  }
  Status append_uncached(std::string_view data) override {
    // O_DIRECT wants block-aligned memory, lengths and offsets: the whole 4 KiB blocks go
    // through an aligned buffer, the tail (and anything the file system refuses) through
    // append().
    constexpr size_t kAlign = 4096, kChunk = 1u << 20;
    int flags = ::fcntl(fd_, F_GETFL);
    if (size_ % kAlign != 0 || data.size() < kChunk || flags < 0 ||
        ::fcntl(fd_, F_SETFL, flags | O_DIRECT) != 0)
      return append(data);
    std::unique_ptr<char, decltype(&std::free)> buf(
        static_cast<char*>(std::aligned_alloc(kAlign, kChunk)), &std::free);
    size_t whole = buf ? data.size() / kAlign * kAlign : 0, done = 0;
    while (done < whole) {
      size_t n = std::min(kChunk, whole - done);
      std::memcpy(buf.get(), data.data() + done, n);
      ssize_t w = ::write(fd_, buf.get(), n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0 || static_cast<size_t>(w) % kAlign != 0) {
        if (w > 0) {  // a short write of part of a block: the rest goes buffered
          done += static_cast<size_t>(w);
          size_ += static_cast<uint64_t>(w);
        }
        break;
      }
      done += static_cast<size_t>(w);
      size_ += static_cast<uint64_t>(w);
    }
    if (::fcntl(fd_, F_SETFL, flags) != 0) return errno_status("fcntl", path_);
    return append(data.substr(done));
  }
  Status sync() override {
    if (::fdatasync(fd_) != 0) return errno_status("fsync", path_);
    return Status::ok();
  }
  Status close() override {
    if (fd_ < 0) return Status::ok();
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return errno_status("close", path_);
    return Status::ok();
  }
  uint64_t size() const override { return size_; }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
};

class PosixReadableFile : public ReadableFile {
 public:
  PosixReadableFile(int fd, std::string path, uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  ~PosixReadableFile() override { ::close(fd_); }
  Result<std::string> read_at(uint64_t offset, size_t n) const override {
    std::string out(n, '\0');
    MK_ASSIGN_OR_RETURN(size_t got, read_into(offset, out.data(), n));
    out.resize(got);
    return out;
  }
  Result<size_t> read_into(uint64_t offset, char* buf, size_t n) const override {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::pread(fd_, buf + got, n - got, static_cast<off_t>(offset + got));
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno_status("read", path_);
      }
      if (r == 0) break;
      got += static_cast<size_t>(r);
    }
    return got;
  }
  uint64_t size() const override { return size_; }

 private:
  int fd_;
  std::string path_;
  uint64_t size_;
};

class PosixFileSystem : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> create(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return errno_status("create", path);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path, 0));
  }
  Result<std::unique_ptr<WritableFile>> open_append(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return errno_status("open", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      Status s = errno_status("stat", path);
      ::close(fd);
      return s;
    }
    return std::unique_ptr<WritableFile>(
        new PosixWritableFile(fd, path, static_cast<uint64_t>(st.st_size)));
  }
  Result<std::unique_ptr<ReadableFile>> open_read(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status("open", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      Status s = errno_status("stat", path);
      ::close(fd);
      return s;
    }
    return std::unique_ptr<ReadableFile>(
        new PosixReadableFile(fd, path, static_cast<uint64_t>(st.st_size)));
  }
  Result<std::string> read_file(const std::string& path) override {
    MK_ASSIGN_OR_RETURN(auto file, open_read(path));
    return file->read_at(0, file->size());
  }
  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("rename", from);
    return Status::ok();
  }
  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) == 0) return Status::ok();
    if (errno == EISDIR && ::rmdir(path.c_str()) == 0) return Status::ok();
    return errno_status("remove", path);
  }
  Status sync_dir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno_status("open dir", path);
    int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) return errno_status("fsync dir", path);
    return Status::ok();
  }
  Status make_dirs(const std::string& path) override {
    if (path.empty()) return Status::ok();
    std::string cur;
    size_t pos = 0;
    while (pos != std::string::npos) {
      pos = path.find('/', pos + 1);
      cur = path.substr(0, pos);
      if (cur.empty()) continue;
      if (::mkdir(cur.c_str(), 0750) != 0 && errno != EEXIST) return errno_status("mkdir", cur);
    }
    return Status::ok();
  }
  bool exists(const std::string& path) override {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
  }
  Result<std::vector<std::string>> list_dir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (!dir) return errno_status("list", path);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    ::closedir(dir);
    return names;
  }
  Result<uint64_t> file_size(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno_status("stat", path);
    return static_cast<uint64_t>(st.st_size);
  }
  Result<int64_t> modified_ms(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return errno_status("stat", path);
    return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
  }
};

}  // namespace

FileSystem& posix_fs() {
  static PosixFileSystem fs;
  return fs;
}

std::string parent_dir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty() || (!b.empty() && b[0] == '/')) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

Status write_synced_and_rename(FileSystem& fs, const std::string& tmp, const std::string& path,
                               std::string_view contents, bool uncached) {
  {
    MK_ASSIGN_OR_RETURN(auto file, fs.create(tmp));
    Status s = uncached ? file->append_uncached(contents) : file->append(contents);
    if (s.is_ok()) s = file->sync();
    if (s.is_ok()) s = file->close();
    if (!s.is_ok()) {
      (void)fs.remove(tmp);
      return s;
    }
  }
  Status s = fs.rename(tmp, path);
  if (!s.is_ok()) (void)fs.remove(tmp);
  return s;
}

Status publish_file(FileSystem& fs, const std::string& path, std::string_view contents,
                    bool uncached) {
  std::string tmp = path + ".tmp-" + Guid::random().hex().substr(0, 8);
  MK_RETURN_IF_ERROR(write_synced_and_rename(fs, tmp, path, contents, uncached));
  return fs.sync_dir(parent_dir(path));
}

// The temp file is created 0600 before a byte is written; FileSystem::create() then
// truncates it and keeps that mode. publish_file() cannot do this: its temp file gets the
// default mode, so a chmod afterwards would leave a window.
Status publish_secret_file(FileSystem& fs, const std::string& path, std::string_view contents) {
  const std::string tmp = path + ".tmp-" + Guid::random().hex().substr(0, 8);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return errno_status("create", tmp);
  const bool chmod_ok = ::fchmod(fd, 0600) == 0;  // exactly 0600 whatever the umask
  const int chmod_errno = errno;
  ::close(fd);
  if (!chmod_ok) {
    (void)fs.remove(tmp);
    errno = chmod_errno;
    return errno_status("chmod", tmp);
  }
  Status s = write_synced_and_rename(fs, tmp, path, contents);
  if (!s.is_ok()) {
    if (fs.exists(tmp)) (void)fs.remove(tmp);
    return s;
  }
  return fs.sync_dir(parent_dir(path));
}

}  // namespace mailark
