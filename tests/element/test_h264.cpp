// H.264 with a 10 s GOP: a client joining mid-GOP starts on a keyframe that
// the sink asked the encoder for, and avdec_h264 decodes it without complaint.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "common/pki.h"
#include "common/raw_tls.h"
#include "element/gst_util.h"

using namespace std::chrono_literals;
using tlsframe::test::Pipeline;

namespace {

struct FirstBuffer {
  tlsframe::test::Waiter waiter;
  std::atomic<bool> seen{false};
  std::atomic<bool> was_delta{false};
  std::atomic<guint64> count{0};
};

GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *fb = static_cast<FirstBuffer *>(data);
  GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
  if (!fb->seen.exchange(true))
    fb->was_delta = GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
  fb->count++;
  fb->waiter.notify();
  return GST_PAD_PROBE_OK;
}

gulong probe_src_pad(GstElement *element, FirstBuffer *fb) {
  GstPad *pad = gst_element_get_static_pad(element, "src");
  gulong id = gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, fb, nullptr);
  gst_object_unref(pad);
  return id;
}

// A live 30 fps H.264 server with key-int-max=300: without a forced keyframe
// the next one is 10 s away. `format` is the stream-format; `before_sink` is
// spliced in front of the sink (e.g. "identity name=gate ! ").
std::string h264_server_desc(const tlsframe::test::Pki &pki, int width, int height,
                             const char *format, const char *before_sink = "") {
  return "videotestsrc is-live=true pattern=ball ! video/x-raw,width=" + std::to_string(width) +
         ",height=" + std::to_string(height) +
         ",framerate=30/1 ! "
         "x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=300 ! "
         "video/x-h264,stream-format=" +
         format + ",alignment=au ! " + before_sink +
         "tlsframesink name=sink host=127.0.0.1 port=0 cert-file=" + pki.server_cert() +
         " key-file=" + pki.server_key();
}

TEST(H264, LateJoinerStartsOnKeyframeAndDecodesWithinOneSecondOnTenSecondGop) {
  tlsframe::test::init_gstreamer();
  tlsframe::test::Pki pki;
  Pipeline server(h264_server_desc(pki, 320, 240, "byte-stream"));
  ASSERT_TRUE(server.ok());
  FirstBuffer encoded;
  probe_src_pad(server.element("enc"), &encoded);
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstElement *sink = server.element("sink");
  int port = tlsframe::test::current_port(sink);
  ASSERT_GT(port, 0);
  // Join well into the GOP: after 20 frames (the first keyframe was frame 0).
  ASSERT_TRUE(encoded.waiter.wait_for([&] { return encoded.count >= 20; }, 10s));
  EXPECT_FALSE(encoded.was_delta) << "the encoder's first frame should be a keyframe";

  Pipeline client("tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) + " ca-file=" +
                  pki.ca() + " ! h264parse ! avdec_h264 name=dec ! appsink name=out sync=false");
  ASSERT_TRUE(client.ok());
  FirstBuffer received;
  probe_src_pad(client.element("src"), &received);
  auto joined = std::chrono::steady_clock::now();
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);

  auto decoded = tlsframe::test::pull_samples(client.element("out"), 1, 5s);
  auto first_frame_after = std::chrono::steady_clock::now() - joined;
  ASSERT_EQ(decoded.size(), 1u) << "no decoded frame";
  EXPECT_LT(first_frame_after, 1s)
      << "first decoded frame took "
      << std::chrono::duration_cast<std::chrono::milliseconds>(first_frame_after).count() << " ms";
  ASSERT_TRUE(received.seen);
  EXPECT_FALSE(received.was_delta) << "the client's first buffer must be a keyframe";
  EXPECT_GE(tlsframe::test::sink_stat(sink, "buffers-published"), 20u);
  GstStructure *stats = nullptr;
  g_object_get(sink, "stats", &stats, nullptr);
  guint requests = 0;
  gst_structure_get_uint(stats, "keyframe-requests", &requests);
  gst_structure_free(stats);
  EXPECT_GE(requests, 1u) << "the sink should have asked upstream for a keyframe";

  // Keep decoding for a while: every buffer decodes, nothing is reported on the bus.
  auto more = tlsframe::test::pull_samples(client.element("out"), 15, 5s);
  EXPECT_EQ(more.size(), 15u);
  GstMessage *problem = client.wait_message(GST_MESSAGE_ERROR, 0ms);
  EXPECT_EQ(problem, nullptr);
  if (problem) gst_message_unref(problem);
  EXPECT_TRUE(client.problems().empty()) << client.problems()[0];
  tlsframe::test::unref_samples(decoded);
  tlsframe::test::unref_samples(more);
}

TEST(H264, JoinerWithoutForcedKeyframeWaitsInsteadOfGettingDeltaUnits) {
  // Same stream, but the encoder ignores force-key-unit (a probe drops the
  // upstream event): the joiner must get nothing rather than broken frames.
  tlsframe::test::init_gstreamer();
  tlsframe::test::Pki pki;
  Pipeline server(h264_server_desc(pki, 160, 120, "byte-stream", "identity name=gate ! "));
  ASSERT_TRUE(server.ok());
  GstPad *gate_src = gst_element_get_static_pad(server.element("gate"), "src");
  std::atomic<int> dropped_requests{0};
  gst_pad_add_probe(
      gate_src, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM,
      [](GstPad *, GstPadProbeInfo *info, gpointer data) -> GstPadProbeReturn {
        GstEvent *e = GST_PAD_PROBE_INFO_EVENT(info);
        if (GST_EVENT_TYPE(e) == GST_EVENT_CUSTOM_UPSTREAM &&
            gst_structure_has_name(gst_event_get_structure(e), "GstForceKeyUnit")) {
          (*static_cast<std::atomic<int> *>(data))++;
          return GST_PAD_PROBE_DROP;
        }
        return GST_PAD_PROBE_OK;
      },
      &dropped_requests, nullptr);
  gst_object_unref(gate_src);
  FirstBuffer encoded;
  probe_src_pad(server.element("enc"), &encoded);
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstElement *sink = server.element("sink");
  ASSERT_TRUE(encoded.waiter.wait_for([&] { return encoded.count >= 10; }, 10s));

  Pipeline client("tlsframesrc name=src host=127.0.0.1 port=" +
                  std::to_string(tlsframe::test::current_port(sink)) + " ca-file=" + pki.ca() +
                  " ! appsink name=out sync=false");
  FirstBuffer received;
  probe_src_pad(client.element("src"), &received);
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  ASSERT_TRUE(tlsframe::test::wait_num_clients(
      sink, [](guint n) { return n == 1; }, 10s));
  // Let 20 more delta frames flow past the connected client.
  guint64 target = encoded.count + 20;
  ASSERT_TRUE(encoded.waiter.wait_for([&] { return encoded.count >= target; }, 10s));
  EXPECT_FALSE(received.seen) << "a delta unit reached a client that had no keyframe";
  EXPECT_GE(dropped_requests.load(), 1) << "the sink should have asked for a keyframe";
  // The sink counts a drop when the client's I/O strand handles the buffer, a
  // little after the encoder made it: wait (bounded) for the count to catch up.
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (tlsframe::test::sink_stat(sink, "frames-dropped") < 20u &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GE(tlsframe::test::sink_stat(sink, "frames-dropped"), 20u);
}

TEST(H264, AvcCodecDataInCapsReachesALateJoinerWhichDecodes) {
  // stream-format=avc keeps SPS/PPS out of the buffers, in the caps'
  // codec_data: a joiner can only decode if the caps reached it intact.
  tlsframe::test::init_gstreamer();
  tlsframe::test::Pki pki;
  Pipeline server(h264_server_desc(pki, 160, 120, "avc"));
  ASSERT_TRUE(server.ok());
  FirstBuffer encoded;
  probe_src_pad(server.element("enc"), &encoded);
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstElement *sink = server.element("sink");
  ASSERT_TRUE(encoded.waiter.wait_for([&] { return encoded.count >= 10; }, 10s));

  Pipeline client("tlsframesrc name=src host=127.0.0.1 port=" +
                  std::to_string(tlsframe::test::current_port(sink)) + " ca-file=" + pki.ca() +
                  " ! avdec_h264 ! appsink name=out sync=false");
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto decoded = tlsframe::test::pull_samples(client.element("out"), 5, 5s);
  ASSERT_EQ(decoded.size(), 5u) << "the joiner could not decode the avc stream";

  GstPad *src_pad = gst_element_get_static_pad(client.element("src"), "src");
  GstCaps *caps = gst_pad_get_current_caps(src_pad);
  gst_object_unref(src_pad);
  ASSERT_NE(caps, nullptr);
  const GstStructure *st = gst_caps_get_structure(caps, 0);
  EXPECT_STREQ(gst_structure_get_string(st, "stream-format"), "avc");
  const GValue *codec_data = gst_structure_get_value(st, "codec_data");
  ASSERT_NE(codec_data, nullptr) << "codec_data missing from the client's caps";
  EXPECT_GT(gst_buffer_get_size(gst_value_get_buffer(codec_data)), 4u);
  gst_caps_unref(caps);
  EXPECT_TRUE(client.problems().empty()) << client.problems()[0];
  tlsframe::test::unref_samples(decoded);
}

}  // namespace

// Issue 14, item 4: clients that connect and close at once cannot turn the
// stream into keyframes. The sink asks upstream at most once per
// keyframe-request-interval, and not at all for joiners already gone; the
// encoder's keyframes are counted on its src pad.
TEST(H264, ConnectAndCloseFloodForcesAtMostOneKeyframePerInterval) {
  tlsframe::test::init_gstreamer();
  tlsframe::test::Pki pki;
  Pipeline server(h264_server_desc(pki, 160, 120, "byte-stream"));
  ASSERT_TRUE(server.ok());
  GstElement *sink = server.element("sink");
  guint64 interval_ns = 0;
  g_object_get(sink, "keyframe-request-interval", &interval_ns, nullptr);
  ASSERT_GT(interval_ns, 0u);
  ASSERT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  int port = tlsframe::test::current_port(sink);
  ASSERT_GT(port, 0);
  struct Keyframes {
    std::atomic<int> count{0};
    static GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
      if (!GST_BUFFER_FLAG_IS_SET(GST_PAD_PROBE_INFO_BUFFER(info), GST_BUFFER_FLAG_DELTA_UNIT))
        static_cast<Keyframes *>(data)->count++;
      return GST_PAD_PROBE_OK;
    }
  } keyframes;
  // The stream has delta units once the first keyframe has gone by.
  tlsframe::test::Waiter poll;  // re-checked every 50 ms until the deadline
  ASSERT_TRUE(poll.wait_for(
      [&] { return tlsframe::test::sink_stat(sink, "buffers-published") >= 5; }, 5000ms));
  GstPad *pad = gst_element_get_static_pad(server.element("enc"), "src");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, Keyframes::on_buffer, &keyframes, nullptr);
  gst_object_unref(pad);
  auto keyframe_requests = [sink] {  // a guint in the stats structure
    GstStructure *st = nullptr;
    g_object_get(sink, "stats", &st, nullptr);
    guint v = 0;
    if (st) {
      gst_structure_get_uint(st, "keyframe-requests", &v);
      gst_structure_free(st);
    }
    return static_cast<guint64>(v);
  };
  const guint64 requests_before = keyframe_requests();

  constexpr int kFlood = 60;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kFlood; ++i) {
    tlsframe::test::RawTlsClient c;
    ASSERT_TRUE(c.connect(port, pki.ca())) << c.error();
  }  // each closes at once
  const auto flood = std::chrono::steady_clock::now() - t0;
  const auto interval = std::chrono::nanoseconds(interval_ns);
  // Past the interval the flood ended in (a deferred request would come by then).
  poll.wait_for([] { return false; }, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          interval + 500ms));  // bounded quiet period
  const guint64 allowed = static_cast<guint64>(flood / interval) + 1;
  const guint64 requests = keyframe_requests() - requests_before;
  std::printf(
      "%d connect-and-close clients in %lld ms: %llu keyframe requests, %d keyframes\n", kFlood,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(flood).count()),
      static_cast<unsigned long long>(requests), keyframes.count.load());
  EXPECT_LE(requests, allowed);
  EXPECT_LE(static_cast<guint64>(keyframes.count.load()), allowed);
}
