// Unit tests for the GOP cache (core/gop_cache.h) and the client queue's
// burst rule (ClientQueue::offer_burst): what sync-method=latest-keyframe
// keeps and how a joiner's cached GOP sits against buffers-max/bytes-max.
// No socket, no clock.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/client_queue.h"
#include "core/gop_cache.h"
#include "unit/messages.h"

namespace tlsframe {
namespace {

using Added = GopCache::Added;
using Outcome = ClientQueue::Outcome;
using test::make_caps;
using test::write_all;

// A buffer of `size` wire bytes published under `caps`; `id` in its first byte.
MessagePtr make_buffer(bool delta, const MessagePtr &caps, uint8_t id, size_t size = 100) {
  auto m = test::make_buffer(delta, caps, size);
  m->bytes[0] = id;
  return m;
}

std::vector<uint8_t> ids_of(const std::vector<MessagePtr> &msgs) {
  std::vector<uint8_t> ids;
  for (const auto &m : msgs) {
    if (m->type == wire::MessageType::kBuffer) ids.push_back(m->bytes[0]);
  }
  return ids;
}

// Adds the same message as both versions (the tests do not tell them apart).
Added add(GopCache &c, const MessagePtr &m) { return c.add(m, m); }

// ===========================================================================
// GopCache.

TEST(GopCache, KeepsTheBuffersFromTheLatestKeyframeOnSharedNotCopied) {
  GopCache c(1 << 20);
  auto caps = make_caps("video/x-h264");
  EXPECT_EQ(add(c, make_buffer(true, caps, 1)), Added::kIgnored) << "a delta with no keyframe";
  EXPECT_TRUE(c.empty());
  auto k2 = make_buffer(false, caps, 2);
  EXPECT_EQ(add(c, k2), Added::kStarted);
  EXPECT_EQ(add(c, make_buffer(true, caps, 3)), Added::kAppended);
  EXPECT_EQ(add(c, make_buffer(true, caps, 4)), Added::kAppended);
  EXPECT_EQ(ids_of(c.messages(wire::Version::kV1)), (std::vector<uint8_t>{2, 3, 4}));
  EXPECT_EQ(c.bytes(), 300u);
  EXPECT_EQ(c.messages(wire::Version::kV1).front().get(), k2.get()) << "the same message, shared";

  EXPECT_EQ(add(c, make_buffer(false, caps, 5)), Added::kStarted) << "a new keyframe starts over";
  EXPECT_EQ(add(c, make_buffer(true, caps, 6)), Added::kAppended);
  EXPECT_EQ(ids_of(c.messages(wire::Version::kV1)), (std::vector<uint8_t>{5, 6}));
  EXPECT_EQ(c.bytes(), 200u);
}

TEST(GopCache, KeepsEachVersionsMessages) {
  GopCache c(1 << 20);
  auto caps = make_caps("video/x-h264");
  auto v1 = make_buffer(false, caps, 1);
  auto v2 = make_buffer(false, caps, 1);
  c.add(v1, v2);
  ASSERT_EQ(c.messages(wire::Version::kV1).size(), 1u);
  EXPECT_EQ(c.messages(wire::Version::kV1)[0].get(), v1.get());
  EXPECT_EQ(c.messages(wire::Version::kV2)[0].get(), v2.get());
}

TEST(GopCache, OverTheBoundItIsDroppedUntilTheNextKeyframe) {
  GopCache c(350);  // a keyframe and two deltas of 100 bytes fit, a third does not
  auto caps = make_caps("video/x-h264");
  EXPECT_EQ(add(c, make_buffer(false, caps, 1)), Added::kStarted);
  EXPECT_EQ(add(c, make_buffer(true, caps, 2)), Added::kAppended);
  EXPECT_EQ(add(c, make_buffer(true, caps, 3)), Added::kAppended);
  EXPECT_EQ(add(c, make_buffer(true, caps, 4)), Added::kOverBound);
  EXPECT_TRUE(c.empty()) << "a partial GOP is no use to a joiner: dropped whole";
  EXPECT_EQ(c.bytes(), 0u);
  EXPECT_EQ(add(c, make_buffer(true, caps, 5)), Added::kIgnored) << "said once, not per delta";
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(add(c, make_buffer(false, caps, 6)), Added::kStarted) << "the next keyframe restarts";
  EXPECT_EQ(ids_of(c.messages(wire::Version::kV1)), (std::vector<uint8_t>{6}));
}

TEST(GopCache, AKeyframeLargerThanTheBoundIsNotCached) {
  GopCache c(99);
  auto caps = make_caps("video/x-h264");
  EXPECT_EQ(add(c, make_buffer(false, caps, 1)), Added::kOverBound);
  EXPECT_EQ(add(c, make_buffer(true, caps, 2)), Added::kIgnored);
  EXPECT_TRUE(c.empty());
}

TEST(GopCache, ZeroBytesKeepsNothing) {
  GopCache c(0);
  auto caps = make_caps("video/x-h264");
  EXPECT_EQ(add(c, make_buffer(false, caps, 1)), Added::kOverBound);
  EXPECT_TRUE(c.empty());
}

TEST(GopCache, ResetEmptiesItUntilTheNextKeyframe) {
  GopCache c(1 << 20);
  auto caps = make_caps("video/x-h264");
  add(c, make_buffer(false, caps, 1));
  add(c, make_buffer(true, caps, 2));
  c.reset();  // new caps (or EOS)
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.bytes(), 0u);
  auto caps2 = make_caps("video/x-h264, width=(int)640");
  EXPECT_EQ(add(c, make_buffer(true, caps2, 3)), Added::kIgnored)
      << "a delta after new caps depends on a keyframe of the old caps";
  EXPECT_EQ(add(c, make_buffer(false, caps2, 4)), Added::kStarted);
  EXPECT_EQ(ids_of(c.messages(wire::Version::kV1)), (std::vector<uint8_t>{4}));
}

// ===========================================================================
// ClientQueue::offer_burst: the joiner's side.

TEST(ClientQueueBurst, JoinerGetsCapsThenTheCachedGopKeyframeFirstThenLive) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  auto caps = make_caps("video/x-h264");
  ASSERT_TRUE(q.offer(caps).queued());  // Session::join delivers the caps first
  std::vector<MessagePtr> gop{make_buffer(false, caps, 1), make_buffer(true, caps, 2),
                              make_buffer(true, caps, 3)};
  EXPECT_EQ(q.offer_burst(gop), 3u);
  EXPECT_FALSE(q.waiting_for_keyframe());
  EXPECT_EQ(q.offer(make_buffer(true, caps, 4)).outcome, Outcome::kQueued)
      << "the live delta that follows the cached GOP is not gated";
  auto out = write_all(q);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].get(), caps.get()) << "caps once, first";
  EXPECT_EQ(ids_of(out), (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(q.burst_size(), 0u);
  EXPECT_EQ(q.burst_bytes(), 0u);
}

TEST(ClientQueueBurst, BurstBringsItsCapsWhenTheJoinerHasNone) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  auto caps = make_caps("video/x-h264");
  EXPECT_EQ(q.offer_burst({make_buffer(false, caps, 1), make_buffer(true, caps, 2)}), 2u);
  auto out = write_all(q);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].get(), caps.get());
}

TEST(ClientQueueBurst, ABurstNotStartingOnAKeyframeIsRefused) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  auto caps = make_caps("video/x-h264");
  EXPECT_EQ(q.offer_burst({make_buffer(true, caps, 1)}), 0u);
  EXPECT_EQ(q.offer_burst({}), 0u);
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.waiting_for_keyframe());
}

// The rule: a cached GOP of 300 buffers (a 10 s GOP at 30 fps) with
// buffers-max 32 is queued whole; the limits count only what comes after it.
TEST(ClientQueueBurst, ALongGopIsQueuedWholeOnTopOfTheLimitsAndIsNoOverflow) {
  ClientQueue q(QueueLimits{32, 1 << 20});  // 300 x 100 bytes = 30 kB, also over no byte limit
  auto caps = make_caps("video/x-h264");
  q.offer(caps);
  std::vector<MessagePtr> gop{make_buffer(false, caps, 0)};
  for (int i = 1; i < 300; ++i) gop.push_back(make_buffer(true, caps, static_cast<uint8_t>(i)));
  EXPECT_EQ(q.offer_burst(gop), 300u);
  EXPECT_EQ(q.burst_size(), 300u) << "the caps were queued before, as any joiner's";
  // Live messages behind it (the caps count as one): up to buffers-max.
  for (int i = 0; i < 31; ++i) {
    auto d = q.offer(make_buffer(true, caps, 0));
    ASSERT_EQ(d.outcome, Outcome::kQueued) << "live buffer " << i << " behind the burst";
  }
  // Only the 32nd live buffer is past buffers-max (the caps entry counts as one).
  auto d = q.offer(make_buffer(true, caps, 0));
  EXPECT_EQ(d.outcome, Outcome::kDroppedOverflow)
      << "a client that cannot keep up behind its burst still skips";
  EXPECT_TRUE(q.waiting_for_keyframe());
}

TEST(ClientQueueBurst, TheBurstAllowanceShrinksAsItIsWritten) {
  ClientQueue q(QueueLimits{4, 1 << 20});
  auto caps = make_caps("video/x-h264");
  q.offer(caps);
  std::vector<MessagePtr> gop{make_buffer(false, caps, 0)};
  for (int i = 1; i < 10; ++i) gop.push_back(make_buffer(true, caps, static_cast<uint8_t>(i)));
  q.offer_burst(gop);
  // Write the caps and 5 cached buffers: 5 cached ones remain.
  for (int i = 0; i < 6; ++i) {
    ASSERT_NE(q.begin_write(), nullptr);
    q.end_write();
  }
  EXPECT_EQ(q.burst_size(), 5u);
  EXPECT_EQ(q.burst_bytes(), 500u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(q.offer(make_buffer(true, caps, 50)).outcome, Outcome::kQueued);
  EXPECT_EQ(q.offer(make_buffer(true, caps, 51)).outcome, Outcome::kDroppedOverflow);
}

TEST(ClientQueueBurst, TheByteLimitAlsoCountsOnlyWhatFollowsTheBurst) {
  ClientQueue q(QueueLimits{1000, 250});  // two 100-byte buffers fit, not three
  auto caps = make_caps("video/x-h264");
  std::vector<MessagePtr> gop{make_buffer(false, caps, 0)};
  for (int i = 1; i < 20; ++i) gop.push_back(make_buffer(true, caps, static_cast<uint8_t>(i)));
  q.offer_burst(gop);  // 2,000 bytes, eight times bytes-max
  EXPECT_EQ(q.offer(make_buffer(true, caps, 30)).outcome, Outcome::kQueued);
  EXPECT_EQ(q.offer(make_buffer(true, caps, 31)).outcome, Outcome::kQueued);
  EXPECT_EQ(q.offer(make_buffer(true, caps, 32)).outcome, Outcome::kDroppedOverflow);
}

TEST(ClientQueueBurst, AKeyframeThatDoesNotFitPurgesTheUnsentBurstToo) {
  ClientQueue q(QueueLimits{2, 1 << 20});
  auto caps = make_caps("video/x-h264");
  q.offer(caps);
  q.offer_burst({make_buffer(false, caps, 0), make_buffer(true, caps, 1), make_buffer(true, caps, 2)});
  ASSERT_NE(q.begin_write(), nullptr);  // the caps are being written
  EXPECT_EQ(q.offer(make_buffer(true, caps, 3)).outcome, Outcome::kQueued);  // caps + 3: 2 live
  EXPECT_EQ(q.offer(make_buffer(true, caps, 4)).outcome, Outcome::kDroppedOverflow);
  auto d = q.offer(make_buffer(false, caps, 6));
  EXPECT_EQ(d.outcome, Outcome::kQueuedAfterPurge);
  EXPECT_EQ(d.dropped, 4u) << "3 cached and 1 live buffer";
  EXPECT_EQ(q.burst_size(), 0u);
  q.end_write();
  EXPECT_EQ(q.burst_bytes(), 0u);
  auto out = write_all(q);
  EXPECT_EQ(ids_of(out), (std::vector<uint8_t>{6}));
}

TEST(ClientQueueBurst, ClearResetsTheBurstCounts) {
  ClientQueue q(QueueLimits{2, 1 << 20});
  auto caps = make_caps("video/x-h264");
  q.offer_burst({make_buffer(false, caps, 0), make_buffer(true, caps, 1)});
  q.clear();
  EXPECT_EQ(q.burst_size(), 0u);
  EXPECT_EQ(q.burst_bytes(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

}  // namespace
}  // namespace tlsframe
