// tlsframesink sync-method with a source that cannot make a keyframe on
// demand: x264enc with a 5 s GOP (key-int-max=150 at 30 fps) behind a pad
// probe that drops every force-key-unit event, as a file or a version 1
// upstream would ignore it. At latest-keyframe a joiner decodes its first
// frame at once from the GOP cache, though no keyframe was made for it; at
// next-keyframe (the default) it waits for the encoder's next keyframe.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>

#include "common/pki.h"
#include "element/gst_util.h"

using namespace std::chrono_literals;
using tlsframe::test::Pipeline;

namespace {

using Clock = std::chrono::steady_clock;

// Counts on a pad: buffers and keyframes (buffers without DELTA_UNIT).
struct Counter {
  tlsframe::test::Waiter waiter;
  std::atomic<guint64> buffers{0};
  std::atomic<guint64> keyframes{0};
  std::atomic<int> first_was_delta{-1};  // -1 = no buffer yet

  static GstPadProbeReturn on_buffer(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *c = static_cast<Counter *>(data);
    const bool delta =
        GST_BUFFER_FLAG_IS_SET(GST_PAD_PROBE_INFO_BUFFER(info), GST_BUFFER_FLAG_DELTA_UNIT);
    int unset = -1;
    c->first_was_delta.compare_exchange_strong(unset, delta ? 1 : 0);
    if (!delta) c->keyframes++;
    c->buffers++;
    c->waiter.notify();
    return GST_PAD_PROBE_OK;
  }
  void attach(GstElement *element) {
    GstPad *pad = gst_element_get_static_pad(element, "src");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, on_buffer, this, nullptr);
    gst_object_unref(pad);
  }
};

// Drops every force-key-unit event going upstream through element's src pad.
GstPadProbeReturn drop_force_key_unit(GstPad *, GstPadProbeInfo *info, gpointer data) {
  GstEvent *e = GST_PAD_PROBE_INFO_EVENT(info);
  if (GST_EVENT_TYPE(e) == GST_EVENT_CUSTOM_UPSTREAM &&
      gst_structure_has_name(gst_event_get_structure(e), "GstForceKeyUnit")) {
    (*static_cast<std::atomic<int> *>(data))++;
    return GST_PAD_PROBE_DROP;
  }
  return GST_PAD_PROBE_OK;
}

guint keyframe_requests(GstElement *sink) {
  GstStructure *st = nullptr;
  g_object_get(sink, "stats", &st, nullptr);
  guint v = 0;
  if (st) {
    gst_structure_get_uint(st, "keyframe-requests", &v);
    gst_structure_free(st);
  }
  return v;
}

struct JoinResult {
  bool decoded = false;
  Clock::duration first_frame_after{};
  guint64 keyframes_made_meanwhile = 0;  // by the encoder, between the join and the first frame
  int dropped_requests = 0;              // force-key-unit events the probe dropped
  guint sink_requests = 0;               // the sink's keyframe-requests statistic
  int client_first_was_delta = -1;
};

// A server at `sync_method`; a client joins 1.5 s into the first GOP (45 of
// its 150 frames), and the time to its first decoded frame is measured.
JoinResult join_mid_gop(const char *sync_method, std::chrono::milliseconds decode_timeout) {
  JoinResult out;
  tlsframe::test::Pki pki;
  Pipeline server(std::string("videotestsrc is-live=true pattern=ball ! "
                              "video/x-raw,width=160,height=120,framerate=30/1 ! "
                              "x264enc name=enc tune=zerolatency speed-preset=ultrafast "
                              "key-int-max=150 ! video/x-h264,stream-format=byte-stream,"
                              "alignment=au ! identity name=gate ! tlsframesink name=sink "
                              "host=127.0.0.1 port=0 sync-method=") +
                  sync_method + " cert-file=" + pki.server_cert() +
                  " key-file=" + pki.server_key());
  EXPECT_TRUE(server.ok());
  if (!server.ok()) return out;
  std::atomic<int> dropped{0};
  GstPad *gate_src = gst_element_get_static_pad(server.element("gate"), "src");
  gst_pad_add_probe(gate_src, GST_PAD_PROBE_TYPE_EVENT_UPSTREAM, drop_force_key_unit, &dropped,
                    nullptr);
  gst_object_unref(gate_src);
  Counter encoded;
  encoded.attach(server.element("enc"));
  EXPECT_NE(server.set_state(GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstElement *sink = server.element("sink");
  const int port = tlsframe::test::current_port(sink);
  EXPECT_GT(port, 0);
  EXPECT_TRUE(encoded.waiter.wait_for([&] { return encoded.buffers >= 45; }, 10s));
  EXPECT_EQ(encoded.keyframes.load(), 1u) << "a keyframe inside the first GOP: the test's premise";

  Pipeline client("tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(port) +
                  " ca-file=" + pki.ca() +
                  " ! h264parse ! avdec_h264 ! appsink name=out sync=false");
  EXPECT_TRUE(client.ok());
  if (!client.ok()) return out;
  Counter received;
  received.attach(client.element("src"));
  const guint64 keyframes_before = encoded.keyframes.load();
  const auto joined = Clock::now();
  EXPECT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto decoded = tlsframe::test::pull_samples(client.element("out"), 1, decode_timeout);
  out.first_frame_after = Clock::now() - joined;
  out.decoded = decoded.size() == 1;
  out.keyframes_made_meanwhile = encoded.keyframes.load() - keyframes_before;
  out.dropped_requests = dropped.load();
  out.sink_requests = keyframe_requests(sink);
  out.client_first_was_delta = received.first_was_delta.load();
  EXPECT_TRUE(client.problems().empty()) << client.problems()[0];
  tlsframe::test::unref_samples(decoded);
  std::printf("sync-method=%s: first decoded frame %lld ms after the join; encoder keyframes "
              "meanwhile %llu, keyframe requests %u (dropped %d)\n",
              sync_method,
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(out.first_frame_after)
                      .count()),
              static_cast<unsigned long long>(out.keyframes_made_meanwhile), out.sink_requests,
              out.dropped_requests);
  return out;
}

TEST(SyncMethod, LatestKeyframeJoinerDecodesAtOnceThoughNoKeyframeIsMadeForIt) {
  tlsframe::test::init_gstreamer();
  const JoinResult r = join_mid_gop("latest-keyframe", 5s);
  ASSERT_TRUE(r.decoded) << "no decoded frame within 5 s";
  EXPECT_LT(r.first_frame_after, 1s);
  EXPECT_EQ(r.keyframes_made_meanwhile, 0u) << "the frame came from the cache, not a new keyframe";
  EXPECT_EQ(r.client_first_was_delta, 0) << "the client's first buffer must be a keyframe";
  EXPECT_EQ(r.sink_requests, 0u) << "the cache served the joiner: nothing to ask upstream";
  EXPECT_EQ(r.dropped_requests, 0);
}

TEST(SyncMethod, NextKeyframeJoinerWaitsForTheEncodersNextKeyframe) {
  tlsframe::test::init_gstreamer();
  // The next keyframe is frame 150, about 3.5 s after the join.
  const JoinResult r = join_mid_gop("next-keyframe", 10s);
  ASSERT_TRUE(r.decoded) << "no decoded frame by the next GOP";
  EXPECT_GT(r.first_frame_after, 2s) << "decoded before the encoder's next keyframe";
  EXPECT_EQ(r.client_first_was_delta, 0);
  EXPECT_GE(r.sink_requests, 1u) << "next-keyframe asks upstream for a keyframe";
  EXPECT_GE(r.dropped_requests, 1);
}

TEST(SyncMethod, PropertiesUseMultihandlesinksNamesAndValues) {
  tlsframe::test::init_gstreamer();
  GstElement *sink = gst_element_factory_make("tlsframesink", nullptr);
  ASSERT_NE(sink, nullptr);
  GParamSpec *p = g_object_class_find_property(G_OBJECT_GET_CLASS(sink), "sync-method");
  ASSERT_NE(p, nullptr);
  ASSERT_TRUE(G_IS_PARAM_SPEC_ENUM(p));
  GEnumClass *e = G_PARAM_SPEC_ENUM(p)->enum_class;
  // GstMultiHandleSinkSyncMethod: next-keyframe = 1, latest-keyframe = 2.
  GEnumValue *next = g_enum_get_value_by_nick(e, "next-keyframe");
  GEnumValue *latest = g_enum_get_value_by_nick(e, "latest-keyframe");
  ASSERT_NE(next, nullptr);
  ASSERT_NE(latest, nullptr);
  EXPECT_EQ(next->value, 1);
  EXPECT_EQ(latest->value, 2);
  EXPECT_EQ(g_enum_get_value_by_nick(e, "latest"), nullptr) << "not offered: see ELEMENTS.md";
  EXPECT_EQ(G_PARAM_SPEC_ENUM(p)->default_value, 1) << "next-keyframe by default";
  guint64 bytes = 0;
  g_object_get(sink, "gop-cache-bytes-max", &bytes, nullptr);
  EXPECT_EQ(bytes, guint64{16} << 20);
  gst_object_unref(sink);
}

}  // namespace
