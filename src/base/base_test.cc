// Unit tests for base: hashing, GUIDs, time and size parsing.
#include <gtest/gtest.h>

#include <algorithm>
#include <unordered_set>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "base/time.h"

namespace mailark {
namespace {

TEST(Hash, Sha256KnownVector) {
  EXPECT_EQ(to_hex(sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  Sha256 h;
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.finish(), sha256("abc"));
}

TEST(Hash, Crc32cKnownVectors) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the check value of CRC-32C
  // Lengths around the 8-byte steps of the hardware path agree with a bytewise update.
  std::string s;
  for (int i = 0; i < 40; ++i) {
    s.push_back(static_cast<char>(i * 37 + 11));
    uint32_t crc = 0xFFFFFFFFu;
    for (unsigned char b : s) {
      crc ^= b;
      for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    EXPECT_EQ(crc32c(s), crc ^ 0xFFFFFFFFu) << "length " << s.size();
  }
}

TEST(Hash, HexRoundTripAndRejects) {
  Digest d = sha256("x");
  EXPECT_EQ(digest_from_hex(to_hex(d)), d);
  EXPECT_FALSE(digest_from_hex("zz"));
  EXPECT_FALSE(digest_from_hex(std::string(64, 'g')));
}

// Chosen, nearly equal digests (a counter in two bytes, the rest zero) spread over the
// buckets; equal digests hash alike.
TEST(Hash, DigestHashSpreadsChosenDigests) {
  DigestHash hash;
  Digest d = sha256("x");
  EXPECT_EQ(hash(d), hash(Digest(d)));
  constexpr size_t kBuckets = 1021;
  std::vector<int> count(kBuckets);
  for (int i = 0; i < 4096; ++i) {
    Digest x{};
    x[0] = static_cast<uint8_t>(i);
    x[9] = static_cast<uint8_t>(i >> 8);
    ++count[hash(x) % kBuckets];
  }
  // 4096 keys over 1021 buckets average 4; taking the first word as it is would put all of
  // them into 256 buckets or fewer.
  EXPECT_LT(*std::max_element(count.begin(), count.end()), 20);
  std::unordered_set<Digest, DigestHash> set;
  for (int i = 0; i < 1000; ++i) set.insert(sha256(std::to_string(i)));
  EXPECT_EQ(set.size(), 1000u);
  EXPECT_EQ(set.count(sha256("17")), 1u);
  EXPECT_EQ(set.count(sha256("1000")), 0u);
}

TEST(Guid, RandomDiffersDerivedIsStable) {
  EXPECT_NE(Guid::random(), Guid::random());
  EXPECT_EQ(Guid::derived("seed"), Guid::derived("seed"));
  EXPECT_NE(Guid::derived("seed"), Guid::derived("seed2"));
  Guid g = Guid::random();
  EXPECT_EQ(Guid::from_hex(g.hex()), g);
  EXPECT_EQ(Guid::from_bytes(g.raw()), g);
  EXPECT_FALSE(Guid::from_hex("1234"));
}

TEST(Time, ParseTimeForms) {
  const int64_t now = 1'800'000'000'000;
  struct Case {
    const char* text;
    std::optional<int64_t> want;
  } cases[] = {
      {"2026-11-24T16:00:00Z", 1795536000000},
      {"2026-11-24T16:00:00.250Z", 1795536000250},
      {"2026-11-24T17:00:00+01:00", 1795536000000},
      {"2026-11-24 16:00", 1795536000000},
      {"2026-11-24", 1795478400000},
      {"@1795536000", 1795536000000},
      {"-2h", now - 7'200'000},
      {"-7d", now - 7 * 86'400'000LL},
      {"now", now},
      {"yesterday", std::nullopt},
      {"2026-13-01", std::nullopt},
      {"2026-11-24T16:00:00Q", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) EXPECT_EQ(parse_time(c.text, now), c.want) << c.text;
}

TEST(Time, SizesAndDurations) {
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("10K"), 10240u);
  EXPECT_EQ(parse_size("50MB"), 50u << 20);
  EXPECT_EQ(parse_size("2GiB"), uint64_t{2} << 30);
  EXPECT_FALSE(parse_size("lots"));
  EXPECT_FALSE(parse_size("-1"));
  EXPECT_EQ(parse_duration_ms("90s"), 90'000);
  EXPECT_EQ(parse_duration_ms("14d"), 14 * 86'400'000LL);
  EXPECT_FALSE(parse_duration_ms("3 fortnights"));
}

TEST(Status, CodesAndMessages) {
  Status s = corrupt("blob ab: mismatch");
  EXPECT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(s.to_string(), "corrupt: blob ab: mismatch");
  Result<int> r = 5;
  EXPECT_TRUE(r.is_ok());
  EXPECT_EQ(*r, 5);
  Result<int> e = not_found("x");
  EXPECT_EQ(e.status().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace mailark
