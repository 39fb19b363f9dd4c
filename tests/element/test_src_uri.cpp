// tlsframe:// URIs: the core parser (good and bad URIs, IPv6), tlsframesrc as
// a GstURIHandler (the uri round-trips), and playbin playing
// tlsframe://127.0.0.1:PORT/NAME from a raw version 2 server sending JPEG.
#include <gst/app/gstappsink.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "common/raw_v2_server.h"
#include "core/receiver.h"
#include "core/wire_format.h"
#include "element/gst_util.h"

namespace tlsframe::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kWait = std::chrono::milliseconds(5000);  // generous bound for any one condition

struct Good {
  const char *uri;
  const char *host;
  int port;
  const char *stream;
};

TEST(StreamUri, ParsesHostPortAndName) {
  const Good cases[] = {
      {"tlsframe://cam.lan", "cam.lan", 9999, ""},
      {"tlsframe://cam.lan/", "cam.lan", 9999, ""},
      {"tlsframe://cam.lan:1234", "cam.lan", 1234, ""},
      {"tlsframe://10.0.0.7:1234/door", "10.0.0.7", 1234, "door"},
      {"tlsframe://cam.lan/front-1.hd_2", "cam.lan", 9999, "front-1.hd_2"},
      {"TLSFrame://cam.lan/a", "cam.lan", 9999, "a"},
      {"tlsframe://[::1]/cam1", "::1", 9999, "cam1"},
      {"tlsframe://[::1]:65535/cam1", "::1", 65535, "cam1"},
      {"tlsframe://[fe80::1:2]:1", "fe80::1:2", 1, ""},
  };
  for (const Good &c : cases) {
    SCOPED_TRACE(c.uri);
    auto a = parse_stream_uri(c.uri);
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->host, c.host);
    EXPECT_EQ(a->port, c.port);
    EXPECT_EQ(a->stream, c.stream);
    // Formatting and parsing again gives the same address.
    auto again = parse_stream_uri(format_stream_uri(*a));
    ASSERT_TRUE(again.ok()) << format_stream_uri(*a);
    EXPECT_EQ(again->host, a->host);
    EXPECT_EQ(again->port, a->port);
    EXPECT_EQ(again->stream, a->stream);
  }
}

TEST(StreamUri, RefusesOtherSchemesUserinfoQueryFragmentAndBadParts) {
  const char *bad[] = {
      "http://cam.lan/a",
      "tlsframe:cam.lan",
      "cam.lan/a",
      "tlsframe://",
      "tlsframe:///a",
      "tlsframe://user@cam.lan/a",
      "tlsframe://cam.lan/a?x=1",
      "tlsframe://cam.lan/a#f",
      "tlsframe://cam.lan:0",
      "tlsframe://cam.lan:65536",
      "tlsframe://cam.lan:",
      "tlsframe://cam.lan:01",
      "tlsframe://cam.lan:x",
      "tlsframe://::1/a",
      "tlsframe://[::1/a",
      "tlsframe://[cam.lan]/a",
      "tlsframe://[::1]x/a",
      "tlsframe://cam.lan/.hidden",
      "tlsframe://cam.lan/a/b",
      "tlsframe://cam.lan/a%20b",
      "tlsframe://cam lan/a",
      "tlsframe://cam.lan/"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  };
  for (const char *uri : bad) {
    SCOPED_TRACE(uri);
    auto a = parse_stream_uri(uri);
    EXPECT_FALSE(a.ok()) << "accepted as host " << (a.ok() ? a->host : "");
    if (!a.ok()) {
      EXPECT_EQ(a.error().kind, Error::Kind::kSettings);
    }
  }
}

TEST(StreamUri, TargetTakesTheToolsFormWithOrWithoutScheme) {
  auto a = parse_stream_target("cam.lan:1234/door");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->host, "cam.lan");
  EXPECT_EQ(a->port, 1234);
  EXPECT_EQ(a->stream, "door");
  auto b = parse_stream_target("[::1]");
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->stream, "");
  EXPECT_TRUE(parse_stream_target("tlsframe://h/x").ok());
  EXPECT_FALSE(parse_stream_target("http://h/x").ok());
  EXPECT_FALSE(parse_stream_target("h:99999").ok());
}

class SrcUriTest : public ::testing::Test {
 protected:
  void SetUp() override { init_gstreamer(); }
};

TEST_F(SrcUriTest, MakeFromUriSetsHostPortAndStreamAndRoundTrips) {
  GError *err = nullptr;
  GstElement *src =
      gst_element_make_from_uri(GST_URI_SRC, "tlsframe://[::1]:1234/cam1", nullptr, &err);
  ASSERT_NE(src, nullptr) << (err ? err->message : "no element for tlsframe://");
  gchar *host = nullptr, *stream = nullptr, *uri = nullptr;
  int port = 0;
  g_object_get(src, "host", &host, "port", &port, "stream-name", &stream, "uri", &uri, nullptr);
  EXPECT_STREQ(host, "::1");
  EXPECT_EQ(port, 1234);
  EXPECT_STREQ(stream, "cam1");
  EXPECT_STREQ(uri, "tlsframe://[::1]:1234/cam1");
  gchar *handler_uri = gst_uri_handler_get_uri(GST_URI_HANDLER(src));
  EXPECT_STREQ(handler_uri, uri);
  g_free(handler_uri);
  g_free(host);
  g_free(stream);
  // The uri property round-trips.
  g_object_set(src, "uri", uri, nullptr);
  gchar *uri2 = nullptr;
  g_object_get(src, "uri", &uri2, nullptr);
  EXPECT_STREQ(uri2, uri);
  g_free(uri2);
  g_free(uri);
  gst_object_unref(src);
}

TEST_F(SrcUriTest, BadUriIsRefusedAndLeavesSettingsAlone) {
  GstElement *src = gst_element_factory_make("tlsframesrc", nullptr);
  ASSERT_NE(src, nullptr);
  ASSERT_TRUE(gst_uri_handler_set_uri(GST_URI_HANDLER(src), "tlsframe://cam.lan:5/a", nullptr));
  for (const char *bad :
       {"http://x/a", "tlsframe://u@x/a", "tlsframe://x/a?b", "tlsframe://x/.a"}) {
    SCOPED_TRACE(bad);
    GError *err = nullptr;
    EXPECT_FALSE(gst_uri_handler_set_uri(GST_URI_HANDLER(src), bad, &err));
    ASSERT_NE(err, nullptr);
    // GStreamer itself refuses a scheme the handler does not list.
    EXPECT_TRUE(g_error_matches(err, GST_URI_ERROR, GST_URI_ERROR_BAD_URI) ||
                g_error_matches(err, GST_URI_ERROR, GST_URI_ERROR_UNSUPPORTED_PROTOCOL))
        << err->message;
    g_clear_error(&err);
  }
  gchar *uri = gst_uri_handler_get_uri(GST_URI_HANDLER(src));
  EXPECT_STREQ(uri, "tlsframe://cam.lan:5/a");
  g_free(uri);
  gst_object_unref(src);
}

// One JPEG picture made here with jpegenc.
std::vector<uint8_t> make_jpeg() {
  Pipeline p(
      "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! jpegenc ! "
      "appsink name=out sync=false");
  if (!p.ok()) return {};
  gst_element_set_state(p.get(), GST_STATE_PLAYING);
  auto samples = pull_samples(p.element("out"), 1, kWait);
  std::vector<uint8_t> out;
  if (samples.size() == 1) {
    GstMapInfo map;
    GstBuffer *b = gst_sample_get_buffer(samples[0]);
    if (gst_buffer_map(b, &map, GST_MAP_READ)) {
      out.assign(map.data, map.data + map.size);
      gst_buffer_unmap(b, &map);
    }
  }
  unref_samples(samples);
  return out;
}

TEST_F(SrcUriTest, PlaybinPlaysANamedStreamFromItsUri) {
  const std::vector<uint8_t> jpeg = make_jpeg();
  ASSERT_FALSE(jpeg.empty()) << "jpegenc made no picture";
  Pki pki;
  RawV2Server server(pki.server_cert(), pki.server_key());
  ASSERT_TRUE(server.ok()) << server.error();
  std::atomic<bool> stop{false};
  std::string asked;
  std::thread peer([&] {
    if (!server.accept(Clock::now() + kWait) ||
        !server.handshake_v2(&asked, Clock::now() + kWait)) {
      ADD_FAILURE() << server.error();
      return;
    }
    server.send(v2_caps("image/jpeg,width=64,height=48,framerate=10/1"));
    // Paced by the client: writes block while it is not reading (the sink
    // syncs to the clock); ends when the client closes, bounded in count.
    for (uint64_t i = 0; i < 3000 && !stop; ++i) {
      if (!server.send(v2_buffer(i, true, jpeg))) break;
    }
  });
  const std::string uri = "tlsframe://127.0.0.1:" + std::to_string(server.port()) + "/cam1";
  const PlaybinResult r = play_uri(uri, pki.ca(), 3, 2 * kWait);
  EXPECT_GE(r.frames, 3) << r.errors;
  EXPECT_EQ(r.state, GST_STATE_PLAYING) << r.errors;
  stop = true;
  peer.join();
  EXPECT_EQ(asked, "cam1");
}

}  // namespace
}  // namespace tlsframe::test
