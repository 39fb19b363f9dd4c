// Core server tests (fixture: server_fixture.h). sync-method latest-keyframe:
// a joiner gets the caps, then the cached GOP from the latest keyframe on at
// once, then the live stream, and no keyframe is asked for it; over
// gop-cache-bytes-max, after new caps or with no keyframe yet, it waits for
// the next keyframe as at next-keyframe (and asks for one).
#include "core/server_fixture.h"

namespace tlsframe {
namespace {

constexpr size_t kBufferWire = wire::kHeaderSize + wire::kBufferMetaSize + 256;  // publish()'s

class GopCacheTest : public ServerReceiverTest {
 protected:
  ServerConfig latest_keyframe_config() const {
    ServerConfig c = server_config();
    c.sync_method = SyncMethod::kLatestKeyframe;
    return c;
  }
};

TEST_F(GopCacheTest, JoinerGetsTheCachedGopKeyframeFirstThenLiveAndAsksForNoKeyframe) {
  auto server = start_server(latest_keyframe_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);
  publish(*server, 2, 0);  // the latest keyframe
  publish(*server, 3, wire::kFlagDeltaUnit);
  publish(*server, 4, wire::kFlagDeltaUnit);

  uint64_t id = 0;
  auto r = connect_receiver(*server, &id);
  ASSERT_TRUE(r);
  EXPECT_TRUE(next_caps(*r, kCaps));
  EXPECT_TRUE(next_buffer(*r, 2)) << "the cached GOP starts on the latest keyframe";
  EXPECT_TRUE(next_buffer(*r, 3));
  EXPECT_TRUE(next_buffer(*r, 4));
  publish(*server, 5, wire::kFlagDeltaUnit);
  EXPECT_TRUE(next_buffer(*r, 5)) << "live buffers follow the cached GOP, none lost or repeated";
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 0) << "the cache served the joiner";
  auto cs = server->client_stats(id);
  ASSERT_TRUE(cs);
  EXPECT_EQ(cs->frames_dropped, 0u);
}

// A GOP ten times buffers-max (a 10 s GOP at 30 fps is 300 buffers > 32): the
// burst is queued on top of the limit, so the joiner skips nothing.
TEST_F(GopCacheTest, AGopLongerThanBuffersMaxReachesTheJoinerWhole) {
  ServerConfig cfg = latest_keyframe_config();
  cfg.queue_max_buffers = 8;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  constexpr uint64_t kGop = 80;
  publish(*server, 0, 0);
  for (uint64_t i = 1; i < kGop; ++i) publish(*server, i, wire::kFlagDeltaUnit);

  uint64_t id = 0;
  auto r = connect_receiver(*server, &id);
  ASSERT_TRUE(r);
  EXPECT_TRUE(next_caps(*r, kCaps));
  for (uint64_t i = 0; i < kGop; ++i) ASSERT_TRUE(next_buffer(*r, i)) << "cached buffer " << i;
  publish(*server, kGop, wire::kFlagDeltaUnit);
  EXPECT_TRUE(next_buffer(*r, kGop));
  auto cs = server->client_stats(id);
  ASSERT_TRUE(cs);
  EXPECT_EQ(cs->frames_dropped, 0u) << "the cached burst counted as an overflow";
  EXPECT_EQ(events_.snapshot().keyframe_wanted, 0);
}

TEST_F(GopCacheTest, OverTheBoundTheJoinerWaitsForTheNextKeyframeAndAsksForIt) {
  ServerConfig cfg = latest_keyframe_config();
  cfg.gop_cache_bytes_max = 2 * kBufferWire + kBufferWire / 2;  // a keyframe and one delta fit
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);
  publish(*server, 2, wire::kFlagDeltaUnit);  // over the bound: the cache is dropped

  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return l.keyframe_wanted >= 1; }))
      << "with no GOP cached the joiner falls back to next-keyframe and asks for one";
  publish(*server, 3, wire::kFlagDeltaUnit);
  publish(*server, 4, 0);
  publish(*server, 5, wire::kFlagDeltaUnit);
  EXPECT_TRUE(next_caps(*r, kCaps));
  EXPECT_TRUE(next_buffer(*r, 4)) << "starts on the next keyframe";
  EXPECT_TRUE(next_buffer(*r, 5));

  // That keyframe started a new cache: the next joiner is served from it.
  const int asked = events_.snapshot().keyframe_wanted;
  auto r2 = connect_receiver(*server);
  ASSERT_TRUE(r2);
  EXPECT_TRUE(next_caps(*r2, kCaps));
  EXPECT_TRUE(next_buffer(*r2, 4));
  EXPECT_TRUE(next_buffer(*r2, 5));
  EXPECT_EQ(events_.snapshot().keyframe_wanted, asked);
}

TEST_F(GopCacheTest, NewCapsResetTheCache) {
  auto server = start_server(latest_keyframe_config());
  ASSERT_TRUE(server);
  const std::string caps1 = "video/x-h264, width=(int)640";
  const std::string caps2 = "video/x-h264, width=(int)1280";
  server->publish_caps(caps1);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);
  server->publish_caps(caps2);

  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return l.keyframe_wanted >= 1; }))
      << "the GOP of the old caps must not be served under the new ones";
  publish(*server, 2, 0);
  publish(*server, 3, wire::kFlagDeltaUnit);
  EXPECT_TRUE(next_caps(*r, caps2));
  EXPECT_TRUE(next_buffer(*r, 2));
  EXPECT_TRUE(next_buffer(*r, 3));

  auto r2 = connect_receiver(*server);
  ASSERT_TRUE(r2);
  EXPECT_TRUE(next_caps(*r2, caps2));
  EXPECT_TRUE(next_buffer(*r2, 2)) << "the GOP under the new caps is cached again";
  EXPECT_TRUE(next_buffer(*r2, 3));
}

TEST_F(GopCacheTest, AfterEosTheJoinerGetsEosNotTheCache) {
  auto server = start_server(latest_keyframe_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);
  server->publish_eos_and_flush(std::chrono::milliseconds(0));
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  EXPECT_TRUE(next_caps(*r, kCaps));
  Received m;
  ASSERT_TRUE(next_of_type(*r, MessageType::kEos, m)) << "EOS, with no cached buffer before it";
}

TEST_F(GopCacheTest, NextKeyframeKeepsNoCache) {
  auto server = start_server(server_config());  // the default: next-keyframe
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return l.keyframe_wanted >= 1; }));
  publish(*server, 2, 0);
  EXPECT_TRUE(next_caps(*r, kCaps));
  EXPECT_TRUE(next_buffer(*r, 2));
}

}  // namespace
}  // namespace tlsframe
