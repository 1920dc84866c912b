// Ingress cache tests: records come back intact, a torn tail and damaged records are
// skipped, retention removes old segments, concurrent appends share fsyncs.
#include "ingress/ingress_cache.h"

#include <gtest/gtest.h>

#include "os/temp_dir.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "os/fault_file.h"

namespace mailark {
namespace {

class IngressTest : public ::testing::Test {
 protected:
  IngressRecord record(int i, int64_t time) {
    IngressRecord r;
    r.id = Guid::random();
    r.time_ms = time;
    r.from = "sender@x.test";
    r.recipients = {"a@acme.test", "b@acme.test"};
    r.message = "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n";
    return r;
  }
  std::vector<IngressRecord> scan_all(IngressCache& c, IngressScanStats* stats = nullptr) {
    std::vector<IngressRecord> out;
    EXPECT_TRUE(c.scan(
                     0, INT64_MAX,
                     [&](const IngressRecord& r) {
                       out.push_back(r);
                       return Status::ok();
                     },
                     stats)
                    .is_ok());
    return out;
  }
  TempDir temp_;
  std::string dir_ = temp_.path();
};

TEST_F(IngressTest, AppendScanAndTimeWindow) {
  auto c = IngressCache::open(posix_fs(), dir_, {});
  ASSERT_TRUE(c.is_ok());
  std::vector<IngressRecord> written;
  for (int i = 0; i < 20; ++i) {
    written.push_back(record(i, 1000 + i));
    ASSERT_TRUE((*c)->append(written.back()).is_ok());
  }
  auto all = scan_all(**c);
  ASSERT_EQ(all.size(), 20u);
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].id, written[i].id);
    EXPECT_EQ(all[i].message, written[i].message);
    EXPECT_EQ(all[i].recipients, written[i].recipients);
    EXPECT_EQ(all[i].from, written[i].from);
  }
  int n = 0;
  ASSERT_TRUE((*c)->scan(1005, 1010,
                         [&](const IngressRecord&) {
                           ++n;
                           return Status::ok();
                         })
                  .is_ok());
  EXPECT_EQ(n, 5);
}

TEST_F(IngressTest, TornTailAndDamagedRecordsAreSkipped) {
  std::string seg;
  {
    auto c = IngressCache::open(posix_fs(), dir_, {});
    ASSERT_TRUE(c.is_ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*c)->append(record(i, 1000 + i)).is_ok());
  }
  for (auto& e : std::filesystem::directory_iterator(dir_)) seg = e.path();
  // Damage the middle record's body and append half a record (a crash mid-append).
  std::string bytes;
  {
    std::ifstream in(seg, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string one = IngressCache::encode(record(9, 2000));
  size_t second = bytes.size() / 3 + 20;
  bytes[second] ^= 0x55;
  bytes += one.substr(0, one.size() / 2);
  {
    std::ofstream out(seg, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  auto c = IngressCache::open(posix_fs(), dir_, {});
  ASSERT_TRUE(c.is_ok());
  IngressScanStats stats;
  auto all = scan_all(**c, &stats);
  EXPECT_EQ(all.size(), 2u);
  EXPECT_EQ(stats.damaged, 1u);
  // New appends go to a fresh segment and are readable.
  ASSERT_TRUE((*c)->append(record(5, 3000)).is_ok());
  EXPECT_EQ(scan_all(**c).size(), 3u);
}

TEST_F(IngressTest, AcknowledgedRecordsSurviveCrash) {
  FaultInjectingFileSystem fs(posix_fs());
  auto c = IngressCache::open(fs, dir_, {});
  ASSERT_TRUE(c.is_ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE((*c)->append(record(i, 1000 + i)).is_ok());
  ASSERT_TRUE(fs.crash().is_ok());
  auto again = IngressCache::open(posix_fs(), dir_, {});
  EXPECT_EQ(scan_all(**again).size(), 5u);
}

TEST_F(IngressTest, FailedSyncIsNotAcknowledged) {
  FaultInjectingFileSystem fs(posix_fs());
  auto c = IngressCache::open(fs, dir_, {});
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE((*c)->append(record(0, 1000)).is_ok());
  fs.set_fail_syncs(true);
  EXPECT_EQ((*c)->append(record(1, 1001)).code(), ErrorCode::kIo);
  fs.set_fail_syncs(false);
  EXPECT_TRUE((*c)->append(record(2, 1002)).is_ok()) << "recovers on a new segment";
}

TEST_F(IngressTest, RetentionByAgeAndSize) {
  IngressRetention ret;
  ret.segment_bytes = 200;  // every record starts a new segment
  ret.max_age_ms = 3'600'000;
  ret.max_bytes = 1 << 30;
  auto c = IngressCache::open(posix_fs(), dir_, ret);
  ASSERT_TRUE(c.is_ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE((*c)->append(record(i, 1000 + i)).is_ok());
  auto segments = [&] {
    int n = 0;
    for (auto& e : std::filesystem::directory_iterator(dir_)) n += e.path().extension() == ".log";
    return n;
  };
  int before = segments();
  EXPECT_GE(before, 3);
  // Nothing is old yet.
  EXPECT_EQ(*(*c)->prune(std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()),
            0);
  // Two hours from now everything but the active segment is past max_age.
  auto later = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count() +
               7'200'000;
  EXPECT_EQ(*(*c)->prune(later), before - 1);
  EXPECT_EQ(segments(), 1);
}

TEST_F(IngressTest, ConcurrentAppendsShareFsyncs) {
  FaultInjectingFileSystem fs(posix_fs());
  auto c = IngressCache::open(fs, dir_, {});
  ASSERT_TRUE(c.is_ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) ASSERT_TRUE((*c)->append(record(t * 100 + i, 1000)).is_ok());
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(scan_all(**c).size(), 400u);
  EXPECT_LT(fs.sync_count(), 400) << "appends waiting together share one fsync";
}

}  // namespace
}  // namespace mailark
