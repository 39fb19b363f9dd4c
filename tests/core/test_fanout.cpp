// Core server tests (fixture: server_fixture.h). Fan-out: every receiver gets caps, all buffers in
// order with their metadata and data, then EOS; EOS and stop as receivers see them.
#include "core/server_fixture.h"

namespace tlsframe {
namespace {

// ===========================================================================
// Fan-out: caps, buffers, metadata, EOS.

// Publishes a mixed stream to three receivers and checks each got all of it.
void run_fan_out(Server &server, std::vector<std::unique_ptr<Receiver>> &rx, Events &events) {
  struct Sent {
    wire::BufferMeta meta;
    std::vector<uint8_t> data;
  };
  constexpr int kBuffers = 60;
  std::vector<Sent> sent;
  for (int i = 0; i < kBuffers; ++i) {
    uint32_t flags = 0;
    if (i == 0) flags = wire::kFlagHeader | wire::kFlagDiscont;
    if (i % 10 != 0) flags |= wire::kFlagDeltaUnit;
    if (i % 3 == 1) flags |= wire::kFlagMarker;
    if (i % 7 == 6) flags |= wire::kFlagDroppable;
    if (i == 13) flags |= wire::kFlagGap | wire::kFlagCorrupted;
    wire::BufferMeta meta = meta_for(static_cast<uint64_t>(i), flags);
    if (i % 4 == 3) meta.dts = wire::kNoTime;
    if (i == 5) meta.pts = wire::kNoTime;
    if (i == 7) meta.duration = wire::kNoTime;
    const size_t size = i == 1 ? 0 : (i == 2 ? 70000 : 100 + 37 * static_cast<size_t>(i));
    sent.push_back({meta, pattern(static_cast<uint64_t>(i), size)});
  }

  std::vector<std::future<ReadLog>> readers;
  const auto deadline = Clock::now() + kWait;
  for (auto &r : rx) {
    Receiver *p = r.get();
    readers.push_back(std::async(
        std::launch::async, [p, deadline] { return read_until_end(*p, deadline, kBuffers + 10); }));
  }

  server.publish_caps(kCaps);
  for (const Sent &s : sent) server.publish_buffer(s.meta, s.data.data(), s.data.size());
  EXPECT_TRUE(server.publish_eos_and_flush(std::chrono::milliseconds(3000)))
      << "EOS was not flushed to every client";

  for (size_t r = 0; r < readers.size(); ++r) {
    SCOPED_TRACE("receiver " + std::to_string(r));
    ReadLog log = readers[r].get();
    ASSERT_EQ(log.messages.size(), static_cast<size_t>(kBuffers + 2))
        << "stopped with " << describe(log.last_status, log.error);
    ASSERT_EQ(log.messages.front().type, MessageType::kCaps);
    EXPECT_EQ(log.messages.front().caps, kCaps);
    const uint64_t first_seq = log.messages[1].meta.sequence;
    for (int i = 0; i < kBuffers; ++i) {
      const Received &m = log.messages[static_cast<size_t>(i) + 1];
      SCOPED_TRACE("buffer " + std::to_string(i));
      ASSERT_EQ(m.type, MessageType::kBuffer);
      EXPECT_EQ(m.meta.pts, sent[i].meta.pts);
      EXPECT_EQ(m.meta.dts, sent[i].meta.dts);
      EXPECT_EQ(m.meta.duration, sent[i].meta.duration);
      EXPECT_EQ(m.meta.flags, sent[i].meta.flags);
      EXPECT_EQ(m.meta.sequence, first_seq + static_cast<uint64_t>(i));
      EXPECT_NE(m.meta.send_time_ns, 0u);
      EXPECT_TRUE(data_is(m, static_cast<uint64_t>(i), sent[i].data.size()));
    }
    EXPECT_EQ(log.messages.back().type, MessageType::kEos);
  }

  ASSERT_TRUE(events.wait([&](const EventLog &l) { return l.removed.size() == rx.size(); }))
      << "client_removed did not fire for every client after EOS";
  for (const auto &r : events.snapshot().removed) EXPECT_EQ(r.reason, RemoveReason::kEos);
  ServerStats st = server.stats();
  EXPECT_EQ(st.buffers_published, static_cast<uint64_t>(kBuffers));
  EXPECT_EQ(st.clients_total, rx.size());
  EXPECT_EQ(st.frames_dropped, 0u);
  EXPECT_EQ(st.clients, 0u);
  EXPECT_GT(st.bytes_sent, 3u * 70000u);
}

TEST_F(ServerReceiverTest, EveryReceiverGetsCapsThenAllBuffersInOrderWithMetaAndDataThenEos) {
  ServerConfig cfg = server_config();
  cfg.queue_max_buffers = 1000;  // no overflow: this test is about delivery, not dropping
  cfg.queue_max_bytes = 64ull << 20;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Receiver>> rx;
  for (int i = 0; i < 3; ++i) {
    rx.push_back(connect_receiver(*server));
    ASSERT_TRUE(rx.back());
  }
  EXPECT_EQ(server->num_clients(), 3u);
  EXPECT_EQ(server->client_stats().size(), 3u);
  run_fan_out(*server, rx, events_);
}

TEST_F(ServerReceiverTest, FanOutIsCompleteAndOrderedWithSeveralIoThreads) {
  ServerConfig cfg = server_config();
  cfg.io_threads = 4;
  cfg.queue_max_buffers = 1000;
  cfg.queue_max_bytes = 64ull << 20;
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Receiver>> rx;
  for (int i = 0; i < 3; ++i) {
    rx.push_back(connect_receiver(*server));
    ASSERT_TRUE(rx.back());
  }
  run_fan_out(*server, rx, events_);
}

TEST_F(ServerReceiverTest, ReceiverJoiningAfterEosGetsCapsThenEos) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  EXPECT_TRUE(server->publish_eos_and_flush(std::chrono::milliseconds(1000)));  // nobody to flush
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  EXPECT_TRUE(next_caps(*r, kCaps));
  Received m;
  EXPECT_TRUE(next_of_type(*r, MessageType::kEos, m));
}

// Regression: after an EOS or ERROR message the receiver closed its socket but
// left is_connected set.
TEST_F(ServerReceiverTest, ReceiverReportsNotConnectedAfterEos) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  // The server may report the client before the client's own handshake
  // handler ran (TLS 1.3), so look once a first message has arrived.
  server->publish_caps("image/jpeg");
  Received first;
  ASSERT_TRUE(next_of_type(*r, MessageType::kCaps, first));
  EXPECT_TRUE(r->connected());
  EXPECT_EQ(r->peer_address(), "127.0.0.1:" + std::to_string(server->port()));
  EXPECT_NE(r->peer_subject().find("localhost"), std::string::npos) << r->peer_subject();
  EXPECT_TRUE(server->publish_eos_and_flush(std::chrono::milliseconds(3000)));
  Received m;
  ASSERT_TRUE(next_of_type(*r, MessageType::kEos, m));
  // receiver.h: connected() = "handshake completed and not yet closed"; the
  // receiver closed its socket when the EOS message arrived.
  EXPECT_FALSE(r->connected()) << "connected() still true after EOS closed the connection";
}

// Regression: stop() posted close_socket() and called io.stop() at once, so
// the connection stayed open until the Receiver was destroyed.
TEST_F(ServerReceiverTest, ReceiverStopIsReportedAsClientClosed) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  uint64_t id = 0;
  auto r = connect_receiver(*server, &id);
  ASSERT_TRUE(r);
  r->stop();
  r->stop();  // idempotent
  // The Receiver object stays alive: stop() itself must close the connection.
  ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.removal_of(id) != nullptr; }, 2s))
      << "the server never saw the connection close after Receiver::stop()";
  EXPECT_EQ(events_.snapshot().removal_of(id)->reason, RemoveReason::kClosed);
  EXPECT_EQ(server->num_clients(), 0u);
  EXPECT_FALSE(server->client_stats(id).has_value());
}

}  // namespace
}  // namespace tlsframe
