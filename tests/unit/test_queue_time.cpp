// Unit tests for the per-client bound on queued time (ClientQueue's
// max_time, the sink's time-max): stale buffers are dropped oldest first, a
// delta-unit stream resumes on a keyframe, a JPEG-like stream only loses its
// oldest frames. No socket and no clock: each buffer carries its publish
// time and every offer() is given `now`.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/client_queue.h"
#include "unit/messages.h"

namespace tlsframe {
namespace {

using namespace std::chrono_literals;
using Outcome = ClientQueue::Outcome;
using test::make_caps;
using test::write_all;
using TimePoint = ClientQueue::TimePoint;

const TimePoint kT0 = TimePoint{} + 1000s;  // any non-zero instant
constexpr auto kFrame = 33ms;               // 30 fps

// A queue bounded at 250 ms only (buffer and byte limits out of the way).
ClientQueue make_queue(std::chrono::milliseconds max_time = 250ms) {
  return ClientQueue(QueueLimits{1000, 1ull << 30, max_time});
}

// Buffer number `i` of a 30 fps stream, published at kT0 + i frames.
MessagePtr frame(int i, bool delta, const MessagePtr &caps) {
  auto m = test::make_buffer(delta, caps);
  m->published = kT0 + i * kFrame;
  return m;
}

TimePoint at_frame(int i) { return kT0 + i * kFrame; }

std::vector<MessagePtr> buffers_of(const std::vector<MessagePtr> &msgs) {
  std::vector<MessagePtr> out;
  for (const auto &m : msgs) {
    if (m->type == wire::MessageType::kBuffer) out.push_back(m);
  }
  return out;
}

TEST(QueueTime, WithinTheBoundNothingIsDropped) {
  ClientQueue q = make_queue();
  auto caps = make_caps("image/jpeg");
  for (int i = 0; i < 7; ++i) {  // 7 frames = 231 ms
    auto d = q.offer(frame(i, false, caps), at_frame(i));
    EXPECT_EQ(d.outcome, Outcome::kQueued) << i;
    EXPECT_FALSE(d.late);
  }
  EXPECT_EQ(buffers_of(write_all(q)).size(), 7u);
}

TEST(QueueTime, WithoutAClockOrAPublishTimeThereIsNoTimeBound) {
  ClientQueue q = make_queue(1ms);
  auto caps = make_caps("image/jpeg");
  for (int i = 0; i < 20; ++i) EXPECT_EQ(q.offer(frame(i, false, caps)).outcome, Outcome::kQueued);
  auto untimed = frame(20, false, caps);
  std::const_pointer_cast<Message>(untimed)->published = TimePoint{};
  // Every queued buffer is stale at frame 40, yet an untimed offer checks nothing.
  ClientQueue q2 = make_queue(1ms);
  q2.offer(frame(0, false, caps), at_frame(0));
  EXPECT_EQ(q2.offer(untimed, at_frame(40)).outcome, Outcome::kQueued);
}

TEST(QueueTime, StreamWithoutDeltaUnitsLosesOnlyItsOldestFrames) {
  ClientQueue q = make_queue();
  auto caps = make_caps("image/jpeg");
  for (int i = 0; i < 7; ++i) q.offer(frame(i, false, caps), at_frame(i));
  // The client read nothing for 10 frames: frames 0..2 are over 250 ms old at frame 10.
  auto d = q.offer(frame(10, false, caps), at_frame(10));
  EXPECT_EQ(d.outcome, Outcome::kQueuedAfterPurge);
  EXPECT_TRUE(d.late);
  EXPECT_EQ(d.dropped, 3u) << "frames 0, 1, 2 (330, 297, 264 ms old)";
  EXPECT_FALSE(q.waiting_for_keyframe());
  auto sent = write_all(q);
  ASSERT_EQ(sent.size(), 6u);
  EXPECT_EQ(sent[0], caps) << "the caps stay in front of the frames that need them";
  for (const auto &m : buffers_of(sent)) {
    EXPECT_GE(m->published, at_frame(10) - 250ms) << "nothing older than the bound is sent";
  }
}

TEST(QueueTime, TheBufferBeingWrittenIsNeverDropped) {
  ClientQueue q = make_queue();
  auto caps = make_caps("image/jpeg");
  auto f0 = frame(0, false, caps);
  q.offer(f0, at_frame(0));
  q.offer(frame(1, false, caps), at_frame(1));
  ASSERT_TRUE(q.begin_write());  // caps
  q.end_write();
  const MessagePtr *writing = q.begin_write();
  ASSERT_NE(writing, nullptr);
  EXPECT_EQ(*writing, f0);
  auto d = q.offer(frame(20, false, caps), at_frame(20));
  EXPECT_EQ(d.dropped, 1u) << "frame 1 only";
  EXPECT_EQ(q.front(), f0);
  EXPECT_EQ(q.size(), 2u);
}

TEST(QueueTime, DeltaStreamDropsStaleFramesAndResumesOnTheNextKeyframe) {
  ClientQueue q = make_queue();
  auto caps = make_caps("video/x-h264");
  q.offer(frame(0, false, caps), at_frame(0));
  for (int i = 1; i < 5; ++i) q.offer(frame(i, true, caps), at_frame(i));
  // At frame 12, frames 0..4 are all older than 250 ms: the GOP's tail has
  // lost its reference, so the offered delta is dropped too.
  auto d = q.offer(frame(12, true, caps), at_frame(12));
  EXPECT_EQ(d.outcome, Outcome::kDroppedOverflow) << "the session asks for a keyframe";
  EXPECT_TRUE(d.late);
  EXPECT_EQ(d.dropped, 6u) << "5 queued + the offered one";
  EXPECT_TRUE(q.waiting_for_keyframe());
  EXPECT_EQ(q.offer(frame(13, true, caps), at_frame(13)).outcome, Outcome::kDroppedForKeyframe);
  auto key = frame(14, false, caps);
  EXPECT_EQ(q.offer(key, at_frame(14)).outcome, Outcome::kQueued);
  auto sent = buffers_of(write_all(q));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0], key);
}

TEST(QueueTime, DeltaStreamKeepsAFreshGopQueuedBehindAStaleOne) {
  ClientQueue q = make_queue();
  auto caps = make_caps("video/x-h264");
  q.offer(frame(0, false, caps), at_frame(0));
  q.offer(frame(1, true, caps), at_frame(1));
  q.offer(frame(2, true, caps), at_frame(2));
  auto key = frame(6, false, caps);
  q.offer(key, at_frame(6));
  q.offer(frame(7, true, caps), at_frame(7));
  // At frame 10: 0 (330 ms) is stale, 1 and 2 (297, 264 ms) are stale, 6 is fresh.
  auto d = q.offer(frame(10, true, caps), at_frame(10));
  EXPECT_EQ(d.outcome, Outcome::kQueuedAfterPurge);
  EXPECT_EQ(d.dropped, 3u);
  EXPECT_FALSE(q.waiting_for_keyframe()) << "the fresh GOP's delta units keep their reference";
  auto sent = buffers_of(write_all(q));
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0], key);
}

TEST(QueueTime, FreshDeltaUnitsAfterADroppedStaleOneGoWithIt) {
  ClientQueue q = make_queue();
  auto caps = make_caps("video/x-h264");
  q.offer(frame(0, false, caps), at_frame(0));  // stale at frame 9 (297 ms)
  q.offer(frame(1, true, caps), at_frame(1));   // stale at frame 9 (264 ms)
  q.offer(frame(7, true, caps), at_frame(7));   // fresh, but depends on frame 1
  auto d = q.offer(frame(9, true, caps), at_frame(9));
  EXPECT_EQ(d.outcome, Outcome::kDroppedOverflow);
  EXPECT_EQ(d.dropped, 4u);
  EXPECT_TRUE(buffers_of(write_all(q)).empty());
}

TEST(QueueTime, ABufferOlderThanTheBoundWhenOfferedIsNotQueued) {
  // The session's inbox was drained late (a saturated I/O thread): the
  // buffer is already too old, so it costs no encryption.
  ClientQueue q = make_queue();
  auto caps = make_caps("image/jpeg");
  auto d = q.offer(frame(0, false, caps), at_frame(10));
  EXPECT_EQ(d.outcome, Outcome::kDroppedOverflow);
  EXPECT_TRUE(d.late);
  EXPECT_EQ(d.dropped, 1u);
  EXPECT_TRUE(q.empty());
  // On a stream without delta units the next buffer starts the client again.
  EXPECT_EQ(q.offer(frame(11, false, caps), at_frame(11)).outcome, Outcome::kQueued);
}

TEST(QueueTime, AJoinersCachedGopIsNotShedForItsAge) {
  ClientQueue q = make_queue();
  auto caps = make_caps("video/x-h264");
  std::vector<MessagePtr> gop = {frame(0, false, caps), frame(1, true, caps), frame(2, true, caps)};
  ASSERT_EQ(q.offer_burst(gop), 3u);
  auto d = q.offer(frame(60, true, caps), at_frame(60));  // the GOP is 2 s old
  EXPECT_EQ(d.outcome, Outcome::kQueued);
  EXPECT_EQ(d.dropped, 0u);
  EXPECT_EQ(buffers_of(write_all(q)).size(), 4u);
}

TEST(QueueTime, BufferLimitStillAppliesWithATimeBound) {
  ClientQueue q(QueueLimits{3, 1ull << 30, 250ms});
  auto caps = make_caps("video/x-h264");
  q.offer(frame(0, false, caps), at_frame(0));  // caps + keyframe
  q.offer(frame(1, true, caps), at_frame(1));
  auto d = q.offer(frame(2, true, caps), at_frame(2));
  EXPECT_EQ(d.outcome, Outcome::kDroppedOverflow);
  EXPECT_FALSE(d.late) << "buffers-max, not time-max";
}

TEST(QueueTime, ExpireBeforeAWriteDropsWhatIsAlreadyTooOld) {
  ClientQueue q = make_queue();
  auto caps = make_caps("image/jpeg");
  for (int i = 0; i < 7; ++i) q.offer(frame(i, false, caps), at_frame(i));
  // At frame 9 (297 ms) frames 0 and 1 are over 250 ms old; no offer came since.
  auto d = q.expire(at_frame(9));
  EXPECT_EQ(d.dropped, 2u);
  EXPECT_TRUE(d.late);
  EXPECT_EQ(d.outcome, Outcome::kQueued);  // a JPEG-like stream just goes on
  auto written = buffers_of(write_all(q));
  ASSERT_EQ(written.size(), 5u);
  EXPECT_EQ(written.front()->published, at_frame(2));
}

TEST(QueueTime, ExpireWithNothingStaleOrNoBoundDoesNothing) {
  auto caps = make_caps("image/jpeg");
  ClientQueue q = make_queue();
  q.offer(frame(0, false, caps), at_frame(0));
  auto d = q.expire(at_frame(7));  // 231 ms
  EXPECT_EQ(d.dropped, 0u);
  EXPECT_FALSE(d.late);
  ClientQueue unbounded = make_queue(0ms);
  unbounded.offer(frame(0, false, caps), at_frame(0));
  EXPECT_EQ(unbounded.expire(at_frame(100)).dropped, 0u);
  EXPECT_EQ(q.expire(TimePoint{}).dropped, 0u);  // no clock: no check
}

TEST(QueueTime, ExpireNeverDropsTheBufferBeingWritten) {
  ClientQueue q = make_queue();
  auto caps = make_caps("image/jpeg");
  for (int i = 0; i < 4; ++i) q.offer(frame(i, false, caps), at_frame(i));
  const MessagePtr *first = q.begin_write();  // caps
  ASSERT_NE(first, nullptr);
  q.end_write();
  const MessagePtr *writing = q.begin_write();  // frame 0, now on the wire
  ASSERT_NE(writing, nullptr);
  const MessagePtr kept = *writing;
  auto d = q.expire(at_frame(30));
  EXPECT_EQ(d.dropped, 3u);  // frames 1..3
  ASSERT_FALSE(q.empty());
  EXPECT_EQ(q.front(), kept);
}

TEST(QueueTime, ExpireOnADeltaStreamResumesOnAKeyframe) {
  ClientQueue q = make_queue();
  auto caps = make_caps("video/x-h264");
  q.offer(frame(0, false, caps), at_frame(0));
  for (int i = 1; i < 6; ++i) q.offer(frame(i, true, caps), at_frame(i));
  // At frame 14 (462 ms) everything queued is stale: the chain is broken.
  auto d = q.expire(at_frame(14));
  EXPECT_EQ(d.dropped, 6u);
  EXPECT_EQ(d.outcome, Outcome::kDroppedOverflow);  // the session asks for a keyframe
  EXPECT_TRUE(q.waiting_for_keyframe());
  EXPECT_EQ(q.offer(frame(14, true, caps), at_frame(14)).outcome, Outcome::kDroppedForKeyframe);
  EXPECT_EQ(q.offer(frame(15, false, caps), at_frame(15)).outcome, Outcome::kQueued);
}

TEST(QueueTime, ExpireKeepsAQueuedKeyframeAndWhatFollowsIt) {
  ClientQueue q = make_queue();
  auto caps = make_caps("video/x-h264");
  q.offer(frame(0, false, caps), at_frame(0));
  q.offer(frame(1, true, caps), at_frame(1));
  q.offer(frame(6, false, caps), at_frame(6));  // a new GOP, 198 ms after frame 0
  q.offer(frame(7, true, caps), at_frame(7));
  auto d = q.expire(at_frame(10));  // 330 ms: frames 0 and 1 stale, 6 and 7 not
  EXPECT_EQ(d.dropped, 2u);
  EXPECT_EQ(d.outcome, Outcome::kQueued);
  EXPECT_FALSE(q.waiting_for_keyframe());
  auto written = buffers_of(write_all(q));
  ASSERT_EQ(written.size(), 2u);
  EXPECT_FALSE(written[0]->delta);
}

}  // namespace
}  // namespace tlsframe
