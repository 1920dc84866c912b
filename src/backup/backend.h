// Where a backup repository's files live: a local directory or an S3-compatible bucket. The
// repository format (docs/formats/backup-repository.md) is written through this interface
// only, so every tier holds byte-identical files and `backup copy` is a file copy.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace mailark {

class FileSystem;

struct RepositoryFile {
  std::string name;  // relative, '/'-separated: "packs/ab/ab12…", "index/…"
  uint64_t size = 0;
};

// Names are relative paths made of [a-z0-9._-] segments separated by '/'. Thread-safe.
class RepositoryBackend {
 public:
  virtual ~RepositoryBackend() = default;

  // "local /srv/mailark-backup" or "s3 http://127.0.0.1:9000/bucket/prefix".
  virtual std::string describe() const = 0;
  // Stores `bytes` under `name`, replacing any file of that name. Atomic and durable: once ok
  // is returned the whole file survives a crash, and no reader ever sees part of it.
  virtual Status put(const std::string& name, std::string_view bytes) = 0;
  // The whole file; kNotFound when absent.
  virtual Result<std::string> get(const std::string& name) = 0;
  // `length` bytes from `offset`; fewer only at the end of the file. kNotFound when absent.
  virtual Result<std::string> get_range(const std::string& name, uint64_t offset,
                                        uint64_t length) = 0;
  // Every file whose name starts with `prefix` (recursive), in name order.
  virtual Result<std::vector<RepositoryFile>> list(const std::string& prefix) = 0;
  // Size of the file; kNotFound when absent.
  virtual Result<uint64_t> size(const std::string& name) = 0;
  // Removes the file; ok when it was already absent.
  virtual Status remove(const std::string& name) = 0;
};

// A repository in a local directory (created on first put). Writes go through publish_file.
std::unique_ptr<RepositoryBackend> make_local_backend(FileSystem& fs, std::string root);

struct S3Settings {
  std::string endpoint;  // "https://s3.eu-central-1.amazonaws.com" or "http://127.0.0.1:9000"
  std::string region = "us-east-1";
  std::string bucket;
  std::string prefix;  // "" or "mailark/"; joined before every name
  std::string access_key;
  std::string secret_key;
  bool path_style = true;  // http://host/bucket/key rather than http://bucket.host/key
  std::string ca_file;     // optional CA bundle for https
  int timeout_s = 60;
  int retries = 3;  // for 5xx, 429 and network errors, with backoff
};

// A repository in an S3-compatible bucket through libcurl's AWS SigV4 signing.
std::unique_ptr<RepositoryBackend> make_s3_backend(S3Settings settings);

}  // namespace mailark
