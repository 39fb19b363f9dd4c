// tlsframesrc on protocol version 2 against a raw server
// (tests/common/raw_v2_server): HELLO/WELCOME then the stream, a version 1
// server (no ALPN selected) for the default stream and a named one, the
// server's NO_SUCH_STREAM text on the bus, force-key-unit -> exactly one
// KEYFRAME_REQUEST, and hostile v2 inputs as clean errors.
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/pki.h"
#include "common/raw_v2_server.h"
#include "core/wire_format.h"
#include "core/wire_v2.h"
#include "element/gst_util.h"

namespace tlsframe::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kWait = std::chrono::milliseconds(5000);  // generous bound for any one condition

// A v2 message of any type from raw field blocks (bypasses the encoders'
// checks, to send what a hostile server would).
std::vector<uint8_t> raw_v2(wire::MessageType type, const std::vector<uint8_t> &payload) {
  std::vector<uint8_t> msg(wire::kHeaderSize);
  wire::write_header(msg.data(), type, static_cast<uint32_t>(payload.size()), wire::Version::kV2);
  msg.insert(msg.end(), payload.begin(), payload.end());
  return msg;
}

std::vector<uint8_t> block(const std::vector<wire::Field> &fields) {
  std::vector<uint8_t> out;
  EXPECT_TRUE(wire::append_field_block(fields, out));
  return out;
}

class SrcV2Test : public ::testing::Test {
 protected:
  void SetUp() override { init_gstreamer(); }
  void TearDown() override {
    if (peer_.joinable()) peer_.join();
  }

  void make_server(RawV2Server::Alpn alpn) {
    server_ = std::make_unique<RawV2Server>(pki_.server_cert(), pki_.server_key(), alpn);
    ASSERT_TRUE(server_->ok()) << server_->error();
  }

  std::string client_desc(const std::string &extra = "") {
    return "tlsframesrc name=src host=127.0.0.1 port=" + std::to_string(server_->port()) +
           " ca-file=\"" + pki_.ca() + "\" " + extra + " ! appsink name=out sync=false";
  }

  // Runs `body` on the server's own thread, then holds the connection until
  // the client closes it (bounded).
  void serve(std::function<void(RawV2Server &)> body, Clock::duration hold = kWait) {
    peer_ = std::thread([this, body = std::move(body), hold] {
      if (!server_->accept(Clock::now() + kWait)) {
        ADD_FAILURE() << server_->error();
        return;
      }
      body(*server_);
      server_->wait_client_closed(Clock::now() + hold);
      server_->close_client();
    });
  }

  // A v2 server: HELLO (the name asked for lands in asked_), then each message.
  void serve_v2(std::vector<std::vector<uint8_t>> messages, uint32_t keyframe_interval_ms = 0) {
    serve([this, messages = std::move(messages), keyframe_interval_ms](RawV2Server &s) {
      if (!s.handshake_v2(&asked_, Clock::now() + kWait, keyframe_interval_ms)) {
        ADD_FAILURE() << "v2 handshake: " << s.error();
        return;
      }
      for (const auto &m : messages) {
        if (!s.send(m)) return;
      }
    });
  }

  static std::vector<std::vector<uint8_t>> frames(wire::Version v, size_t n) {
    std::vector<std::vector<uint8_t>> out = {wire::encode_caps("application/x-test", v)};
    std::vector<uint8_t> data(100, 0x42);
    for (size_t i = 0; i < n; ++i) {
      wire::BufferMeta meta;
      meta.pts = i * 1'000'000;
      meta.sequence = i;
      meta.flags = i == 0 ? 0u : static_cast<uint32_t>(wire::kFlagDeltaUnit);
      out.push_back(wire::encode_buffer(meta, data.data(), data.size(), v));
    }
    return out;
  }

  // The tlsframesrc-connected structure (copied), or nullptr after the timeout.
  static GstStructure *wait_connected(Pipeline &p) {
    const auto deadline = Clock::now() + kWait;
    while (Clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      GstMessage *m = p.wait_message(GST_MESSAGE_ELEMENT, left);
      if (!m) return nullptr;
      const GstStructure *s = gst_message_get_structure(m);
      GstStructure *copy = nullptr;
      if (s && gst_structure_has_name(s, "tlsframesrc-connected")) copy = gst_structure_copy(s);
      gst_message_unref(m);
      if (copy) return copy;
    }
    return nullptr;
  }

  Pki pki_;
  std::unique_ptr<RawV2Server> server_;
  std::thread peer_;
  std::string asked_;  // the stream the client's HELLO named (server thread, read after join)
};

TEST_F(SrcV2Test, HelloNamesTheStreamAndFramesFollowTheWelcome) {
  make_server(RawV2Server::Alpn::kV2);
  serve_v2(frames(wire::Version::kV2, 3), 250);
  Pipeline client(client_desc("stream-name=cam1"));
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstStructure *connected = wait_connected(client);
  ASSERT_NE(connected, nullptr) << pending_errors(client);
  int version = 0;
  guint interval = 0;
  EXPECT_TRUE(gst_structure_get_int(connected, "protocol-version", &version));
  EXPECT_EQ(version, 2);
  EXPECT_STREQ(gst_structure_get_string(connected, "stream-name"), "cam1");
  EXPECT_STREQ(gst_structure_get_string(connected, "server"), "raw-v2-test");
  EXPECT_TRUE(gst_structure_get_uint(connected, "keyframe-interval-ms", &interval));
  EXPECT_EQ(interval, 250u);
  EXPECT_STREQ(gst_structure_get_string(connected, "rendition"), "");
  EXPECT_STREQ(gst_structure_get_string(connected, "renditions"), "") << "a single encoding";
  gst_structure_free(connected);
  auto samples = pull_samples(client.element("out"), 3, kWait);
  ASSERT_EQ(samples.size(), 3u) << pending_errors(client);
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_EQ(GST_BUFFER_OFFSET(gst_sample_get_buffer(samples[i])), i);
  }
  unref_samples(samples);
  client.set_state(GST_STATE_NULL);
  peer_.join();
  EXPECT_EQ(asked_, "cam1");
}

// A WELCOME with renditions: tlsframesrc-connected states the one the connection starts
// on and every one the stream has, in the WELCOME's order (highest rate first).
TEST_F(SrcV2Test, ConnectedMessageListsTheStreamsRenditions) {
  make_server(RawV2Server::Alpn::kV2);
  auto msgs = frames(wire::Version::kV2, 1);
  serve([msgs](RawV2Server &s) {
    RawV2Server::Message hello;
    if (s.read_message(hello, Clock::now() + kWait) != RawV2Server::ReadStatus::kMessage ||
        hello.type != wire::MessageType::kHello) {
      ADD_FAILURE() << "no HELLO: " << s.error();
      return;
    }
    s.send(wire::encode_welcome({{"stream", ""},
                                 {"server", "raw-v2-test"},
                                 {"rendition", "360p"},
                                 {"renditions", "720p,360p,180p"}}));
    for (const auto &m : msgs) {
      if (!s.send(m)) return;
    }
  });
  Pipeline client(client_desc());
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstStructure *connected = wait_connected(client);
  ASSERT_NE(connected, nullptr) << pending_errors(client);
  EXPECT_STREQ(gst_structure_get_string(connected, "rendition"), "360p");
  EXPECT_STREQ(gst_structure_get_string(connected, "renditions"), "720p,360p,180p");
  gst_structure_free(connected);
  client.set_state(GST_STATE_NULL);
}

TEST_F(SrcV2Test, DefaultStreamIsAnEmptyNameInHello) {
  make_server(RawV2Server::Alpn::kV2);
  asked_ = "unset";
  serve_v2(frames(wire::Version::kV2, 1));
  Pipeline client(client_desc());
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto samples = pull_samples(client.element("out"), 1, kWait);
  ASSERT_EQ(samples.size(), 1u) << pending_errors(client);
  unref_samples(samples);
  client.set_state(GST_STATE_NULL);
  peer_.join();
  EXPECT_EQ(asked_, "");
}

TEST_F(SrcV2Test, VersionOneServerServesTheDefaultStream) {
  make_server(RawV2Server::Alpn::kNone);
  auto msgs = frames(wire::Version::kV1, 3);
  serve([msgs](RawV2Server &s) {
    EXPECT_EQ(s.selected_alpn(), "");
    for (const auto &m : msgs) {
      if (!s.send(m)) return;
    }
  });
  Pipeline client(client_desc());
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  GstStructure *connected = wait_connected(client);
  ASSERT_NE(connected, nullptr) << pending_errors(client);
  int version = 0;
  EXPECT_TRUE(gst_structure_get_int(connected, "protocol-version", &version));
  EXPECT_EQ(version, 1);
  gst_structure_free(connected);
  auto samples = pull_samples(client.element("out"), 3, kWait);
  EXPECT_EQ(samples.size(), 3u) << pending_errors(client);
  unref_samples(samples);
}

// The error on the bus, which must be RESOURCE NOT_FOUND (a stream the server does not
// have: not a certificate or settings problem, so tools can say what to do).
std::string wait_not_found_error(Pipeline &client) {
  GstMessage *msg = client.wait_message(GST_MESSAGE_ERROR, kWait);
  if (!msg) return "(no error)";
  GError *err = nullptr;
  gst_message_parse_error(msg, &err, nullptr);
  EXPECT_TRUE(g_error_matches(err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND))
      << (err ? g_quark_to_string(err->domain) : "") << " " << (err ? err->code : -1);
  std::string text = err ? err->message : "";
  g_clear_error(&err);
  gst_message_unref(msg);
  return text;
}

TEST_F(SrcV2Test, NamedStreamOnVersionOneServerIsAClearErrorNotRetried) {
  make_server(RawV2Server::Alpn::kNone);
  serve([](RawV2Server &) {});
  Pipeline client(client_desc("stream-name=cam1 reconnect=true"));
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string text = wait_not_found_error(client);
  EXPECT_NE(text.find("protocol version 1"), std::string::npos) << text;
  EXPECT_NE(text.find("leave stream-name empty"), std::string::npos) << text;
}

TEST_F(SrcV2Test, NoSuchStreamShowsTheServersListAndIsNotRetried) {
  make_server(RawV2Server::Alpn::kV2);
  serve([](RawV2Server &s) {
    RawV2Server::Message m;
    ASSERT_EQ(s.read_message(m, Clock::now() + kWait), RawV2Server::ReadStatus::kMessage);
    ASSERT_EQ(m.type, wire::MessageType::kHello);
    s.send(wire::encode_error(wire::ErrorCode::kNoSuchStream,
                              wire::no_such_stream_reason(m.stream, {"cam1", "door"}),
                              wire::Version::kV2));
  });
  Pipeline client(client_desc("stream-name=cam9 reconnect=true"));
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string text = wait_not_found_error(client);
  EXPECT_NE(text.find("no stream named \"cam9\"; streams: cam1, door"), std::string::npos) << text;
}

TEST_F(SrcV2Test, InvalidStreamNameFailsAtStart) {
  make_server(RawV2Server::Alpn::kV2);
  Pipeline client(client_desc("stream-name=.hidden"));
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string text = client.wait_error(kWait);
  EXPECT_NE(text.find("Invalid stream-name"), std::string::npos) << text;
}

TEST_F(SrcV2Test, StreamNameIsFixedOncePlaying) {
  make_server(RawV2Server::Alpn::kV2);
  serve_v2(frames(wire::Version::kV2, 1));
  Pipeline client(client_desc("stream-name=cam1"));
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto samples = pull_samples(client.element("out"), 1, kWait);
  ASSERT_EQ(samples.size(), 1u) << pending_errors(client);
  unref_samples(samples);
  g_object_set(client.element("src"), "stream-name", "other", nullptr);
  gchar *name = nullptr;
  g_object_get(client.element("src"), "stream-name", &name, nullptr);
  EXPECT_STREQ(name, "cam1");
  g_free(name);
}

// Counts KEYFRAME_REQUESTs until the client closes; the test sends two
// force-key-unit events back to back: the second is within the client's rate
// limit (no keyframe since, interval not passed), so exactly one reaches the
// server.
TEST_F(SrcV2Test, UpstreamForceKeyUnitBecomesExactlyOneKeyframeRequest) {
  make_server(RawV2Server::Alpn::kV2);
  std::atomic<int> requests{0}, others{0};
  Waiter waiter;
  auto msgs = frames(wire::Version::kV2, 2);
  serve([&, msgs](RawV2Server &s) {
    if (!s.handshake_v2(nullptr, Clock::now() + kWait, 60000)) {
      ADD_FAILURE() << s.error();
      return;
    }
    for (const auto &m : msgs) s.send(m);
    const auto deadline = Clock::now() + 3 * kWait;
    RawV2Server::Message m;
    // Bounded: each read ends by the deadline; the loop ends when the client closes.
    while (s.read_message(m, deadline) == RawV2Server::ReadStatus::kMessage) {
      (m.type == wire::MessageType::kKeyframeRequest ? requests : others)++;
      waiter.notify();
    }
  });
  Pipeline client(client_desc());
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto samples = pull_samples(client.element("out"), 2, kWait);
  ASSERT_EQ(samples.size(), 2u) << pending_errors(client);
  unref_samples(samples);
  GstPad *pad = gst_element_get_static_pad(client.element("src"), "src");
  for (int i = 0; i < 2; ++i) {
    GstEvent *ev = gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, i);
    EXPECT_TRUE(gst_pad_send_event(pad, ev));
  }
  gst_object_unref(pad);
  EXPECT_TRUE(waiter.wait_for([&] { return requests.load() >= 1; }, kWait));
  client.set_state(GST_STATE_NULL);  // the client closes: the server's loop ends
  peer_.join();
  EXPECT_EQ(requests.load(), 1);
  EXPECT_EQ(others.load(), 0);
}

TEST_F(SrcV2Test, ForceKeyUnitOnVersionOneIsIgnored) {
  make_server(RawV2Server::Alpn::kNone);
  auto msgs = frames(wire::Version::kV1, 1);
  serve([msgs](RawV2Server &s) {
    for (const auto &m : msgs) s.send(m);
  });
  Pipeline client(client_desc());
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  auto samples = pull_samples(client.element("out"), 1, kWait);
  ASSERT_EQ(samples.size(), 1u) << pending_errors(client);
  unref_samples(samples);
  GstPad *pad = gst_element_get_static_pad(client.element("src"), "src");
  EXPECT_TRUE(gst_pad_send_event(
      pad, gst_video_event_new_upstream_force_key_unit(GST_CLOCK_TIME_NONE, TRUE, 0)));
  gst_object_unref(pad);
  EXPECT_EQ(pending_errors(client), "");
}

// Hostile v2 servers: each is one clean element error naming the problem.
struct HostileCase {
  const char *name;
  std::function<std::vector<std::vector<uint8_t>>()> messages;  // after the WELCOME
  bool skip_welcome;
  const char *expected;  // in the error text
};

class SrcV2HostileTest : public SrcV2Test, public ::testing::WithParamInterface<int> {};

const HostileCase kHostile[] = {
    {"SecondWelcome",
     [] { return std::vector<std::vector<uint8_t>>{wire::encode_welcome("", "again", 0)}; }, false,
     "second WELCOME"},
    {"StreamListEntryWithoutViewers",
     [] {
       std::vector<uint8_t> entry = block({{"name", "cam1"}, {"caps", "x"}});
       std::vector<uint8_t> payload = {0, 1, 0, static_cast<uint8_t>(entry.size())};
       payload.insert(payload.end(), entry.begin(), entry.end());
       return std::vector<std::vector<uint8_t>>{raw_v2(wire::MessageType::kStreamList, payload)};
     },
     false, "STREAM_LIST"},
    {"StreamListBadName",
     [] {
       std::vector<uint8_t> entry = block({{"name", "a/b"}, {"caps", "x"}, {"viewers", "1"}});
       std::vector<uint8_t> payload = {0, 1, 0, static_cast<uint8_t>(entry.size())};
       payload.insert(payload.end(), entry.begin(), entry.end());
       return std::vector<std::vector<uint8_t>>{raw_v2(wire::MessageType::kStreamList, payload)};
     },
     false, "STREAM_LIST"},
    {"WelcomeWithNonCanonicalInterval",
     [] {
       return std::vector<std::vector<uint8_t>>{
           raw_v2(wire::MessageType::kWelcome,
                  block({{"stream", ""}, {"server", "x"}, {"keyframe-interval-ms", "0100"}}))};
     },
     true, "WELCOME"},
    {"WelcomeWithoutServer",
     [] {
       return std::vector<std::vector<uint8_t>>{
           raw_v2(wire::MessageType::kWelcome, block({{"stream", ""}}))};
     },
     true, "WELCOME"},
    {"CapsBeforeWelcome",
     [] {
       return std::vector<std::vector<uint8_t>>{
           wire::encode_caps("application/x-test", wire::Version::kV2)};
     },
     true, "before WELCOME"},
    {"VersionOneBytesOnVersionTwo",
     [] { return std::vector<std::vector<uint8_t>>{wire::encode_caps("application/x-test")}; },
     false, "protocol error"},
};

TEST_P(SrcV2HostileTest, IsACleanElementError) {
  const HostileCase &c = kHostile[GetParam()];
  SCOPED_TRACE(c.name);
  make_server(RawV2Server::Alpn::kV2);
  auto msgs = c.messages();
  bool skip = c.skip_welcome;
  serve([msgs, skip](RawV2Server &s) {
    if (skip) {
      RawV2Server::Message m;
      if (s.read_message(m, Clock::now() + kWait) != RawV2Server::ReadStatus::kMessage) return;
    } else if (!s.handshake_v2(nullptr, Clock::now() + kWait)) {
      return;
    }
    for (const auto &m : msgs) s.send(m);
  });
  Pipeline client(client_desc());
  ASSERT_TRUE(client.ok());
  ASSERT_NE(gst_element_set_state(client.get(), GST_STATE_PLAYING), GST_STATE_CHANGE_FAILURE);
  std::string text = client.wait_error(kWait);
  EXPECT_NE(text.find(c.expected), std::string::npos) << text;
}

INSTANTIATE_TEST_SUITE_P(Cases, SrcV2HostileTest,
                         ::testing::Range(0, static_cast<int>(std::size(kHostile))),
                         [](const ::testing::TestParamInfo<int> &info) {
                           return std::string(kHostile[info.param].name);
                         });

}  // namespace
}  // namespace tlsframe::test
