// AuthLimiter: delays grow, the limit blocks an address for the window, other addresses and
// expired windows are not affected.
#include "protocol/auth_limiter.h"

#include <gtest/gtest.h>

namespace mailark {
namespace {

TEST(AuthLimiter, DelaysGrowAndLimitBlocks) {
  AuthLimits limits;
  limits.max_failures = 3;
  limits.window = std::chrono::seconds(60);
  limits.failure_delay = std::chrono::milliseconds(100);
  AuthLimiter limiter(limits);
  auto t0 = AuthLimiter::Clock::now();
  EXPECT_FALSE(limiter.blocked("10.0.0.1", t0));
  EXPECT_EQ(limiter.failed("10.0.0.1", t0).count(), 100);
  EXPECT_EQ(limiter.failed("10.0.0.1", t0).count(), 200);
  EXPECT_FALSE(limiter.blocked("10.0.0.1", t0));
  EXPECT_EQ(limiter.failed("10.0.0.1", t0).count(), 400);
  EXPECT_TRUE(limiter.blocked("10.0.0.1", t0));
  EXPECT_EQ(limiter.failed("10.0.0.1", t0).count(), 400);  // capped at 4x
  EXPECT_FALSE(limiter.blocked("10.0.0.2", t0));
  EXPECT_TRUE(limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(59)));
  EXPECT_FALSE(limiter.blocked("10.0.0.1", t0 + std::chrono::seconds(61)));
  EXPECT_EQ(limiter.failed("10.0.0.1", t0 + std::chrono::seconds(62)).count(), 100);
}

TEST(AuthLimiter, PeerAddress) {
  EXPECT_EQ(peer_address("127.0.0.1:5555"), "127.0.0.1");
  EXPECT_EQ(peer_address("::1:5555"), "::1");
  EXPECT_EQ(peer_address("nohost"), "nohost");
}

}  // namespace
}  // namespace mailark
