// For tests: a fresh directory under /tmp, removed with everything in it when the object
// goes out of scope.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace mailark {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/mailark-test-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace mailark
