// Tests for the fault-injecting file system: a simulated power loss keeps only what was
// synced, and publish_file is atomic and durable across it.
#include "os/fault_file.h"

#include <gtest/gtest.h>

#include "os/temp_dir.h"

#include <cstdlib>
#include <filesystem>

namespace mailark {
namespace {

class FaultFileTest : public ::testing::Test {
 protected:
  TempDir temp_;
  std::string dir_ = temp_.path();
};

TEST_F(FaultFileTest, CrashDropsUnsyncedBytesAndEntries) {
  FaultInjectingFileSystem fs(posix_fs());
  ASSERT_TRUE(fs.sync_dir(dir_).is_ok());
  auto f = fs.create(dir_ + "/a");
  ASSERT_TRUE(f.is_ok());
  ASSERT_TRUE((*f)->append("durable").is_ok());
  ASSERT_TRUE((*f)->sync().is_ok());
  ASSERT_TRUE(fs.sync_dir(dir_).is_ok());
  ASSERT_TRUE((*f)->append(" lost").is_ok());
  auto g = fs.create(dir_ + "/b");  // never synced: the entry itself is lost
  ASSERT_TRUE(g.is_ok());
  ASSERT_TRUE((*g)->append("x").is_ok());
  ASSERT_TRUE((*g)->sync().is_ok());
  ASSERT_TRUE(fs.crash().is_ok());
  EXPECT_EQ(*fs.read_file(dir_ + "/a"), "durable");
  EXPECT_FALSE(fs.exists(dir_ + "/b"));
}

TEST_F(FaultFileTest, InjectedFailures) {
  FaultInjectingFileSystem fs(posix_fs());
  auto f = fs.create(dir_ + "/a");
  ASSERT_TRUE(f.is_ok());
  fs.fail_appends_after(1);
  EXPECT_TRUE((*f)->append("one").is_ok());
  EXPECT_EQ((*f)->append("two").code(), ErrorCode::kIo);
  fs.set_fail_syncs(true);
  EXPECT_EQ((*f)->sync().code(), ErrorCode::kIo);
  EXPECT_EQ(fs.sync_dir(dir_).code(), ErrorCode::kIo);
}

TEST_F(FaultFileTest, PublishIsAtomicAndSurvivesCrash) {
  FaultInjectingFileSystem fs(posix_fs());
  ASSERT_TRUE(publish_file(fs, dir_ + "/p", "v1").is_ok());
  ASSERT_TRUE(fs.crash().is_ok());
  EXPECT_EQ(*fs.read_file(dir_ + "/p"), "v1");
  fs.set_fail_syncs(true);
  EXPECT_FALSE(publish_file(fs, dir_ + "/p", "v2").is_ok());
  ASSERT_TRUE(fs.crash().is_ok());
  EXPECT_EQ(*fs.read_file(dir_ + "/p"), "v1");
  auto names = fs.list_dir(dir_);
  ASSERT_TRUE(names.is_ok());
  EXPECT_EQ(names->size(), 1u) << "no temp files left behind";
}

// The uncached write path (O_DIRECT for whole blocks, buffered for the rest) writes exactly
// the bytes given, whatever their alignment, and falls back when the file is not at a block
// boundary.
TEST_F(FaultFileTest, UncachedAppendWritesExactlyTheBytes) {
  std::string data;
  for (size_t i = 0; data.size() < (3u << 20) + 123; ++i) data += std::to_string(i * 7919) + ",";
  for (const std::string& prefix : {std::string(), std::string("x")}) {
    std::string path = dir_ + "/uncached" + std::to_string(prefix.size());
    auto f = posix_fs().create(path);
    ASSERT_TRUE(f.is_ok());
    if (!prefix.empty()) {
      ASSERT_TRUE((*f)->append(prefix).is_ok());
    }
    ASSERT_TRUE((*f)->append_uncached(std::string_view(data).substr(1)).is_ok());
    ASSERT_TRUE((*f)->append("tail").is_ok());
    ASSERT_TRUE((*f)->sync().is_ok());
    EXPECT_EQ((*f)->size(), prefix.size() + data.size() - 1 + 4);
    ASSERT_TRUE((*f)->close().is_ok());
    auto back = posix_fs().read_file(path);
    ASSERT_TRUE(back.is_ok());
    EXPECT_TRUE(*back == prefix + data.substr(1) + "tail") << path;
  }
  // publish_file with `uncached`: the same file as without.
  ASSERT_TRUE(publish_file(posix_fs(), dir_ + "/published", data, /*uncached=*/true).is_ok());
  auto back = posix_fs().read_file(dir_ + "/published");
  ASSERT_TRUE(back.is_ok());
  EXPECT_TRUE(*back == data);
}

}  // namespace
}  // namespace mailark
