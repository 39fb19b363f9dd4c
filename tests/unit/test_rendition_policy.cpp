// RenditionPolicy (core/rendition_policy.h): the automatic rendition choice
// as pure policy, driven with synthetic samples in microseconds. Ladder:
// 2.5 Mbit/s and 500 kbit/s (index 0 and 1), as the slow-link test's.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include "core/rendition_policy.h"

namespace tlsframe {
namespace {

using us = std::chrono::microseconds;
const std::vector<uint64_t> kLadder = {2'500'000, 500'000};
constexpr us kStep{100'000};  // the session's sample interval

RenditionPolicy::Sample at(int64_t t_ms, int64_t delay_ms, uint64_t rate_bps,
                           bool app_limited = false) {
  RenditionPolicy::Sample s;
  s.at = us(t_ms * 1000);
  s.queue_delay = us(delay_ms * 1000);
  s.delivery_rate_bps = rate_bps;
  s.app_limited = app_limited;
  return s;
}

// Feeds one sample every 100 ms from t0 to t1 (ms); the first decision to change, if any.
std::optional<std::pair<int64_t, RenditionPolicy::Decision>> run(
    RenditionPolicy &p, int64_t t0, int64_t t1, size_t current, int64_t delay_ms,
    uint64_t rate_bps) {
  for (int64_t t = t0; t <= t1; t += kStep.count() / 1000) {
    auto d = p.sample(at(t, delay_ms, rate_bps), kLadder, current);
    if (d.change) return std::make_pair(t, d);
  }
  return std::nullopt;
}

TEST(RenditionPolicy, AKeptUpConnectionStaysOnTheHighestRendition) {
  RenditionPolicy p;
  p.switched(us(0), 0, 0);
  EXPECT_FALSE(run(p, 0, 60'000, 0, 20, 20'000'000).has_value());
}

TEST(RenditionPolicy, CongestionStepsDownWithinHalfASecondToWhatTheRateCarries) {
  RenditionPolicy p;
  p.switched(us(0), 0, 0);
  // 2 s fine, then the link drops to 1 Mbit/s: the queue delay climbs past 350 ms.
  ASSERT_FALSE(run(p, 0, 2000, 0, 20, 20'000'000).has_value());
  auto d = run(p, 2100, 5000, 0, 600, 1'000'000);
  ASSERT_TRUE(d.has_value());
  EXPECT_LE(d->first, 2100 + 300) << "down_hold is 200 ms";
  EXPECT_EQ(d->second.target, 1u);
  EXPECT_FALSE(d->second.up);
  EXPECT_NE(d->second.reason.find("auto: down, queue delay 600 ms"), std::string::npos)
      << d->second.reason;
}

TEST(RenditionPolicy, ABriefDelaySpikeDoesNotStepDown) {
  RenditionPolicy p;
  p.switched(us(0), 0, 0);
  ASSERT_FALSE(run(p, 0, 2000, 0, 20, 20'000'000).has_value());
  EXPECT_FALSE(p.sample(at(2100, 500, 3'000'000), kLadder, 0).change);
  EXPECT_FALSE(p.sample(at(2200, 30, 3'000'000), kLadder, 0).change);
  EXPECT_FALSE(run(p, 2300, 10'000, 0, 20, 20'000'000).has_value());
}

TEST(RenditionPolicy, NoDecisionWhileTheLastSwitchSettlesOrRatesAreUnknown) {
  RenditionPolicy p;
  p.switched(us(0), 0, 1);
  EXPECT_FALSE(run(p, 0, 1400, 1, 900, 300'000).has_value()) << "settle: 1.5 s";
  RenditionPolicy q;
  EXPECT_FALSE(q.sample(at(5000, 900, 300'000), {2'500'000, 0}, 0).change);
  for (int t = 5100; t < 6000; t += 100) {
    EXPECT_FALSE(q.sample(at(t, 900, 300'000), {2'500'000, 0}, 0).change);
  }
}

TEST(RenditionPolicy, StepsUpOnlyAfterAClearHoldAndARateWithHeadroom) {
  RenditionPolicy p;
  p.switched(us(0), 0, 1);
  // On the low rendition over a 1 Mbit/s link: clear, but the rate never shows 3.25 Mbit/s.
  EXPECT_FALSE(run(p, 0, 30'000, 1, 40, 1'000'000).has_value());
  // The link is raised: the delivery rate shows 10 Mbit/s; up within the 4 s hold.
  auto d = run(p, 30'100, 40'000, 1, 40, 10'000'000);
  ASSERT_TRUE(d.has_value());
  EXPECT_LE(d->first, 30'100 + 4'000);
  EXPECT_EQ(d->second.target, 0u);
  EXPECT_TRUE(d->second.up);
  EXPECT_EQ(p.estimated_rate(), 10'000'000u);
}

TEST(RenditionPolicy, AStepUpUndoneSoonDoublesTheHoldBeforeTheNextTry) {
  RenditionPolicy p;
  p.switched(us(0), 0, 1);
  auto up = run(p, 0, 10'000, 1, 40, 10'000'000);
  ASSERT_TRUE(up.has_value());
  p.switched(us(up->first * 1000), 1, 0);
  auto down = run(p, up->first + 100, up->first + 5000, 0, 800, 1'000'000);
  ASSERT_TRUE(down.has_value());
  p.switched(us(down->first * 1000), 0, 1);
  // Clear again with a high rate seen: the next try waits 8 s, not 4.
  auto again = run(p, down->first + 100, down->first + 20'000, 1, 40, 10'000'000);
  ASSERT_TRUE(again.has_value());
  EXPECT_GE(again->first - down->first, 8000);
}

TEST(RenditionPolicy, ReadTcpSampleOnANonTcpSocketSaysSo) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EXPECT_FALSE(read_tcp_sample(sv[0]).ok);
  ::close(sv[0]);
  ::close(sv[1]);
  EXPECT_FALSE(read_tcp_sample(-1).ok);
}

}  // namespace
}  // namespace tlsframe
