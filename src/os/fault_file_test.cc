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

}  // namespace
}  // namespace mailark
