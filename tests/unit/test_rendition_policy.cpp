// RenditionPolicy (core/rendition_policy.h): the automatic rendition choice
// as pure policy, driven with synthetic samples in microseconds. Ladder:
// 2.5 Mbit/s and 500 kbit/s (index 0 and 1), as the slow-link test's.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <vector>

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

TEST(RenditionPolicy, AViewerJoiningOverASlowLinkStepsDownWithoutSettling) {
  RenditionPolicy p;
  p.switched(us(0), 0, 0);  // started on the highest
  auto d = run(p, 100, 3000, 0, 600, 1'000'000);
  ASSERT_TRUE(d.has_value());
  EXPECT_LE(d->first, 100 + 300) << "down_hold 200 ms; no settle at the start";
  EXPECT_EQ(d->second.target, 1u);
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

TEST(RenditionPolicy, OneOutlyingRateDoesNotStepUp) {
  RenditionPolicy p;
  p.switched(us(0), 0, 1);
  // A 1 Mbit/s link: path-limited samples near 1 Mbit/s, and once 4.27 Mbit/s
  // (seen in net_slowlink): not evidence enough, and not a reason to probe.
  for (int64_t t = 0; t <= 20'000; t += 100) {
    const uint64_t rate = t == 10'000 ? 4'270'000 : 1'200'000;
    auto d = p.sample(at(t, 40, rate), kLadder, 1);
    EXPECT_FALSE(d.change) << "at " << t << " ms: " << d.reason;
    if (d.change) break;
  }
  // A second such sample within the window is evidence: up.
  auto d = p.sample(at(20'100, 40, 4'270'000), kLadder, 1);
  EXPECT_FALSE(d.change) << "the first outlier left the window at 18 s";
  d = p.sample(at(20'200, 40, 4'270'000), kLadder, 1);
  EXPECT_TRUE(d.change);
  EXPECT_TRUE(d.up);
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

// What the kernel reported on the low rendition in the slow-link
// measurement (rendition_policy.h): app-limited samples at line rate
// (1.93 Gbit/s), and at 1 Mbit/s a path-limited one of ~1 Mbit/s at each
// keyframe (every 2 s), with a queue delay blip. `limited`: the link is slow.
RenditionPolicy::Sample on_low(int64_t t_ms, bool limited) {
  if (limited && t_ms % 2000 == 0) return at(t_ms, 110, 1'000'000, false);
  return at(t_ms, 0, 1'930'000'000, true);
}

// Feeds on_low() samples from t0 to t1 (ms) on the low rendition; the first change, if any.
std::optional<std::pair<int64_t, RenditionPolicy::Decision>> run_low(RenditionPolicy &p, int64_t t0,
                                                                     int64_t t1, bool limited) {
  for (int64_t t = t0; t <= t1; t += kStep.count() / 1000) {
    auto d = p.sample(on_low(t, limited), kLadder, 1);
    if (d.change) return std::make_pair(t, d);
  }
  return std::nullopt;
}

TEST(RenditionPolicy, AppLimitedRatesAreNotEvidenceOfRoom) {
  RenditionPolicy p;
  p.switched(us(0), 0, 1);
  // Line-rate app-limited readings and a path-limited 1 Mbit/s every 2 s: stays low.
  EXPECT_FALSE(run_low(p, 0, 120'000, true).has_value());
  EXPECT_EQ(p.estimated_rate(), 1'000'000u);
}

TEST(RenditionPolicy, AnAppLimitedLinkThatWasRaisedIsTriedWithinFifteenSeconds) {
  RenditionPolicy p;
  p.switched(us(0), 0, 1);
  ASSERT_FALSE(run_low(p, 0, 30'000, true).has_value());
  // Raised at 30.1 s: no more path-limited samples (the trains fit the window).
  auto d = run_low(p, 30'100, 60'000, false);
  ASSERT_TRUE(d.has_value());
  EXPECT_LE(d->first - 30'100, 15'000);
  EXPECT_EQ(d->second.target, 0u);
  EXPECT_TRUE(d->second.up);
  EXPECT_NE(d->second.reason.find("auto: up (trying)"), std::string::npos) << d->second.reason;
}

// One path-limited rate above the bar just before the slow link's last
// rate leaves the window: it is no evidence against, so the try comes when
// the slow rates are gone, not rate_window after that lone rate.
TEST(RenditionPolicy, ALoneRateAboveTheBarDoesNotHoldBackTheTry) {
  RenditionPolicy p;
  p.switched(us(0), 0, 1);
  ASSERT_FALSE(run_low(p, 0, 30'000, true).has_value());  // last slow rate at 30 s
  ASSERT_FALSE(run_low(p, 30'100, 37'800, false).has_value());
  ASSERT_FALSE(p.sample(at(37'900, 0, 10'000'000, false), kLadder, 1).change);
  auto d = run_low(p, 38'000, 60'000, false);
  ASSERT_TRUE(d.has_value());
  EXPECT_LE(d->first, 38'100) << "the slow rate left the window at 38 s";
  EXPECT_TRUE(d->second.up);
  EXPECT_NE(d->second.reason.find("auto: up (trying), no path-limited rate below 3.25 Mbit/s"),
            std::string::npos)
      << d->second.reason;
}

TEST(RenditionPolicy, AFailedTryIsUndoneQuicklyBacksOffAndIsRetriedWithinTheCap) {
  RenditionPolicy p;
  p.switched(us(0), 0, 1);
  // A 1 Mbit/s link whose low rendition never fills the window: nothing says
  // it is slow, so the policy tries. Each try congests at once.
  int64_t t = 0;
  std::vector<int64_t> gaps;
  for (int tries = 0; tries < 5; ++tries) {
    auto up = run_low(p, t, t + 30'000, false);
    ASSERT_TRUE(up.has_value()) << "try " << tries;
    ASSERT_TRUE(up->second.up);
    if (tries > 0) gaps.push_back(up->first - t);
    // The target's keyframe 100 ms later: the switch completes.
    const int64_t switched_up = up->first + 100;
    p.switched(us(switched_up * 1000), 1, 0);
    auto down = run(p, switched_up + 100, switched_up + 5000, 0, 700, 1'000'000);
    ASSERT_TRUE(down.has_value());
    EXPECT_LE(down->first - switched_up, 900) << "up_settle 500 ms + down_hold 200 ms";
    EXPECT_EQ(down->second.target, 1u);
    t = down->first + 100;
    p.switched(us(t * 1000), 0, 1);
  }
  // Holds 8 s, then 10 s (the cap, not 16 or 32): each waits out the failed
  // try's own path-limited samples too (rate_window 8 s).
  ASSERT_EQ(gaps.size(), 4u);
  EXPECT_GE(gaps[0], 8'000);
  for (int64_t g : gaps) EXPECT_LE(g, 10'500);
  EXPECT_GE(gaps[3], 10'000);
}

TEST(RenditionPolicy, NeverFlapsOnASteadyLink) {
  // Unshaped, on the high rendition, app-limited throughout.
  RenditionPolicy high;
  high.switched(us(0), 0, 0);
  for (int64_t t = 0; t <= 120'000; t += 100) {
    ASSERT_FALSE(high.sample(at(t, 2, 1'930'000'000, true), kLadder, 0).change) << t;
  }
  // 3 Mbit/s: carries the low rendition, not the high one with headroom.
  RenditionPolicy mid;
  mid.switched(us(0), 0, 1);
  for (int64_t t = 0; t <= 120'000; t += 100) {
    const bool train = t % 2000 == 0;
    auto s = train ? at(t, 40, 3'000'000, false) : at(t, 0, 1'930'000'000, true);
    ASSERT_FALSE(mid.sample(s, kLadder, 1).change) << t;
  }
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
