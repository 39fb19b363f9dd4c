// Unit tests for the client message rate limiter (core/rate_limiter.h). Time
// is injected: no test sleeps, every instant is computed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>

#include "core/rate_limiter.h"
#include "core/wire_v2.h"

namespace tlsframe {
namespace {

using namespace std::chrono_literals;
using Clock = RateLimiter::Clock;

const Clock::time_point kStart = Clock::time_point{} + 1000s;

int AllowedAt(RateLimiter &r, Clock::time_point t, int tries) {
  int n = 0;
  for (int i = 0; i < tries; ++i) n += r.allow(t) ? 1 : 0;
  return n;
}

TEST(RateLimiter, StartsFullAndAllowsExactlyTheBurstAtOneInstant) {
  RateLimiter r(50, 100, kStart);
  EXPECT_EQ(r.available(kStart), 100u);
  EXPECT_EQ(AllowedAt(r, kStart, 150), 100);
  EXPECT_EQ(r.available(kStart), 0u);
  EXPECT_FALSE(r.allow(kStart));
}

TEST(RateLimiter, RefillsOneTokenPerOneOverRateSecondsAndNotBefore) {
  RateLimiter r(50, 100, kStart);
  AllowedAt(r, kStart, 100);
  EXPECT_FALSE(r.allow(kStart + 19'999'999ns)) << "1/50 s minus 1 ns is not yet a token";
  EXPECT_TRUE(r.allow(kStart + 20ms));
  EXPECT_FALSE(r.allow(kStart + 20ms));
  EXPECT_EQ(r.available(kStart + 1s), 49u) << "50 tokens per second, one of them taken";
}

TEST(RateLimiter, FractionalRefillAccumulatesWithoutDrift) {
  // One token every 333.33... ms. The bucket is emptied first and never
  // fills again, so no refill is lost to the cap.
  RateLimiter r(3, 100, kStart);
  ASSERT_EQ(AllowedAt(r, kStart, 100), 100);
  Clock::time_point t = kStart;
  int allowed = 0;
  // Probe every millisecond for 30 s: exactly 90 tokens, none early.
  for (int ms = 1; ms <= 30'000; ++ms) {
    t = kStart + std::chrono::milliseconds(ms);
    if (r.allow(t)) {
      ++allowed;
      // Token k arrives at ceil(k * 1000 / 3) ms.
      EXPECT_EQ(ms, (allowed * 1000 + 2) / 3) << "token " << allowed;
    }
  }
  EXPECT_EQ(allowed, 90);
}

TEST(RateLimiter, RefillBeyondAFullBucketIsLost) {
  RateLimiter r(3, 1, kStart);
  ASSERT_TRUE(r.allow(kStart));
  ASSERT_TRUE(r.allow(kStart + 334ms));  // full since 333.33 ms; the rest is dropped
  EXPECT_FALSE(r.allow(kStart + 667ms));
  EXPECT_TRUE(r.allow(kStart + 668ms));
}

TEST(RateLimiter, NeverSavesMoreThanTheBurstHoweverLongTheIdle) {
  RateLimiter r(50, 100, kStart);
  AllowedAt(r, kStart, 100);
  EXPECT_EQ(r.available(kStart + 24h * 365 * 100), 100u);
  EXPECT_EQ(AllowedAt(r, kStart + 3600s, 1000), 100);
}

TEST(RateLimiter, SustainedTrafficAtTheRateIsNeverRefused) {
  RateLimiter r(wire::kClientMessageRate, wire::kClientMessageBurst, kStart);
  // A well-behaved but busy client: 50 messages a second, evenly, for 10 minutes.
  for (int i = 1; i <= 50 * 600; ++i) {
    ASSERT_TRUE(r.allow(kStart + std::chrono::milliseconds(20 * i))) << "message " << i;
  }
  EXPECT_EQ(r.available(kStart + 600s), 99u) << "full but for the message just sent";
}

TEST(RateLimiter, AFloodOfAThousandASecondIsCutAfterTheBurstAndHeldToTheRate) {
  RateLimiter r(wire::kClientMessageRate, wire::kClientMessageBurst, kStart);
  int allowed = 0;
  int first_refusal_ms = -1;
  for (int i = 0; i < 1000; ++i) {  // one second, one message per millisecond
    const bool ok = r.allow(kStart + std::chrono::milliseconds(i));
    allowed += ok;
    if (!ok && first_refusal_ms < 0) first_refusal_ms = i;
  }
  // 100 saved + 50 per second: refused from about 105 ms on; 149 allowed in
  // the first second (the 150th token arrives at t = 1 s).
  EXPECT_EQ(first_refusal_ms, 105);
  EXPECT_EQ(allowed, 149);
}

TEST(RateLimiter, TimeGoingBackwardsAddsNothingAndBreaksNothing) {
  RateLimiter r(10, 2, kStart);
  AllowedAt(r, kStart + 10s, 2);
  EXPECT_FALSE(r.allow(kStart));  // earlier than the last call: no time passed
  EXPECT_FALSE(r.allow(kStart + 10s));
  EXPECT_TRUE(r.allow(kStart + 10s + 100ms)) << "refill counts from the latest time seen";
}

TEST(RateLimiter, ExtremeTimesAndRatesDoNotOverflow) {
  RateLimiter fast(UINT32_MAX, UINT32_MAX, Clock::time_point::min());
  EXPECT_EQ(fast.available(Clock::time_point::min()), UINT32_MAX);
  EXPECT_TRUE(fast.allow(Clock::time_point::min()));
  EXPECT_EQ(fast.available(Clock::time_point::max()), UINT32_MAX);
  EXPECT_TRUE(fast.allow(Clock::time_point::max()));

  RateLimiter slow(1, UINT32_MAX, kStart);
  EXPECT_EQ(slow.available(kStart), UINT32_MAX);
  EXPECT_TRUE(slow.allow(kStart));
  EXPECT_EQ(slow.available(kStart + 1s), UINT32_MAX);
}

TEST(RateLimiter, ZeroRateAllowsOnlyTheFirstBurstAndZeroBurstNothing) {
  RateLimiter no_refill(0, 3, kStart);
  EXPECT_EQ(AllowedAt(no_refill, kStart + 1000s, 10), 3);
  EXPECT_FALSE(no_refill.allow(kStart + 100000s));
  RateLimiter closed(50, 0, kStart);
  EXPECT_FALSE(closed.allow(kStart));
  EXPECT_FALSE(closed.allow(kStart + 10s));
  EXPECT_EQ(closed.available(kStart + 10s), 0u);
}

}  // namespace
}  // namespace tlsframe
