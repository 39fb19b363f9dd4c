// tlsframesrc reconnect: with reconnect=true a lost server is reported on
// the bus and retried with backoff; the stream resumes with DISCONT. With
// reconnect=false a lost server is an element error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "element/gst_util.h"

using namespace std::chrono_literals;
using tlsframe::test::Pipeline;

namespace {

// Records every element message name a wait pops, in order.
struct MessageLog {
  std::vector<std::string> names;
  // Pops messages until one named `name` (returned, caller frees) or the timeout.
  GstStructure *wait(Pipeline &p, const char *name, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return nullptr;
      GstMessage *m = p.wait_message(GST_MESSAGE_ELEMENT, left);
      if (!m) return nullptr;
      const GstStructure *s = gst_message_get_structure(m);
      GstStructure *copy = nullptr;
      if (s) {
        names.push_back(gst_structure_get_name(s));
        if (gst_structure_has_name(s, name)) copy = gst_structure_copy(s);
      }
      gst_message_unref(m);
      if (copy) return copy;
    }
  }
};

class ReconnectTest : public ::testing::Test {
 protected:
  void SetUp() override { tlsframe::test::init_gstreamer(); }

  std::unique_ptr<Pipeline> start_server(int port) {
    auto p = std::make_unique<Pipeline>(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 "
        "! "
        "jpegenc ! tlsframesink name=sink host=127.0.0.1 port=" +
        std::to_string(port) + " cert-file=" + pki_.server_cert() +
        " key-file=" + pki_.server_key());
    EXPECT_NE(p->set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    return p;
  }

  std::unique_ptr<Pipeline> start_client(int port, bool reconnect) {
    auto p = std::make_unique<Pipeline>(
        "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) +
        " ca-file=" + pki_.ca() + (reconnect ? " reconnect=true max-reconnect-interval=200" : "") +
        " ! appsink name=out sync=false");
    EXPECT_NE(gst_element_set_state(p->get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    return p;
  }

  // Waits for an element message with this structure name; returns its structure copy.
  static GstStructure *wait_element_message(Pipeline &p, const char *name,
                                            std::chrono::milliseconds timeout);

  tlsframe::test::Pki pki_;
};

GstStructure *ReconnectTest::wait_element_message(Pipeline &p, const char *name,
                                                  std::chrono::milliseconds timeout) {
  MessageLog log;
  return log.wait(p, name, timeout);
}

TEST_F(ReconnectTest, ServerRestartIsReportedAndStreamResumesWithDiscont) {
  auto server = start_server(0);
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  auto client = start_client(port, true);
  GstStructure *connected = wait_element_message(*client, "tlsframesrc-connected", 10s);
  ASSERT_NE(connected, nullptr);
  gst_structure_free(connected);
  auto before = tlsframe::test::pull_samples(client->element("out"), 5, 10s);
  ASSERT_EQ(before.size(), 5u);
  tlsframe::test::unref_samples(before);

  server.reset();  // the server goes away (NULL): the client's connection drops
  GstStructure *lost = wait_element_message(*client, "tlsframesrc-disconnected", 10s);
  ASSERT_NE(lost, nullptr) << "no tlsframesrc-disconnected message";
  EXPECT_NE(gst_structure_get_string(lost, "reason"), nullptr);
  gst_structure_free(lost);

  server = start_server(port);  // same port again
  GstStructure *again = wait_element_message(*client, "tlsframesrc-connected", 10s);
  ASSERT_NE(again, nullptr) << "client did not reconnect";
  guint64 reconnects = 0;
  gst_structure_get_uint64(again, "reconnects", &reconnects);
  EXPECT_GE(reconnects, 1u);
  gst_structure_free(again);

  // Drain what was queued before the drop, then the first buffer of the new
  // connection carries DISCONT.
  bool saw_discont = false;
  for (int i = 0; i < 60 && !saw_discont; ++i) {
    auto s = tlsframe::test::pull_samples(client->element("out"), 1, 5s);
    ASSERT_EQ(s.size(), 1u) << "stream did not resume";
    saw_discont = GST_BUFFER_FLAG_IS_SET(gst_sample_get_buffer(s[0]), GST_BUFFER_FLAG_DISCONT);
    tlsframe::test::unref_samples(s);
  }
  EXPECT_TRUE(saw_discont);
  EXPECT_TRUE(client->problems().empty()) << client->problems()[0];
}

// H.264 with a 10 s GOP, so only a keyframe forced for the returning client
// lets it start within seconds. Three restarts on the same port: each gives
// one disconnected and one connected message, the first buffer afterwards is
// a keyframe with DISCONT, and nothing on the bus is an error or warning.
TEST_F(ReconnectTest, EachServerRestartResumesWithinSecondsOnAKeyframeWithDiscont) {
  constexpr int kRestarts = 3;
  auto h264_server = [&](int port) {
    auto p = std::make_unique<Pipeline>(
        "videotestsrc is-live=true pattern=ball ! video/x-raw,width=160,height=120,framerate=30/1 "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=300 ! "
        "video/x-h264,stream-format=byte-stream,alignment=au ! "
        "tlsframesink name=sink host=127.0.0.1 port=" +
        std::to_string(port) + " cert-file=" + pki_.server_cert() +
        " key-file=" + pki_.server_key());
    EXPECT_NE(p->set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    return p;
  };
  auto server = h264_server(0);
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  auto client = start_client(port, true);
  MessageLog log;
  GstStructure *first = log.wait(*client, "tlsframesrc-connected", 10s);
  ASSERT_NE(first, nullptr);
  gst_structure_free(first);
  auto warmup = tlsframe::test::pull_samples(client->element("out"), 5, 10s);
  ASSERT_EQ(warmup.size(), 5u);
  EXPECT_FALSE(
      GST_BUFFER_FLAG_IS_SET(gst_sample_get_buffer(warmup[0]), GST_BUFFER_FLAG_DELTA_UNIT));
  tlsframe::test::unref_samples(warmup);

  for (int k = 1; k <= kRestarts; ++k) {
    SCOPED_TRACE("restart " + std::to_string(k));
    server.reset();
    GstStructure *lost = log.wait(*client, "tlsframesrc-disconnected", 10s);
    ASSERT_NE(lost, nullptr);
    gst_structure_free(lost);

    if (k == kRestarts) {
      // The last restart after an outage of 1 s (the input here, not a synchronisation):
      // the client keeps retrying with backoff, one disconnected message per failed try.
      std::this_thread::sleep_for(1s);
    }
    auto t0 = std::chrono::steady_clock::now();
    server = h264_server(port);
    ASSERT_EQ(tlsframe::test::current_port(server->element("sink")), port);
    GstStructure *again = log.wait(*client, "tlsframesrc-connected", 10s);
    ASSERT_NE(again, nullptr) << "client did not reconnect";
    guint64 reconnects = 0;
    gst_structure_get_uint64(again, "reconnects", &reconnects);
    // Counts attempts: exactly k after immediate restarts, more after the outage.
    if (k < kRestarts) {
      EXPECT_EQ(reconnects, static_cast<guint64>(k));
    } else {
      EXPECT_GT(reconnects, static_cast<guint64>(k));
    }
    gst_structure_free(again);
    auto t_connected = std::chrono::steady_clock::now();

    // Drain what was queued before the drop; the first new buffer has DISCONT.
    GstBuffer *resumed = nullptr;
    for (int i = 0; i < 300 && !resumed; ++i) {
      auto s = tlsframe::test::pull_samples(client->element("out"), 1, 5s);
      ASSERT_EQ(s.size(), 1u) << "stream did not resume";
      GstBuffer *b = gst_sample_get_buffer(s[0]);
      if (GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DISCONT)) resumed = gst_buffer_ref(b);
      tlsframe::test::unref_samples(s);
    }
    ASSERT_NE(resumed, nullptr) << "no DISCONT buffer after the reconnect";
    auto t_first = std::chrono::steady_clock::now();
    EXPECT_FALSE(GST_BUFFER_FLAG_IS_SET(resumed, GST_BUFFER_FLAG_DELTA_UNIT))
        << "resumed on a delta unit";
    gst_buffer_unref(resumed);
    auto ms = [](auto d) {
      return static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
    };
    std::printf("restart %d: reconnected %lld ms, first keyframe %lld ms after the server was up\n",
                k, ms(t_connected - t0), ms(t_first - t0));
    EXPECT_LT(t_first - t0, 3s) << "did not resume within a few seconds";
  }
  // connected, then per restart: disconnected (more than one only after the outage), connected.
  std::string seq;
  for (const auto &n : log.names) seq += n == "tlsframesrc-connected" ? 'C' : 'D';
  EXPECT_EQ(seq.substr(0, 5), "CDCDC") << seq;
  EXPECT_GE(seq.size(), 7u) << seq;
  EXPECT_EQ(seq.back(), 'C') << seq;
  EXPECT_EQ(std::count(seq.begin(), seq.end(), 'C'), 1 + kRestarts) << seq;
  EXPECT_TRUE(client->problems().empty()) << client->problems()[0];
  EXPECT_EQ(tlsframe::test::pending_errors(*client), "");
}

TEST_F(ReconnectTest, WithoutReconnectALostServerIsAnElementError) {
  auto server = start_server(0);
  auto client = start_client(tlsframe::test::current_port(server->element("sink")), false);
  auto got = tlsframe::test::pull_samples(client->element("out"), 3, 10s);
  ASSERT_EQ(got.size(), 3u);
  tlsframe::test::unref_samples(got);
  server.reset();  // stopped without EOS: the client is told the server is shutting down
  std::string error = client->wait_error(10s);
  EXPECT_NE(error.find("shutting down"), std::string::npos) << error;
}

}  // namespace
