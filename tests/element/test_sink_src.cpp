// tlsframesink -> tlsframesrc over real TLS on loopback: fan-out to many
// clients with caps, timestamps and flags intact; caps changes; a stalled
// client does not slow the others.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "core/wire_format.h"
#include "element/gst_util.h"

using namespace std::chrono_literals;
using tlsframe::test::Pipeline;

namespace {

class SinkSrcTest : public ::testing::Test {
 protected:
  void SetUp() override { tlsframe::test::init_gstreamer(); }

  // appsrc-fed server: the test decides exactly which buffers flow and when.
  std::unique_ptr<Pipeline> start_appsrc_server(const std::string &sink_props = "sync=false") {
    auto p = std::make_unique<Pipeline>(
        "appsrc name=src format=time ! tlsframesink name=sink host=127.0.0.1 port=0 cert-file=" +
        pki_.server_cert() + " key-file=" + pki_.server_key() + " " + sink_props);
    // Async (no preroll until the first buffer); the sink listens from PAUSED.
    gst_element_set_state(p->get(), GST_STATE_PLAYING);
    return p;
  }

  std::unique_ptr<Pipeline> start_client(int port,
                                         const std::string &tail = "appsink name=out sync=false") {
    auto p = std::make_unique<Pipeline>(
        "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) +
        " ca-file=" + pki_.ca() + " ! " + tail);
    // Live source: the appsink prerolls only on data, so do not wait for ASYNC_DONE here.
    EXPECT_NE(gst_element_set_state(p->get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    return p;
  }

  // Real JPEG frames from jpegenc, with their caps.
  std::vector<GstSample *> make_jpeg_frames(int count, int width, int height) {
    Pipeline enc("videotestsrc pattern=smpte num-buffers=" + std::to_string(count) +
                 " ! video/x-raw,width=" + std::to_string(width) +
                 ",height=" + std::to_string(height) +
                 ",framerate=30/1 ! jpegenc ! appsink name=out sync=false");
    EXPECT_NE(enc.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
    auto frames = tlsframe::test::pull_samples(enc.element("out"), count, 20s);
    EXPECT_EQ(frames.size(), static_cast<size_t>(count));
    return frames;
  }

  static void push(GstElement *appsrc, GstBuffer *buffer) {
    ASSERT_EQ(gst_app_src_push_buffer(GST_APP_SRC(appsrc), buffer), GST_FLOW_OK);
  }

  tlsframe::test::Pki pki_;
};

TEST_F(SinkSrcTest, JpegReachesEightClientsInOrderWithCapsTimestampsAndFlags) {
  constexpr int kFrames = 30;
  constexpr int kClients = 8;
  auto frames = make_jpeg_frames(kFrames, 320, 240);
  ASSERT_EQ(frames.size(), static_cast<size_t>(kFrames));
  GstCaps *caps = gst_sample_get_caps(frames[0]);

  auto server = start_appsrc_server();
  GstElement *sink = server->element("sink");
  GstElement *appsrc = server->element("src");
  int port = tlsframe::test::current_port(sink);
  ASSERT_GT(port, 0);
  gst_app_src_set_caps(GST_APP_SRC(appsrc), caps);

  std::vector<std::unique_ptr<Pipeline>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(start_client(port));
  ASSERT_TRUE(tlsframe::test::wait_num_clients(
      sink, [](guint n) { return n == kClients; }, 10s))
      << "clients connected: " << tlsframe::test::num_clients(sink);

  for (int i = 0; i < kFrames; ++i) {
    GstBuffer *b = gst_buffer_copy(gst_sample_get_buffer(frames[i]));
    GST_BUFFER_PTS(b) = GST_SECOND + i * (GST_SECOND / 30);
    GST_BUFFER_DTS(b) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION(b) = GST_SECOND / 30;
    GST_BUFFER_FLAG_UNSET(b, GST_BUFFER_FLAG_DELTA_UNIT);
    GST_BUFFER_FLAG_UNSET(b, GST_BUFFER_FLAG_MARKER);  // jpegenc marks every frame
    if (i % 3 == 1) GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_MARKER);
    push(appsrc, b);
  }
  ASSERT_EQ(gst_app_src_end_of_stream(GST_APP_SRC(appsrc)), GST_FLOW_OK);

  for (int c = 0; c < kClients; ++c) {
    SCOPED_TRACE("client " + std::to_string(c));
    auto got = tlsframe::test::pull_samples(clients[c]->element("out"), kFrames + 1, 20s);
    ASSERT_EQ(got.size(), static_cast<size_t>(kFrames));
    GstClockTime first_pts = GST_BUFFER_PTS(gst_sample_get_buffer(got[0]));
    ASSERT_TRUE(GST_CLOCK_TIME_IS_VALID(first_pts));
    for (int i = 0; i < kFrames; ++i) {
      GstBuffer *in = gst_sample_get_buffer(frames[i]);
      GstBuffer *out = gst_sample_get_buffer(got[i]);
      EXPECT_TRUE(gst_caps_is_equal(gst_sample_get_caps(got[i]), caps)) << "frame " << i;
      // Timestamps are re-based onto the client's clock; spacing and durations are kept.
      EXPECT_EQ(GST_BUFFER_PTS(out) - first_pts, static_cast<GstClockTime>(i * (GST_SECOND / 30)))
          << "frame " << i;
      EXPECT_EQ(GST_BUFFER_DURATION(out), GST_SECOND / 30);
      EXPECT_EQ(GST_BUFFER_FLAG_IS_SET(out, GST_BUFFER_FLAG_MARKER), i % 3 == 1) << "frame " << i;
      EXPECT_FALSE(GST_BUFFER_FLAG_IS_SET(out, GST_BUFFER_FLAG_DELTA_UNIT));
      EXPECT_EQ(GST_BUFFER_FLAG_IS_SET(out, GST_BUFFER_FLAG_DISCONT), i == 0);
      EXPECT_EQ(gst_buffer_get_size(out), gst_buffer_get_size(in));
      EXPECT_EQ(gst_buffer_memcmp(
                    out, 0,
                    [&] {
                      static thread_local std::vector<uint8_t> bytes;
                      bytes.resize(gst_buffer_get_size(in));
                      gst_buffer_extract(in, 0, bytes.data(), bytes.size());
                      return bytes.data();
                    }(),
                    gst_buffer_get_size(in)),
                0)
          << "frame " << i << " payload differs";
    }
    tlsframe::test::unref_samples(got);
    GstMessage *eos = clients[c]->wait_message(GST_MESSAGE_EOS, 10s);
    ASSERT_NE(eos, nullptr) << "client did not get EOS";
    gst_message_unref(eos);
  }
  GstMessage *eos = server->wait_message(GST_MESSAGE_EOS, 10s);
  ASSERT_NE(eos, nullptr) << "server did not post EOS";
  gst_message_unref(eos);
  EXPECT_TRUE(server->problems().empty()) << server->problems()[0];
  tlsframe::test::unref_samples(frames);
}

TEST_F(SinkSrcTest, CapsChangeReachesConnectedClientsAndLateJoinersGetCurrentCaps) {
  auto small = make_jpeg_frames(3, 160, 120);
  auto large = make_jpeg_frames(6, 320, 240);
  ASSERT_EQ(small.size(), 3u);
  ASSERT_EQ(large.size(), 6u);
  GstCaps *caps_a = gst_sample_get_caps(small[0]);
  GstCaps *caps_b = gst_sample_get_caps(large[0]);

  auto server = start_appsrc_server();
  GstElement *sink = server->element("sink");
  GstElement *appsrc = server->element("src");
  int port = tlsframe::test::current_port(sink);
  auto early = start_client(port);
  ASSERT_TRUE(tlsframe::test::wait_num_clients(
      sink, [](guint n) { return n == 1; }, 10s));

  auto push_all = [&](std::vector<GstSample *> &frames, size_t from, size_t to) {
    for (size_t i = from; i < to; ++i)
      push(appsrc, gst_buffer_ref(gst_sample_get_buffer(frames[i])));
  };
  gst_app_src_set_caps(GST_APP_SRC(appsrc), caps_a);
  push_all(small, 0, 3);
  gst_app_src_set_caps(GST_APP_SRC(appsrc), caps_b);
  push_all(large, 0, 3);
  // The early client has seen caps B before the late one joins.
  auto early_got = tlsframe::test::pull_samples(early->element("out"), 6, 10s);
  ASSERT_EQ(early_got.size(), 6u);

  auto late = start_client(port);
  ASSERT_TRUE(tlsframe::test::wait_num_clients(
      sink, [](guint n) { return n == 2; }, 10s));
  push_all(large, 3, 6);
  gst_app_src_end_of_stream(GST_APP_SRC(appsrc));

  auto early_rest = tlsframe::test::pull_samples(early->element("out"), 10, 10s);
  auto late_got = tlsframe::test::pull_samples(late->element("out"), 10, 10s);
  ASSERT_EQ(early_rest.size(), 3u);
  ASSERT_EQ(late_got.size(), 3u);
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(gst_caps_is_equal(gst_sample_get_caps(early_got[i]), i < 3 ? caps_a : caps_b))
        << "early client frame " << i;
  }
  for (auto *s : early_rest) EXPECT_TRUE(gst_caps_is_equal(gst_sample_get_caps(s), caps_b));
  for (auto *s : late_got) EXPECT_TRUE(gst_caps_is_equal(gst_sample_get_caps(s), caps_b));
  for (auto *v : {&small, &large, &early_got, &early_rest, &late_got})
    tlsframe::test::unref_samples(*v);
}

TEST_F(SinkSrcTest, DeltaUnitFlagsDecodeTimestampsAndSendTimeSurvive) {
  auto server = start_appsrc_server();
  GstElement *sink = server->element("sink");
  GstElement *appsrc = server->element("src");
  GstCaps *caps = gst_caps_from_string("video/x-h264,stream-format=byte-stream,alignment=au");
  gst_app_src_set_caps(GST_APP_SRC(appsrc), caps);
  auto client = start_client(tlsframe::test::current_port(sink));
  ASSERT_TRUE(tlsframe::test::wait_num_clients(
      sink, [](guint n) { return n == 1; }, 10s));

  struct In {
    guint flags;
    GstClockTime pts, dts;
  };
  const std::vector<In> in = {
      {0, 200, 100},
      {GST_BUFFER_FLAG_DELTA_UNIT, 400, 133},
      {GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_MARKER, 300, 166},
      {GST_BUFFER_FLAG_HEADER, 500, 200},
      {GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_DROPPABLE, 600, 233},
  };
  const GstClockTime before_send = static_cast<GstClockTime>(g_get_real_time()) * GST_USECOND;
  for (size_t i = 0; i < in.size(); ++i) {
    GstBuffer *b = gst_buffer_new_allocate(nullptr, 100 + i, nullptr);
    gst_buffer_memset(b, 0, static_cast<guint8>(i), 100 + i);
    GST_BUFFER_PTS(b) = in[i].pts * GST_MSECOND;
    GST_BUFFER_DTS(b) = in[i].dts * GST_MSECOND;
    GST_BUFFER_DURATION(b) = 33 * GST_MSECOND;
    GST_BUFFER_FLAGS(b) = in[i].flags;
    push(appsrc, b);
  }
  gst_app_src_end_of_stream(GST_APP_SRC(appsrc));
  auto got = tlsframe::test::pull_samples(client->element("out"), 10, 10s);
  const GstClockTime after_receive = static_cast<GstClockTime>(g_get_real_time()) * GST_USECOND;
  ASSERT_EQ(got.size(), in.size());
  GstBuffer *first = gst_sample_get_buffer(got[0]);
  GstCaps *unix_time = gst_caps_new_empty_simple("timestamp/x-unix");
  const guint kChecked = GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_MARKER |
                         GST_BUFFER_FLAG_HEADER | GST_BUFFER_FLAG_DROPPABLE;
  for (size_t i = 0; i < in.size(); ++i) {
    GstBuffer *b = gst_sample_get_buffer(got[i]);
    EXPECT_EQ(GST_BUFFER_FLAGS(b) & kChecked, in[i].flags) << "buffer " << i;
    // One offset for PTS and DTS: their relation (reordering) is preserved.
    EXPECT_EQ(GST_BUFFER_PTS(b) - GST_BUFFER_PTS(first), (in[i].pts - in[0].pts) * GST_MSECOND);
    EXPECT_EQ(GST_BUFFER_DTS(b) - GST_BUFFER_DTS(first), (in[i].dts - in[0].dts) * GST_MSECOND);
    EXPECT_EQ(gst_buffer_get_size(b), 100 + i);
    // The server's send time rides along as a Unix-time reference timestamp.
    GstReferenceTimestampMeta *sent = gst_buffer_get_reference_timestamp_meta(b, unix_time);
    ASSERT_NE(sent, nullptr) << "buffer " << i;
    EXPECT_GE(sent->timestamp, before_send) << "buffer " << i;
    EXPECT_LE(sent->timestamp, after_receive) << "buffer " << i;
  }
  gst_caps_unref(unix_time);
  EXPECT_EQ(GST_BUFFER_PTS(first) - GST_BUFFER_DTS(first), (in[0].pts - in[0].dts) * GST_MSECOND);
  tlsframe::test::unref_samples(got);
  gst_caps_unref(caps);
}

TEST_F(SinkSrcTest, StalledClientDoesNotSlowOthersAndItsQueueStaysBounded) {
  constexpr int kFrames = 120;  // 2 s at 60 fps, paced by the sink's clock sync
  constexpr guint kBuffersMax = 8;
  constexpr gsize kFrameSize = 100 * 1024;
  auto server = start_appsrc_server("sync=true buffers-max=8 bytes-max=2000000");
  GstElement *sink = server->element("sink");
  GstElement *appsrc = server->element("src");
  GstCaps *caps = gst_caps_from_string("image/jpeg,width=1280,height=720,framerate=60/1");
  gst_app_src_set_caps(GST_APP_SRC(appsrc), caps);
  gst_caps_unref(caps);
  int port = tlsframe::test::current_port(sink);

  // Handshakes, then never reads; a tiny receive buffer makes the server's writes stall at once.
  tlsframe::test::RawTlsClient stalled;
  ASSERT_TRUE(stalled.connect(port, pki_.ca(), 0, 4096)) << stalled.error();
  auto healthy = start_client(port);
  ASSERT_TRUE(tlsframe::test::wait_num_clients(
      sink, [](guint n) { return n == 2; }, 10s));

  guint64 max_queue_bytes = 0, max_queue_buffers = 0;
  for (int i = 0; i < kFrames; ++i) {
    GstBuffer *b = gst_buffer_new_allocate(nullptr, kFrameSize, nullptr);
    gst_buffer_memset(b, 0, static_cast<guint8>(i), kFrameSize);
    GST_BUFFER_PTS(b) = i * (GST_SECOND / 60);
    GST_BUFFER_DURATION(b) = GST_SECOND / 60;
    push(appsrc, b);
  }
  gst_app_src_end_of_stream(GST_APP_SRC(appsrc));

  // The healthy client gets every frame while the stalled one sits on a full socket.
  auto got = tlsframe::test::pull_samples(healthy->element("out"), kFrames + 1, 20s);
  EXPECT_EQ(got.size(), static_cast<size_t>(kFrames));
  for (size_t i = 0; i < got.size(); ++i) {
    guint8 first_byte = 0;
    gst_buffer_extract(gst_sample_get_buffer(got[i]), 0, &first_byte, 1);
    EXPECT_EQ(first_byte, static_cast<guint8>(i)) << "frame " << i;
  }
  tlsframe::test::unref_samples(got);

  GstStructure *stats = nullptr;
  g_object_get(sink, "stats", &stats, nullptr);
  ASSERT_NE(stats, nullptr);
  const GValue *clients = gst_structure_get_value(stats, "client-stats");
  ASSERT_NE(clients, nullptr);
  guint64 stalled_dropped = 0;
  for (guint i = 0; i < gst_value_array_get_size(clients); ++i) {
    const GstStructure *c = gst_value_get_structure(gst_value_array_get_value(clients, i));
    guint64 qb = 0, qn = 0, dropped = 0;
    gst_structure_get_uint64(c, "queue-bytes", &qb);
    gst_structure_get_uint64(c, "queue-buffers", &qn);
    gst_structure_get_uint64(c, "frames-dropped", &dropped);
    max_queue_bytes = std::max(max_queue_bytes, qb);
    max_queue_buffers = std::max(max_queue_buffers, qn);
    stalled_dropped = std::max(stalled_dropped, dropped);
  }
  gst_structure_free(stats);
  EXPECT_LE(max_queue_buffers, kBuffersMax);
  EXPECT_LE(max_queue_bytes, 2000000u);
  EXPECT_GT(stalled_dropped, 0u) << "the stalled client should have skipped frames";
  EXPECT_EQ(tlsframe::test::sink_stat(sink, "buffers-published"), static_cast<guint64>(kFrames));
}

}  // namespace

// The sink re-serializes caps (gst_caps_to_string adds "(type)" annotations),
// which can nest deeper than what it was given. It applies the wire
// decoder's own caps checks before sending, so a relay never forwards caps its
// clients refuse (issue 14, item 7): an array nested kMaxCapsNesting deep is
// accepted by a tlsframesrc, but serializes one level deeper.
TEST_F(SinkSrcTest, SinkRefusesCapsItsClientsWouldRejectWithAClearError) {
  auto server = start_appsrc_server();
  int port = tlsframe::test::current_port(server->element("sink"));
  ASSERT_GT(port, 0);
  const int n = tlsframe::wire::kMaxCapsNesting;
  std::string deep = "application/x-test, a=" + std::string(n, '<') + "1" + std::string(n, '>');
  GstCaps *caps = gst_caps_from_string(deep.c_str());
  ASSERT_NE(caps, nullptr);
  GstElement *appsrc = server->element("src");
  g_object_set(appsrc, "caps", caps, nullptr);
  gst_caps_unref(caps);
  GstBuffer *buf = gst_buffer_new_allocate(nullptr, 16, nullptr);
  GST_BUFFER_PTS(buf) = 0;
  gst_app_src_push_buffer(GST_APP_SRC(appsrc), buf);
  GstMessage *msg = server->wait_message(GST_MESSAGE_ERROR, 5s);
  ASSERT_NE(msg, nullptr) << "the sink accepted caps its clients would reject";
  GError *err = nullptr;
  gchar *dbg = nullptr;
  gst_message_parse_error(msg, &err, &dbg);
  EXPECT_EQ(std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(msg))), "sink");
  std::string text = err ? err->message : "";
  EXPECT_NE(text.find("nests deeper than " + std::to_string(n)), std::string::npos) << text;
  g_clear_error(&err);
  g_free(dbg);
  gst_message_unref(msg);
}
