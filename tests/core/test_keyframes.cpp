// Core server tests (fixture: server_fixture.h). Keyframe gating and caps: joiners of a delta-unit
// stream start on a keyframe and ask for one (merged, rate-limited); caps reach joiners and
// connected clients first.
#include "core/server_fixture.h"

namespace tlsframe {
namespace {

// ===========================================================================
// Keyframe gating and caps.

TEST_F(ServerReceiverTest, JoinerOfDeltaStreamSkipsDeltasUntilKeyframeAndAsksForKeyframe) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, wire::kFlagDeltaUnit);  // the stream has delta units; nobody listens yet
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 0);

  uint64_t id = 0;
  auto r = connect_receiver(*server, &id);
  ASSERT_TRUE(r);
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return l.keyframe_wanted >= 1; }))
      << "keyframe_wanted did not fire when a client joined a delta-unit stream";

  publish(*server, 1, wire::kFlagDeltaUnit);
  publish(*server, 2, wire::kFlagDeltaUnit);
  publish(*server, 3, 0);
  publish(*server, 4, wire::kFlagDeltaUnit);
  publish(*server, 5, wire::kFlagDeltaUnit);

  EXPECT_TRUE(next_caps(*r, kCaps));
  Received m;
  ASSERT_TRUE(next_of_type(*r, MessageType::kBuffer, m));
  EXPECT_EQ(index_of(m.meta), 3u) << "first buffer must be the keyframe";
  EXPECT_FALSE(is_delta(m));
  EXPECT_TRUE(data_is(m, 3, 256));
  EXPECT_TRUE(next_buffer(*r, 4));
  EXPECT_TRUE(next_buffer(*r, 5));

  auto cs = server->client_stats(id);
  ASSERT_TRUE(cs.has_value());
  // Counted when each delta was skipped, on the strand, before the keyframe was queued.
  EXPECT_EQ(cs->frames_dropped, 2u) << "the two deltas before the keyframe";
  // Counted when a write completes, which may be after the receiver has the bytes.
  EXPECT_TRUE(poll_until([&] {
    cs = server->client_stats(id);
    return cs && cs->frames_sent == 3u;
  })) << "frames_sent "
      << (cs ? cs->frames_sent : 0u);
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 1);
}

TEST_F(ServerReceiverTest, KeyframeWantedDoesNotFireForStreamWithoutDeltaUnits) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  publish(*server, 0, 0);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  publish(*server, 1, 0);
  // Delivered after the join handling (same strand), which is where keyframe_wanted fires.
  ASSERT_TRUE(next_buffer(*r, 1));
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 0);
}

// Regression: a client that joined between a new stream's first keyframe and
// its first delta unit was not asked a keyframe for (the stream had no delta
// yet) and waited a whole GOP. It now asks at its first skipped delta, once.
TEST_F(ServerReceiverTest, JoinerBeforeTheFirstDeltaUnitAsksForAKeyframeAtItsFirstSkippedDelta) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);  // the first keyframe; no delta unit seen yet
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 0) << "nothing to ask for at join";
  publish(*server, 1, wire::kFlagDeltaUnit);
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return l.keyframe_wanted >= 1; }))
      << "no keyframe asked for a joiner that skips delta units";
  publish(*server, 2, wire::kFlagDeltaUnit);
  publish(*server, 3, 0);
  publish(*server, 4, wire::kFlagDeltaUnit);
  EXPECT_TRUE(next_caps(*r, kCaps));
  EXPECT_TRUE(next_buffer(*r, 3));
  EXPECT_TRUE(next_buffer(*r, 4));
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 1) << "asked more than once";
}

// Issue 14, item 4: clients that connect and close at once must not turn the
// stream into keyframes. Requests are merged and rate-limited (at most one per
// interval; one inside the interval is deferred to its end, not dropped), and
// a deferred request is sent only if a client that asked is still connected.
// A genuine joiner still gets its request within the interval.
TEST_F(ServerReceiverTest, ConnectAndCloseFloodAsksForAtMostOneKeyframePerInterval) {
  ServerConfig cfg = server_config();
  const Clock::duration interval = cfg.keyframe_request_interval;  // the default: 1 s
  ASSERT_GT(interval.count(), 0);
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);  // a delta-unit stream: joiners ask for a keyframe
  constexpr size_t kFlood = 40;
  const auto t0 = Clock::now();
  for (size_t i = 0; i < kFlood; ++i) {
    auto c = connect_raw(server->port());
    ASSERT_TRUE(c);
    const size_t n = i + 1;
    ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.added.size() == n; }));
  }  // each closes as it goes out of scope
  ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.removed.size() == kFlood; }));
  const auto flood_time = Clock::now() - t0;
  // Past the end of the interval in which the flood came, plus margin.
  const size_t intervals = static_cast<size_t>(flood_time / interval) + 1;
  events_.wait([](const EventLog &) { return false; }, interval + 300ms);  // bounded quiet period
  EventLog l = events_.snapshot();
  EXPECT_LE(static_cast<size_t>(l.keyframe_wanted), intervals)
      << kFlood << " connect-and-close clients in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(flood_time).count() << " ms";
  EXPECT_GE(l.keyframe_wanted, 1);
  for (size_t i = 1; i < l.keyframe_times.size(); ++i) {
    EXPECT_GE(l.keyframe_times[i] - l.keyframe_times[i - 1], interval - 50ms)
        << "two keyframe requests within one interval";
  }
  // A genuine joiner: asked for within the interval (plus scheduling slack).
  const int before = l.keyframe_wanted;
  const auto joined = Clock::now();
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  ASSERT_TRUE(
      events_.wait([&](const EventLog &e) { return e.keyframe_wanted > before; }, interval + 500ms))
      << "the genuine joiner's keyframe request was lost";
  EXPECT_LT(events_.snapshot().keyframe_times.back() - joined, interval + 300ms);
}

TEST_F(ServerReceiverTest, CapsPublishedAfterConnectArriveBeforeTheNextBuffer) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  const std::string caps1 = "video/x-h264, width=(int)640";
  const std::string caps2 = "video/x-h264, width=(int)1280";
  server->publish_caps(caps1);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);
  server->publish_caps(caps2);
  publish(*server, 2, 0);

  EXPECT_TRUE(next_caps(*r, caps1));
  EXPECT_TRUE(next_buffer(*r, 0));
  EXPECT_TRUE(next_buffer(*r, 1));
  EXPECT_TRUE(next_caps(*r, caps2)) << "new caps must come before the next buffer, exactly once";
  EXPECT_TRUE(next_buffer(*r, 2));
}

TEST_F(ServerReceiverTest, LateJoinerGetsLatestCapsFirst) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto early = connect_receiver(*server);
  ASSERT_TRUE(early);
  const std::string caps1 = "video/x-h264, width=(int)640";
  const std::string caps2 = "video/x-h264, width=(int)1280";
  server->publish_caps(caps1);
  publish(*server, 0, 0);
  server->publish_caps(caps2);
  publish(*server, 1, 0);
  EXPECT_TRUE(next_caps(*early, caps1));
  EXPECT_TRUE(next_buffer(*early, 0));
  EXPECT_TRUE(next_caps(*early, caps2));
  EXPECT_TRUE(next_buffer(*early, 1));

  auto late = connect_receiver(*server);
  ASSERT_TRUE(late);
  publish(*server, 2, 0);
  EXPECT_TRUE(next_caps(*late, caps2)) << "a joiner gets the caps in force, not older ones";
  EXPECT_TRUE(next_buffer(*late, 2));
  EXPECT_TRUE(next_buffer(*early, 2)) << "the early receiver gets no repeated caps";
}

}  // namespace
}  // namespace tlsframe
