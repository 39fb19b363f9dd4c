// Core server tests (fixture: server_fixture.h). Protocol version 2 on the
// server side: ALPN selection, HELLO/WELCOME, named streams on one port,
// LIST_STREAMS, KEYFRAME_REQUEST and the rate limit, errors for one client
// alone, and the version 1 fixes (ERROR PROTOCOL for a v1 client that sends
// data, close_notify after EOS and ERROR). Raw OpenSSL clients check exact
// bytes; Receivers (which offer ALPN tlsframe/2) check the stream.
#include <dirent.h>

#include "core/server_fixture.h"
#include "core/wire_v2.h"

namespace tlsframe {
namespace {

// Bytes of the v2 messages a raw client sends.
std::string as_text(const std::vector<uint8_t> &v) {
  return std::string(v.begin(), v.end());
}
std::string hello(const std::string &stream) {
  return as_text(wire::encode_hello({{"stream", stream}}));
}

// Reads exactly n bytes of application data (the socket has 5 s timeouts).
bool read_exact(SSL *ssl, uint8_t *out, size_t n) {
  size_t got = 0;
  for (int i = 0; i < 100000 && got < n; ++i) {
    size_t r = 0;
    if (SSL_read_ex(ssl, out + got, n - got, &r) != 1) return false;
    got += r;
  }
  return got == n;
}

// One whole message (header included), or an empty vector on failure.
std::vector<uint8_t> read_message(SSL *ssl) {
  std::vector<uint8_t> m(wire::kHeaderSize);
  if (!read_exact(ssl, m.data(), m.size())) return {};
  const uint32_t len = (uint32_t{m[8]} << 24) | (uint32_t{m[9]} << 16) | (uint32_t{m[10]} << 8) |
                       uint32_t{m[11]};
  if (len > (1u << 24)) return {};
  m.resize(wire::kHeaderSize + len);
  if (len && !read_exact(ssl, m.data() + wire::kHeaderSize, len)) return {};
  return m;
}

// Decodes a message a raw client read, as a client of `protocol` would.
::testing::AssertionResult decoded(const std::vector<uint8_t> &m, wire::Protocol protocol,
                                   wire::MessageView &view) {
  if (m.empty()) return ::testing::AssertionFailure() << "no message (read failed)";
  const wire::DecodeResult r =
      wire::decode(m.data(), m.size(), wire::kDefaultMaxPayload, protocol, view);
  if (r.status != wire::DecodeStatus::kMessage) {
    return ::testing::AssertionFailure() << "undecodable: " << r.error;
  }
  return ::testing::AssertionSuccess();
}

// The next message is an ERROR with `code`; its text goes to *text.
::testing::AssertionResult next_error_code(SSL *ssl, wire::Protocol protocol, wire::ErrorCode code,
                                           std::string *text = nullptr) {
  wire::MessageView v;
  const std::vector<uint8_t> m = read_message(ssl);
  if (auto ok = decoded(m, protocol, v); !ok) return ok;
  if (v.type != MessageType::kError) {
    return ::testing::AssertionFailure()
           << "expected ERROR, got " << wire::message_type_name(v.type);
  }
  if (v.error_code != static_cast<uint16_t>(code)) {
    return ::testing::AssertionFailure()
           << "ERROR code " << v.error_code << " (" << v.error_text << "), expected "
           << static_cast<int>(code);
  }
  if (text) *text = std::string(v.error_text);
  return ::testing::AssertionSuccess();
}

// After the last message: the server's close_notify (SSL_read returns 0 with
// SSL_ERROR_ZERO_RETURN), not a cut connection.
::testing::AssertionResult clean_tls_close(SSL *ssl) {
  uint8_t b;
  size_t r = 0;
  ERR_clear_error();
  const int rc = SSL_read_ex(ssl, &b, 1, &r);
  if (rc == 1) return ::testing::AssertionFailure() << "more data after the last message";
  const int err = SSL_get_error(ssl, rc);
  if (err != SSL_ERROR_ZERO_RETURN) {
    return ::testing::AssertionFailure()
           << "SSL_get_error " << err << " (not SSL_ERROR_ZERO_RETURN: no close_notify)";
  }
  return ::testing::AssertionSuccess();
}

size_t thread_count() {
  size_t n = 0;
  DIR *d = ::opendir("/proc/self/task");
  if (!d) return 0;
  while (dirent *e = ::readdir(d)) {
    if (e->d_name[0] != '.') n++;
  }
  ::closedir(d);
  return n;
}

// A port free now on 127.0.0.1 (bound to port 0, read, closed), for sinks
// that must share a fixed port.
uint16_t free_port() {
  TcpSocket s;
  if (!s.bind_any(false)) return 0;
  return s.port();
}

class V2ServerTest : public ServerReceiverTest {
 protected:
  void TearDown() override {
    if (alpn_ctx_) SSL_CTX_free(alpn_ctx_);
  }

  // A raw TLS client offering `alpn` (wire form, "" = no ALPN extension).
  std::unique_ptr<test::RawTlsClient> connect_alpn(uint16_t port, const std::string &alpn,
                                                   bool expect_ok = true) {
    if (alpn_ctx_) SSL_CTX_free(alpn_ctx_);
    alpn_ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(alpn_ctx_, pki_.ca().c_str(), nullptr);
    SSL_CTX_set_verify(alpn_ctx_, SSL_VERIFY_PEER, nullptr);
    if (!alpn.empty()) {
      SSL_CTX_set_alpn_protos(alpn_ctx_, reinterpret_cast<const uint8_t *>(alpn.data()),
                              static_cast<unsigned>(alpn.size()));
    }
    test::RawTlsOptions o;
    o.verify_name = "127.0.0.1";
    o.io_timeout = std::chrono::seconds(5);
    o.shared_ctx = alpn_ctx_;
    auto c = std::make_unique<test::RawTlsClient>();
    const bool ok = c->connect(port, o);
    if (expect_ok && !ok) ADD_FAILURE() << "TLS client: " << c->error();
    last_error_ = c->error();
    return ok ? std::move(c) : nullptr;
  }
  // A v2 client that sent HELLO(stream) and read the WELCOME.
  std::unique_ptr<test::RawTlsClient> connect_v2(uint16_t port, const std::string &stream,
                                                 wire::MessageView *welcome_out = nullptr) {
    auto c = connect_alpn(port, kV2Offer);
    if (!c) return nullptr;
    EXPECT_TRUE(c->write(hello(stream)));
    welcome_bytes_ = read_message(c->ssl());
    wire::MessageView v;
    if (!decoded(welcome_bytes_, wire::Protocol::kV2Client, v) || v.type != MessageType::kWelcome) {
      ADD_FAILURE() << "no WELCOME";
      return nullptr;
    }
    if (welcome_out) *welcome_out = v;
    return c;
  }

  ReceiverConfig named(uint16_t port, const std::string &stream) const {
    ReceiverConfig c = receiver_config(port);
    c.stream_name = stream;
    return c;
  }

  const std::string kV2Offer{reinterpret_cast<const char *>(wire::kAlpnOfferV2),
                             sizeof wire::kAlpnOfferV2};
  SSL_CTX *alpn_ctx_ = nullptr;
  std::string last_error_;
  std::vector<uint8_t> welcome_bytes_;  // kept: the WELCOME view points into it
};

// ---------------------------------------------------------------------------
// Versions by ALPN

TEST_F(V2ServerTest, V1ClientWithoutAlpnGetsExactVersion1Bytes) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  auto c = connect_alpn(server->port(), "");
  ASSERT_TRUE(c);
  const unsigned char *proto = nullptr;
  unsigned proto_len = 0;
  SSL_get0_alpn_selected(c->ssl(), &proto, &proto_len);
  EXPECT_EQ(proto_len, 0u) << "no ALPN offered, none selected";
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return l.added.size() == 1; }));

  EXPECT_EQ(read_message(c->ssl()), wire::encode_caps(kCaps));
  publish(*server, 0, 0, 300);
  const std::vector<uint8_t> got = read_message(c->ssl());
  wire::MessageView v;
  ASSERT_TRUE(decoded(got, wire::Protocol::kV1Client, v));
  ASSERT_EQ(v.type, MessageType::kBuffer);
  // Sequence and send time are the server's: everything else is byte-for-byte v1.
  wire::BufferMeta expected = meta_for(0, 0);
  expected.sequence = v.meta.sequence;
  expected.send_time_ns = v.meta.send_time_ns;
  const std::vector<uint8_t> data = pattern(0, 300);
  EXPECT_EQ(got, wire::encode_buffer(expected, data.data(), data.size()));
  EXPECT_EQ(v.meta.sequence, 0u);
}

TEST_F(V2ServerTest, V2ReceiverGetsWelcomeThenTheStreamInVersion2) {
  ServerConfig cfg = server_config();
  cfg.keyframe_request_interval = std::chrono::milliseconds(750);
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  auto r = connect_receiver(*server);
  ASSERT_TRUE(r);
  publish(*server, 0, 0);
  ASSERT_TRUE(next_caps(*r, kCaps));
  ASSERT_TRUE(next_buffer(*r, 0));
  auto w = r->welcome();
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->version, 2);
  EXPECT_EQ(w->stream, "");
  EXPECT_EQ(w->server.rfind("tlsframe ", 0), 0u) << w->server;
  EXPECT_EQ(w->keyframe_interval_ms, 750u);
}

TEST_F(V2ServerTest, RawV2ClientGetsWelcomeCapsAndBuffersWithVersionByte2) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  wire::MessageView w;
  auto c = connect_v2(server->port(), "", &w);
  ASSERT_TRUE(c);
  EXPECT_EQ(welcome_bytes_[4], 2);
  EXPECT_EQ(w.stream, "");
  EXPECT_EQ(w.keyframe_interval_ms, 1000u);
  EXPECT_EQ(read_message(c->ssl()), wire::encode_caps(kCaps, wire::Version::kV2));
  publish(*server, 0, 0);
  const std::vector<uint8_t> b = read_message(c->ssl());
  wire::MessageView v;
  ASSERT_TRUE(decoded(b, wire::Protocol::kV2Client, v));
  EXPECT_EQ(v.type, MessageType::kBuffer);
  Received rm;
  rm.type = MessageType::kBuffer;
  rm.meta = v.meta;
  rm.storage = std::make_shared<std::vector<uint8_t>>(b);
  rm.data_offset = static_cast<size_t>(v.data - b.data());
  rm.data_size = v.data_size;
  EXPECT_TRUE(data_is(rm, 0, 256));
}

TEST_F(V2ServerTest, AlpnHttpIsRefusedWhenTheBrowserFrontIsOff) {
  ServerConfig cfg = server_config();
  cfg.tls.http = false;  // tlsframesink browser=false
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  const std::string http("\x08http/1.1", 9);
  EXPECT_FALSE(connect_alpn(server->port(), http, /*expect_ok=*/false))
      << "browser front off: http/1.1 is refused";
  EXPECT_NE(last_error_.find("no application protocol"), std::string::npos) << last_error_;
  auto on = start_server(server_config());  // on by default: selected
  ASSERT_TRUE(on);
  EXPECT_TRUE(connect_alpn(on->port(), http));
}

TEST_F(V2ServerTest, AlpnH2OnlyIsRefusedWithNoApplicationProtocol) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  const std::string h2("\x02h2", 3);
  auto c = connect_alpn(server->port(), h2, /*expect_ok=*/false);
  EXPECT_FALSE(c) << "a client offering only h2 must be refused";
  EXPECT_NE(last_error_.find("no application protocol"), std::string::npos) << last_error_;
  // tlsframe/2 among others (h2 first) is selected.
  auto ok = connect_alpn(server->port(), h2 + kV2Offer);
  ASSERT_TRUE(ok);
  const unsigned char *proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ok->ssl(), &proto, &len);
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(proto), len), "tlsframe/2");
}

// ---------------------------------------------------------------------------
// Errors for one client alone

TEST_F(V2ServerTest, V1ClientSendingDataGetsProtocolErrorThenCloseNotify) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  auto c = connect_alpn(server->port(), "");
  ASSERT_TRUE(c);
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return l.added.size() == 1; }));
  EXPECT_EQ(read_message(c->ssl()), wire::encode_caps(kCaps));
  ASSERT_TRUE(c->write("hello?"));
  EXPECT_TRUE(next_error_code(c->ssl(), wire::Protocol::kV1Client, wire::ErrorCode::kProtocol));
  EXPECT_TRUE(clean_tls_close(c->ssl()));
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return l.removed.size() == 1; }));
  EXPECT_EQ(events_.snapshot().removed[0].reason, RemoveReason::kProtocol);
}

TEST_F(V2ServerTest, CloseNotifyFollowsEosForV1AndV2Clients) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  auto v1 = connect_alpn(server->port(), "");
  ASSERT_TRUE(v1);
  auto v2 = connect_v2(server->port(), "");
  ASSERT_TRUE(v2);
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return l.added.size() == 2; }));
  EXPECT_TRUE(server->publish_eos_and_flush(std::chrono::milliseconds(5000)));
  EXPECT_EQ(read_message(v1->ssl()), wire::encode_caps(kCaps));
  EXPECT_EQ(read_message(v1->ssl()), wire::encode_eos());
  EXPECT_TRUE(clean_tls_close(v1->ssl()));
  EXPECT_EQ(read_message(v2->ssl()), wire::encode_caps(kCaps, wire::Version::kV2));
  EXPECT_EQ(read_message(v2->ssl()), wire::encode_eos(wire::Version::kV2));
  EXPECT_TRUE(clean_tls_close(v2->ssl()));
}

TEST_F(V2ServerTest, NoHelloWithinTheHandshakeTimeoutGetsTimeoutError) {
  ServerConfig cfg = server_config();
  cfg.handshake_timeout = std::chrono::milliseconds(400);
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  auto c = connect_alpn(server->port(), kV2Offer);
  ASSERT_TRUE(c);
  const auto t0 = Clock::now();
  EXPECT_TRUE(next_error_code(c->ssl(), wire::Protocol::kV2Client, wire::ErrorCode::kTimeout));
  EXPECT_LT(Clock::now() - t0, 3s);
  EXPECT_TRUE(clean_tls_close(c->ssl()));
  EXPECT_TRUE(events_.snapshot().added.empty()) << "never joined a stream: never reported";
}

TEST_F(V2ServerTest, UnexpectedMessagesAreProtocolErrorsForThatClientAlone) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  auto good = connect_receiver(*server);
  ASSERT_TRUE(good);
  // KEYFRAME_REQUEST before HELLO.
  auto early = connect_alpn(server->port(), kV2Offer);
  ASSERT_TRUE(early);
  ASSERT_TRUE(early->write(as_text(wire::encode_keyframe_request())));
  EXPECT_TRUE(next_error_code(early->ssl(), wire::Protocol::kV2Client, wire::ErrorCode::kProtocol));
  // A second HELLO.
  auto twice = connect_v2(server->port(), "");
  ASSERT_TRUE(twice);
  ASSERT_TRUE(twice->write(hello("")));
  EXPECT_TRUE(next_error_code(twice->ssl(), wire::Protocol::kV2Client, wire::ErrorCode::kProtocol));
  // A server -> client type, and a version 1 header.
  auto wrong = connect_alpn(server->port(), kV2Offer);
  ASSERT_TRUE(wrong);
  ASSERT_TRUE(wrong->write(as_text(wire::encode_eos(wire::Version::kV2))));
  EXPECT_TRUE(next_error_code(wrong->ssl(), wire::Protocol::kV2Client, wire::ErrorCode::kProtocol));
  auto v1hdr = connect_alpn(server->port(), kV2Offer);
  ASSERT_TRUE(v1hdr);
  std::string h = hello("");
  h[4] = 1;
  ASSERT_TRUE(v1hdr->write(h));
  EXPECT_TRUE(next_error_code(v1hdr->ssl(), wire::Protocol::kV2Client, wire::ErrorCode::kProtocol));
  expect_still_receives(*server, *good, 0);
}

// ---------------------------------------------------------------------------
// Named streams on one port

TEST_F(V2ServerTest, NamedStreamsOnOnePortEachClientGetsOnlyItsStream) {
  const uint16_t port = free_port();
  ASSERT_NE(port, 0);
  ServerConfig a = server_config();
  a.port = port;
  a.stream_name = "cam1";
  ServerConfig b = a;
  b.stream_name = "door";
  Events events_b;
  auto cam1 = start_server(a);
  ASSERT_TRUE(cam1);
  auto door_r = Server::start(b, events_b.callbacks());
  ASSERT_TRUE(door_r.ok()) << door_r.error().message;
  auto door = std::move(door_r.value());
  EXPECT_EQ(door->port(), port);
  cam1->publish_caps("video/x-h264, width=(int)1280, height=(int)720, framerate=(fraction)30/1");
  door->publish_caps("image/jpeg, width=(int)640, height=(int)480, framerate=(fraction)15/1");

  std::vector<std::unique_ptr<Receiver>> rx_cam, rx_door;
  for (int i = 0; i < 2; ++i) {
    rx_cam.push_back(connect_receiver(named(port, "cam1")));
    ASSERT_TRUE(rx_cam.back());
    rx_door.push_back(Receiver::start(named(port, "door")));
  }
  ASSERT_TRUE(events_b.wait([](const EventLog &l) { return l.added.size() == 2; }));
  EXPECT_EQ(cam1->num_clients(), 2u);
  EXPECT_EQ(door->num_clients(), 2u);

  publish(*cam1, 1, 0);
  publish(*door, 2, 0);
  auto next_buffer_after_caps = [](Receiver &r, Received &m) {
    for (int i = 0; i < 3; ++i) {
      Error e;
      if (r.next(m, e, Clock::now() + kWait) != NextStatus::kMessage) return false;
      if (m.type == MessageType::kBuffer) return true;
      if (m.type != MessageType::kCaps) return false;
    }
    return false;
  };
  for (auto &r : rx_cam) {
    Received m;
    ASSERT_TRUE(next_buffer_after_caps(*r, m));
    EXPECT_EQ(index_of(m.meta), 1u) << "a cam1 client got another stream's buffer";
    EXPECT_EQ(r->welcome()->stream, "cam1");
  }
  for (auto &r : rx_door) {
    Received m;
    ASSERT_TRUE(next_buffer_after_caps(*r, m));
    EXPECT_EQ(index_of(m.meta), 2u) << "a door client got another stream's buffer";
    EXPECT_EQ(r->welcome()->stream, "door");
  }

  // LIST_STREAMS: both, with a caps summary and their viewers.
  auto list = Receiver::list_streams(receiver_config(port));
  ASSERT_TRUE(list.ok()) << list.error().message;
  std::map<std::string, StreamInfo> by_name;
  for (auto &s : list.value()) by_name[s.name] = s;
  ASSERT_EQ(by_name.size(), 2u);
  EXPECT_EQ(by_name["cam1"].caps, "video/x-h264 1280x720 30/1");
  EXPECT_EQ(by_name["door"].caps, "image/jpeg 640x480 15/1");
  EXPECT_EQ(by_name["cam1"].viewers, 2u);
  EXPECT_EQ(by_name["door"].viewers, 2u);
  EXPECT_EQ(events_.snapshot().removed.size(), 0u) << "a LIST_STREAMS client is never added";

  // No such stream: ERROR 5 naming the streams there are (no default stream here either).
  auto c = connect_alpn(port, kV2Offer);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->write(hello("cam9")));
  std::string why;
  EXPECT_TRUE(
      next_error_code(c->ssl(), wire::Protocol::kV2Client, wire::ErrorCode::kNoSuchStream, &why));
  EXPECT_EQ(why, "no stream named \"cam9\"; streams: cam1, door");
  EXPECT_TRUE(clean_tls_close(c->ssl()));
  auto v1 = connect_alpn(port, "");
  ASSERT_TRUE(v1);
  EXPECT_TRUE(next_error_code(v1->ssl(), wire::Protocol::kV1Client, wire::ErrorCode::kNoSuchStream))
      << "a v1 client on a port without a default stream";

  // One stream's EOS and stop leave the other streaming.
  EXPECT_TRUE(cam1->publish_eos_and_flush(std::chrono::milliseconds(5000)));
  cam1->stop();
  publish(*door, 3, 0);
  for (auto &r : rx_door) EXPECT_TRUE(next_buffer(*r, 3));
  EXPECT_EQ(door->num_clients(), 2u);
  door->stop();
}

TEST_F(V2ServerTest, DuplicateNameAndMismatchedListenerSettingsFailAtStartNamingTheProperty) {
  const uint16_t port = free_port();
  ASSERT_NE(port, 0);
  ServerConfig a = server_config();
  a.port = port;
  a.stream_name = "cam1";
  auto first = start_server(a);
  ASSERT_TRUE(first);

  auto dup = Server::start(a, {});
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().kind, Error::Kind::kSettings);
  EXPECT_NE(dup.error().message.find("stream-name \"cam1\""), std::string::npos)
      << dup.error().message;

  ServerConfig b = a;
  b.stream_name = "cam2";
  b.io_threads = a.io_threads + 1;
  auto threads = Server::start(b, {});
  ASSERT_FALSE(threads.ok());
  EXPECT_NE(threads.error().message.find("io-threads"), std::string::npos)
      << threads.error().message;

  b = a;
  b.stream_name = "cam2";
  b.tls.require_client_cert = true;
  b.tls.ca_file = pki_.ca();
  auto tls = Server::start(b, {});
  ASSERT_FALSE(tls.ok());
  EXPECT_NE(tls.error().message.find("ca-file"), std::string::npos) << tls.error().message;

  b = a;
  b.stream_name = "bad/name";
  auto bad = Server::start(b, {});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("stream-name"), std::string::npos) << bad.error().message;

  // The first is unaffected, and once it stops, the port is free for a new listener.
  auto r = connect_receiver(named(port, "cam1"));
  ASSERT_TRUE(r);
  first->stop();
  b = a;
  b.io_threads = 3;
  auto again = Server::start(b, {});
  EXPECT_TRUE(again.ok()) << again.error().message;
}

TEST_F(V2ServerTest, SixteenStreamsOnOnePortUseIoThreadsThreadsInAll) {
  const uint16_t port = free_port();
  ASSERT_NE(port, 0);
  const size_t before = thread_count();
  std::vector<std::unique_ptr<Server>> servers;
  ServerConfig cfg = server_config();
  cfg.port = port;
  cfg.io_threads = 2;
  for (int i = 0; i < 16; ++i) {
    cfg.stream_name = "s" + std::to_string(i);
    servers.push_back(start_server(cfg));
    ASSERT_TRUE(servers.back());
  }
  const size_t during = thread_count();
  EXPECT_EQ(during - before, cfg.io_threads)
      << before << " threads before, " << during << " with 16 streams";
  // Every stream is reachable on the one port.
  auto r = connect_receiver(named(port, "s15"));
  ASSERT_TRUE(r);
  publish(*servers[15], 7, 0);
  EXPECT_TRUE(next_buffer(*r, 7));
  r.reset();
  servers.clear();
  EXPECT_TRUE(poll_until([&] { return thread_count() == before; }))
      << "the last stop joins the I/O threads";
}

// ---------------------------------------------------------------------------
// KEYFRAME_REQUEST and the rate limit

TEST_F(V2ServerTest, KeyframeRequestFloodIsRateLimitedAndMergedOthersKeepFullRate) {
  ServerConfig cfg = server_config();
  cfg.keyframe_request_interval = std::chrono::milliseconds(300);
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  publish(*server, 0, 0);
  publish(*server, 1, wire::kFlagDeltaUnit);  // a delta-unit stream
  auto good = connect_receiver(*server);
  ASSERT_TRUE(good);
  auto flood = connect_v2(server->port(), "");
  ASSERT_TRUE(flood);
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return l.added.size() == 2; }));
  publish(*server, 2, 0);
  ASSERT_TRUE(next_caps(*good, kCaps));
  ASSERT_TRUE(next_buffer(*good, 2));

  const auto t0 = Clock::now();
  // 1000 requests in one go: far beyond 50/s with bursts of 100.
  std::string burst;
  for (int i = 0; i < 1000; ++i) burst += as_text(wire::encode_keyframe_request());
  (void)flood->write(burst);  // may fail part-way: the server closes after its ERROR
  // The good client keeps getting every buffer meanwhile.
  for (uint64_t i = 3; i < 40; ++i) {
    publish(*server, i, (i % 10 == 0) ? 0u : uint32_t{wire::kFlagDeltaUnit});
    ASSERT_TRUE(next_buffer(*good, i)) << "the well-behaved client lost buffer " << i;
  }
  // The flooder: its stream (whatever was queued), then ERROR RATE_LIMITED.
  bool limited = false;
  for (int i = 0; i < 100 && !limited; ++i) {
    wire::MessageView v;
    const std::vector<uint8_t> m = read_message(flood->ssl());
    if (!decoded(m, wire::Protocol::kV2Client, v)) break;
    if (v.type == MessageType::kError) {
      EXPECT_EQ(v.error_code, static_cast<uint16_t>(wire::ErrorCode::kRateLimited));
      limited = true;
    }
  }
  EXPECT_TRUE(limited) << "no ERROR RATE_LIMITED";
  EXPECT_TRUE(clean_tls_close(flood->ssl()));
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return l.removed.size() == 1; }));
  EXPECT_EQ(events_.snapshot().removed[0].reason, RemoveReason::kProtocol);

  // Upstream events: at most one per interval, however many were asked for.
  // Wait out one more interval so a deferred one would have fired.
  const auto settle = Clock::now() + cfg.keyframe_request_interval * 2;
  events_.wait([](const EventLog &) { return false; }, settle - Clock::now());
  const EventLog log = events_.snapshot();
  // Since the joins (which asked too): the flood's 1000 add nothing beyond that.
  const auto elapsed = Clock::now() - t0 + cfg.keyframe_request_interval;
  const int max_events = 1 + static_cast<int>(elapsed / cfg.keyframe_request_interval);
  EXPECT_LE(log.keyframe_wanted, max_events)
      << "over " << std::chrono::duration<double>(elapsed).count() << " s";
  EXPECT_GE(log.keyframe_wanted, 1) << "the joins asked upstream for a keyframe";
  for (size_t i = 1; i < log.keyframe_times.size(); ++i) {
    EXPECT_GE(log.keyframe_times[i] - log.keyframe_times[i - 1],
              cfg.keyframe_request_interval - 20ms)
        << "two upstream requests within one interval";
  }
  expect_still_receives(*server, *good, 40);
}

// A client whose queue overflows on a delta-unit stream skips to the next
// keyframe, and asks for one through the stream's merged path (not only at
// its join).
TEST_F(V2ServerTest, ClientSkippingOnOverflowAsksForAKeyframe) {
  ServerConfig cfg = server_config();
  cfg.queue_max_buffers = 2;
  cfg.send_buffer_size = 4096;
  cfg.keyframe_request_interval = std::chrono::nanoseconds(0);  // every request goes upstream
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  auto stalled = connect_raw(server->port(), /*rcvbuf=*/4096);  // never reads
  ASSERT_TRUE(stalled);
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return l.added.size() == 1; }));
  publish(*server, 0, 0, 65536);  // the keyframe it starts on
  const int before = events_.snapshot().keyframe_wanted;
  bool asked = false;
  for (uint64_t i = 1; i < 2000 && !asked; ++i) {
    publish(*server, i, wire::kFlagDeltaUnit, 65536);
    asked = events_.wait([&](const EventLog &l) { return l.keyframe_wanted > before; }, 5ms);
  }
  EXPECT_TRUE(asked) << "the overflowing client never asked for a keyframe";
  auto st = server->client_stats();
  ASSERT_EQ(st.size(), 1u);
  EXPECT_GT(st[0].frames_dropped, 0u);
}

}  // namespace
}  // namespace tlsframe
