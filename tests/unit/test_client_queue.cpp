// Unit tests for the per-client queue policy (core/client_queue.h): overflow,
// keyframe gating, caps resends. No socket, no TLS, no clock: each test
// offers messages and checks the decision and what the writer would send.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/client_queue.h"
#include "unit/messages.h"

namespace tlsframe {
namespace {

using Outcome = ClientQueue::Outcome;
using test::make_buffer;
using test::make_caps;
using test::write_all;

MessagePtr make_control(wire::MessageType type) {
  auto m = std::make_shared<Message>();
  m->type = type;
  m->bytes = type == wire::MessageType::kEos
                 ? wire::encode_eos()
                 : wire::encode_error(wire::ErrorCode::kShuttingDown, "bye");
  return m;
}

TEST(ClientQueue, FirstKeyframeBringsItsCapsAndDeltasBeforeItAreDropped) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  auto caps = make_caps("video/x-h264");
  auto d = q.offer(make_buffer(true, caps));
  EXPECT_EQ(d.outcome, Outcome::kDroppedForKeyframe);
  EXPECT_EQ(d.dropped, 1u);
  EXPECT_TRUE(d.ask_keyframe) << "the first skipped delta asks for a keyframe";
  d = q.offer(make_buffer(true, caps));
  EXPECT_EQ(d.outcome, Outcome::kDroppedForKeyframe);
  EXPECT_FALSE(d.ask_keyframe) << "asked once per join";
  auto key = make_buffer(false, caps);
  d = q.offer(key);
  EXPECT_EQ(d.outcome, Outcome::kQueued);
  EXPECT_EQ(d.dropped, 0u);
  auto sent = write_all(q);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0], caps);
  EXPECT_EQ(sent[1], key);
  EXPECT_FALSE(q.waiting_for_keyframe());
}

TEST(ClientQueue, KeyframeAskedAtJoinIsNotAskedAgainAtTheFirstSkippedDelta) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  q.keyframe_asked();
  EXPECT_FALSE(q.offer(make_buffer(true, nullptr)).ask_keyframe);
}

TEST(ClientQueue, DeltaThatDoesNotFitIsDroppedAndTheQueueWaitsForAKeyframe) {
  ClientQueue q(QueueLimits{3, 1 << 20});
  auto caps = make_caps("video/x-h264");
  q.offer(make_buffer(false, caps));  // caps + keyframe: 2 messages
  q.offer(make_buffer(true, caps));   // 3
  auto d = q.offer(make_buffer(true, caps));
  EXPECT_EQ(d.outcome, Outcome::kDroppedOverflow);
  EXPECT_EQ(d.dropped, 1u);
  EXPECT_TRUE(q.waiting_for_keyframe());
  EXPECT_EQ(q.offer(make_buffer(true, caps)).outcome, Outcome::kDroppedForKeyframe)
      << "deltas after an overflow wait for the next keyframe even when they would fit";
  EXPECT_EQ(q.size(), 3u);
}

TEST(ClientQueue, KeyframeThatDoesNotFitPurgesTheUnsentQueueButNotTheWriteInProgress) {
  ClientQueue q(QueueLimits{4, 1 << 20});
  auto caps = make_caps("video/x-h264");
  q.offer(make_buffer(false, caps));
  q.offer(make_buffer(true, caps));
  q.offer(make_buffer(true, caps));  // caps, key, delta, delta
  const MessagePtr *writing = q.begin_write();
  ASSERT_NE(writing, nullptr);
  EXPECT_EQ(*writing, caps);
  auto key = make_buffer(false, caps);
  auto d = q.offer(key);
  EXPECT_EQ(d.outcome, Outcome::kQueuedAfterPurge);
  EXPECT_EQ(d.purged, 3u);
  EXPECT_EQ(d.dropped, 3u) << "the three unsent buffers";
  EXPECT_EQ(q.size(), 2u) << "the caps being written, then the keyframe (its caps not resent)";
  q.end_write();
  auto rest = write_all(q);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0], key);
}

TEST(ClientQueue, ByteLimitCountsWireBytes) {
  ClientQueue q(QueueLimits{100, 1000});
  auto d = q.offer(make_buffer(false, nullptr, 600));
  EXPECT_EQ(d.outcome, Outcome::kQueued);
  d = q.offer(make_buffer(true, nullptr, 401));
  EXPECT_EQ(d.outcome, Outcome::kDroppedOverflow);
  EXPECT_EQ(q.bytes(), 600u);
  d = q.offer(make_buffer(false, nullptr, 400));
  EXPECT_EQ(d.outcome, Outcome::kQueued) << "600 + 400 is exactly the limit";
  EXPECT_EQ(q.bytes(), 1000u);
}

TEST(ClientQueue, CapsGoOnlyToAnIdleClientAndNeverTwice) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  auto caps = make_caps("a");
  EXPECT_EQ(q.offer(caps).outcome, Outcome::kQueued);
  EXPECT_EQ(q.offer(caps).outcome, Outcome::kIgnored);
  auto caps2 = make_caps("b");
  EXPECT_EQ(q.offer(caps2).outcome, Outcome::kIgnored) << "busy: the next buffer brings them";
  auto key = make_buffer(false, caps2);
  q.offer(key);
  auto sent = write_all(q);
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0], caps);
  EXPECT_EQ(sent[1], caps2);
  EXPECT_EQ(sent[2], key);
  EXPECT_EQ(q.offer(make_buffer(false, caps2)).outcome, Outcome::kQueued);
  EXPECT_EQ(q.size(), 1u) << "caps already sent are not resent";
}

TEST(ClientQueue, AfterAPurgeOfUnsentCapsTheNextKeyframeResendsThem) {
  ClientQueue q(QueueLimits{2, 1 << 20});
  auto caps = make_caps("a");
  q.offer(caps);
  write_all(q);  // caps sent
  auto caps2 = make_caps("b");
  q.offer(make_buffer(false, caps2));  // caps2 + key, nothing written
  auto key = make_buffer(false, caps2);
  auto d = q.offer(key);  // over: purges caps2 and the first key
  EXPECT_EQ(d.outcome, Outcome::kQueuedAfterPurge);
  EXPECT_EQ(d.dropped, 1u) << "caps are not counted as dropped buffers";
  auto sent = write_all(q);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0], caps2) << "the purged caps were never sent: they go again";
  EXPECT_EQ(sent[1], key);
}

TEST(ClientQueue, ResyncMakesTheNextDeltaWaitForAKeyframe) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  q.offer(make_buffer(false, nullptr));
  EXPECT_EQ(q.offer(make_buffer(true, nullptr)).outcome, Outcome::kQueued);
  q.resync();
  EXPECT_EQ(q.offer(make_buffer(true, nullptr)).outcome, Outcome::kDroppedForKeyframe);
  EXPECT_EQ(q.offer(make_buffer(false, nullptr)).outcome, Outcome::kQueued);
}

TEST(ClientQueue, FinalMessageReplacesTheUnsentQueueAfterTheWriteInProgress) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  auto first = make_buffer(false, nullptr);
  q.offer(first);
  q.offer(make_buffer(true, nullptr));
  q.offer(make_buffer(true, nullptr));
  q.begin_write();
  auto bye = make_control(wire::MessageType::kError);
  EXPECT_EQ(q.push_final(bye), 2u);
  EXPECT_EQ(q.end_write(), first);
  auto rest = write_all(q);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0], bye);
}

TEST(ClientQueue, EosIsQueuedAfterTheBuffers) {
  ClientQueue q(QueueLimits{1, 1 << 20});
  q.offer(make_buffer(false, nullptr));
  auto eos = make_control(wire::MessageType::kEos);
  EXPECT_EQ(q.offer(eos).outcome, Outcome::kQueued) << "the buffer limit counts buffers' room only";
  auto sent = write_all(q);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[1], eos);
}

TEST(ClientQueue, OneWriteAtATimeAndClearEndsIt) {
  ClientQueue q(QueueLimits{8, 1 << 20});
  EXPECT_EQ(q.begin_write(), nullptr);
  q.offer(make_buffer(false, nullptr, 10));
  q.offer(make_buffer(true, nullptr, 10));
  EXPECT_NE(q.begin_write(), nullptr);
  EXPECT_TRUE(q.writing());
  EXPECT_EQ(q.begin_write(), nullptr) << "a write is already in progress";
  q.clear();
  EXPECT_FALSE(q.writing());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST(ClientQueue, ZeroLimitsAreRaisedToOne) {
  ClientQueue q(QueueLimits{0, 0});
  auto d = q.offer(make_buffer(false, nullptr, 1));
  EXPECT_EQ(d.outcome, Outcome::kQueued);
  d = q.offer(make_buffer(false, nullptr, 1));
  EXPECT_EQ(d.outcome, Outcome::kQueuedAfterPurge);
  EXPECT_EQ(d.dropped, 1u);
}

TEST(ClientQueue, ARenditionSwitchDropsTheUnsentStreamButNotTheWriteInProgressOrControlMessages) {
  ClientQueue q(QueueLimits{32, 1 << 20});
  auto high = make_caps("video/x-h264, width=(int)1280");
  auto low = make_caps("video/x-h264, width=(int)640");
  q.offer(make_buffer(false, high, 1000));  // its caps, then the keyframe
  q.offer(make_buffer(true, high, 1000));
  q.offer(make_buffer(true, high, 1000));
  auto list = std::make_shared<Message>();
  list->type = wire::MessageType::kStreamList;
  list->bytes.resize(10);
  q.offer(list);
  const MessagePtr *writing = q.begin_write();
  ASSERT_NE(writing, nullptr);
  EXPECT_EQ(*writing, high);
  EXPECT_EQ(q.drop_unsent_stream(), 3u) << "the high keyframe and its two deltas";
  EXPECT_EQ(q.bytes(), high->wire_size() + list->wire_size());
  EXPECT_TRUE(q.waiting_for_keyframe());
  // The low rendition resumes on its keyframe, caps first.
  EXPECT_EQ(q.offer(make_buffer(true, low, 500)).outcome, Outcome::kDroppedForKeyframe);
  auto key = make_buffer(false, low, 500);
  EXPECT_EQ(q.offer(key).outcome, Outcome::kQueued);
  EXPECT_EQ(q.end_write(), high);
  auto rest = write_all(q);
  ASSERT_EQ(rest.size(), 3u);
  EXPECT_EQ(rest[0], list);
  EXPECT_EQ(rest[1], low);
  EXPECT_EQ(rest[2], key);
}

}  // namespace
}  // namespace tlsframe
