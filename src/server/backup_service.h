// What the server runs for backups: the continuous journal archive (every database to every
// repository, each archive_interval) and scheduled base backups (to the first repository,
// then copied to the others). Two threads, each with its own BackupEngine, so a long base
// backup never holds up the archive.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "server/services.h"

namespace mailark {

class BackupService {
 public:
  explicit BackupService(Services& services);
  ~BackupService();  // stops
  void start();
  void stop();

 private:
  void archive_loop();
  void schedule_loop();
  bool wait_ms(int64_t ms);  // false once stopping

  Services& services_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread archiver_, scheduler_;
};

}  // namespace mailark
