// tlsframesrc against a server that is not a tlsframesink: a raw TLS server
// (tests/common/raw_tls) that sends what the sink never would. Timestamps
// near 2^63 are clamped, not wrapped; a message announced but never sent
// costs little memory and is given up at the default read timeout.
#include <gst/app/gstappsink.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "core/receiver.h"
#include "core/wire_format.h"
#include "element/gst_util.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = std::chrono::milliseconds(5000);  // generous bound for any one condition

std::vector<uint8_t> buffer_message(uint64_t pts, uint32_t flags, size_t size) {
  wire::BufferMeta meta;
  meta.pts = pts;
  meta.flags = flags;
  std::vector<uint8_t> data(size, 0x5a);
  return wire::encode_buffer(meta, data.data(), data.size());
}

class HostileServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    init_gstreamer();
    // The raw server writes to a client that may have given up: a failed write, not a
    // process killed by SIGPIPE, so a failing test reports its assertion.
    signal(SIGPIPE, SIG_IGN);
    server_ = std::make_unique<RawTlsServer>(pki_.server_cert(), pki_.server_key());
    ASSERT_TRUE(server_->ok()) << server_->error();
  }
  void TearDown() override {
    if (peer_.joinable()) peer_.join();
  }

  std::string client_desc(const std::string &extra = "") {
    return "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(server_->port()) +
           " ca-file=\"" + pki_.ca() + "\" " + extra + " ! appsink name=out sync=false";
  }

  // Runs the raw server on its own thread: accept, send each message, then
  // keep the connection open until the client closes it (bounded).
  void serve(std::vector<std::vector<uint8_t>> messages, Clock::duration hold) {
    peer_ = std::thread([this, messages = std::move(messages), hold] {
      if (!server_->accept(Clock::now() + kWait)) return;
      for (const auto &m : messages) {
        if (!server_->send(m)) return;
      }
      server_->wait_client_closed(Clock::now() + hold);
      server_->close_client();
    });
  }

  Pki pki_;
  std::unique_ptr<RawTlsServer> server_;
  std::thread peer_;
};

// A server near the top of the timestamp range: the src's re-basing adds a
// positive offset (its running time at the first buffer) and must clamp, not
// wrap to a negative value and then to 0 (issue 14, item 13).
TEST_F(HostileServerTest, TimestampsNearTwoToThe63AreClampedAndStayMonotonic) {
  const uint64_t kMaxSigned = static_cast<uint64_t>(INT64_MAX);
  const std::vector<uint64_t> pts = {0, kMaxSigned - 1, kMaxSigned, kMaxSigned + 1000,
                                     UINT64_MAX - 1};
  std::vector<std::vector<uint8_t>> msgs = {wire::encode_caps("application/x-test")};
  for (uint64_t p : pts) msgs.push_back(buffer_message(p, 0, 8));
  serve(msgs, kWait);
  Pipeline client(client_desc());
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto samples = pull_samples(client.element("out"), pts.size(), kWait);
  ASSERT_EQ(samples.size(), pts.size()) << pending_errors(client);
  GstClockTime previous = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    SCOPED_TRACE("buffer " + std::to_string(i));
    GstClockTime t = GST_BUFFER_PTS(gst_sample_get_buffer(samples[i]));
    ASSERT_TRUE(GST_CLOCK_TIME_IS_VALID(t));
    EXPECT_GE(t, previous) << "timestamps went backwards (wrapped)";
    EXPECT_LE(t, kMaxSigned) << "a running time must fit a GstClockTimeDiff";
    previous = t;
  }
  unref_samples(samples);
}

// VmRSS of this process in bytes (0 if unreadable).
size_t rss_bytes() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long pages = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &pages, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// A BUFFER header announcing 64 MiB, then 100 bytes, then silence: the src
// holds memory for what arrived, not for what was announced, and gives up at
// its default read timeout with an element error (issue 14, item 6).
TEST_F(HostileServerTest, AnnouncedButUnsentMessageCostsLittleMemoryAndTimesOutByDefault) {
  constexpr uint32_t kAnnounced = 64u * 1024u * 1024u - wire::kBufferMetaSize;
  std::vector<uint8_t> prefix(wire::kHeaderSize + wire::kBufferMetaSize + 100, 0);
  wire::BufferMeta meta;
  meta.pts = 0;
  wire::write_buffer_prefix(prefix.data(), meta, kAnnounced);
  serve({wire::encode_caps("application/x-test"), prefix}, 60s);
  Pipeline client(client_desc());
  ASSERT_TRUE(client.ok());
  const size_t rss_before = rss_bytes();  // with the plugin and its libraries loaded
  GstElement *src = client.element("src");
  guint timeout_s = 0;
  g_object_get(src, "timeout", &timeout_s, nullptr);
  const auto expected = std::chrono::seconds(ReceiverConfig{}.read_timeout.count() / 1000000000);
  EXPECT_EQ(std::chrono::seconds(timeout_s), expected) << "src default must come from the core";
  ASSERT_GT(timeout_s, 0u) << "no default read timeout";
  const auto t0 = Clock::now();
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstMessage *msg = client.wait_message(GST_MESSAGE_ERROR, std::chrono::seconds(timeout_s) + kWait);
  const auto waited = Clock::now() - t0;
  const size_t rss_after = rss_bytes();
  ASSERT_NE(msg, nullptr) << "the stalled read never timed out";
  GError *err = nullptr;
  gst_message_parse_error(msg, &err, nullptr);
  std::string text = err ? err->message : "";
  EXPECT_NE(text.find("no data"), std::string::npos) << text;
  g_clear_error(&err);
  gst_message_unref(msg);
  EXPECT_GE(waited, std::chrono::seconds(timeout_s) - 500ms);
  // Before the fix the src allocated (and zeroed) all 64 MiB at the header.
  EXPECT_LT(rss_after, rss_before + (16u << 20))
      << "RSS grew by " << ((rss_after - rss_before) >> 20) << " MiB";
}

// A 64 KiB BUFFER trickled in 2 KiB pieces every 100 ms takes over 3 s, three
// times the src's timeout of 1 s, but data never stops for longer than 100 ms:
// the read timeout means "no data at all", so the buffer arrives and nothing
// fails. Before, one read had to fill a whole chunk within the timeout, so a
// link slower than chunk/timeout failed in the middle of a frame.
TEST_F(HostileServerTest, SlowButSteadyDataIsNotATimeout) {
  static constexpr size_t kPiece = 2048, kPieces = 32;
  std::vector<uint8_t> message = buffer_message(0, 0, kPiece * kPieces);
  peer_ = std::thread([this, message] {
    if (!server_->accept(Clock::now() + kWait)) return;
    if (!server_->send(wire::encode_caps("application/x-test"))) return;
    // Pacing is the behaviour under test (a slow link), not a wait for a condition.
    for (size_t off = 0; off < message.size(); off += kPiece) {
      if (!server_->send(message.data() + off, std::min(kPiece, message.size() - off))) return;
      std::this_thread::sleep_for(100ms);
    }
    server_->wait_client_closed(Clock::now() + kWait);
    server_->close_client();
  });
  Pipeline client(client_desc("timeout=1"));
  ASSERT_TRUE(client.ok());
  const auto t0 = Clock::now();
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto samples = pull_samples(client.element("out"), 1, kWait);
  const auto took = Clock::now() - t0;
  ASSERT_EQ(samples.size(), 1u) << pending_errors(client);
  EXPECT_EQ(gst_buffer_get_size(gst_sample_get_buffer(samples[0])), kPiece * kPieces);
  EXPECT_GE(took, 2s) << "the trickle should have taken longer than the timeout";
  unref_samples(samples);
}

}  // namespace
}  // namespace tlsframe::test
