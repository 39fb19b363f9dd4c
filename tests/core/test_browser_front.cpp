// The browser front over loopback TLS (ALPN http/1.1), without GStreamer or a
// browser: a one-shot response, a WebSocket client that counts as a client and
// gets the caps as text and each buffer as the v2 message, and hostile input
// (slowloris, oversized headers, a bad upgrade, unmasked and oversized client
// frames) that closes that connection alone while a native client keeps full
// rate; authorization (authorized-clients, accept_client) decided before the
// upgrade: a refused browser gets 403; renditions over the WebSocket
// (RENDITION_REQUEST in, RENDITION notices out, /streams.json's list). The
// real-browser tests are tests/browser/.
#include <openssl/err.h>
#include <poll.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/server_fixture.h"
#include "core/websocket.h"
#include "core/wire_v2.h"

namespace tlsframe {
namespace {

const std::string kHttpOffer("\x08http/1.1", 9);

class BrowserFrontTest : public ServerReceiverTest {
 protected:
  void TearDown() override {
    if (ctx_) SSL_CTX_free(ctx_);
  }

  std::unique_ptr<test::RawTlsClient> connect_http(uint16_t port) {
    if (!ctx_) {
      ctx_ = SSL_CTX_new(TLS_client_method());
      SSL_CTX_load_verify_locations(ctx_, pki_.ca().c_str(), nullptr);
      SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
      SSL_CTX_set_alpn_protos(ctx_, reinterpret_cast<const uint8_t *>(kHttpOffer.data()),
                              static_cast<unsigned>(kHttpOffer.size()));
    }
    const test::RawTlsOptions o = options_for(ctx_);
    auto c = std::make_unique<test::RawTlsClient>();
    if (!c->connect(port, o)) {
      ADD_FAILURE() << "TLS client: " << c->error();
      return nullptr;
    }
    return c;
  }

  // Everything until the server closes (close_notify or EOF), at most `max` bytes.
  static std::string read_to_close(SSL *ssl, size_t max = 1 << 20) {
    std::string out;
    char buf[4096];
    for (int i = 0; i < 10000 && out.size() < max; ++i) {
      const int n = SSL_read(ssl, buf, sizeof buf);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }
  static bool read_exact(SSL *ssl, uint8_t *out, size_t size) {
    size_t got = 0;
    for (int i = 0; i < 10000 && got < size; ++i) {
      const int n = SSL_read(ssl, out + got, static_cast<int>(size - got));
      if (n <= 0) return false;
      got += static_cast<size_t>(n);
    }
    return got == size;
  }
  // One server frame: its opcode and payload.
  static bool read_frame(SSL *ssl, uint8_t &op, std::vector<uint8_t> &payload) {
    uint8_t h[2];
    if (!read_exact(ssl, h, 2)) return false;
    op = h[0] & 0x0F;
    EXPECT_EQ(h[0] & 0x80, 0x80) << "FIN";
    EXPECT_EQ(h[1] & 0x80, 0) << "server frames are not masked";
    uint64_t len = h[1] & 0x7F;
    if (len >= 126) {
      uint8_t ext[8];
      const size_t n = len == 126 ? 2 : 8;
      if (!read_exact(ssl, ext, n)) return false;
      len = 0;
      for (size_t i = 0; i < n; ++i) len = (len << 8) | ext[i];
    }
    payload.resize(len);
    return len == 0 || read_exact(ssl, payload.data(), len);
  }
  // Sends the upgrade and reads the response head (into *head_out when
  // given); true on 101.
  static bool upgrade(test::RawTlsClient &c, uint16_t port, const std::string &origin_host = "",
                      std::string *head_out = nullptr, const std::string &path = "/watch/") {
    const std::string host = "127.0.0.1:" + std::to_string(port);
    const std::string origin = "https://" + (origin_host.empty() ? host : origin_host);
    if (!c.write("GET " + path + " HTTP/1.1\r\nHost: " + host +
                 "\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: " +
                 origin + "\r\n\r\n")) {
      return false;
    }
    std::string head;
    char ch;
    for (int i = 0; i < 8192 && head.find("\r\n\r\n") == std::string::npos; ++i) {
      if (SSL_read(c.ssl(), &ch, 1) != 1) break;
      head += ch;
    }
    if (head_out) *head_out = head;
    return head.rfind("HTTP/1.1 101 ", 0) == 0;
  }
  static std::string masked(uint8_t b0, const std::vector<uint8_t> &payload) {
    std::string f;
    f += static_cast<char>(b0);
    f += static_cast<char>(0x80 | payload.size());
    const char key[4] = {1, 2, 3, 4};
    f.append(key, 4);
    for (size_t i = 0; i < payload.size(); ++i) f += static_cast<char>(payload[i] ^ key[i % 4]);
    return f;
  }

  // How every raw client here connects: to 127.0.0.1, with ctx.
  static test::RawTlsOptions options_for(SSL_CTX *ctx) {
    test::RawTlsOptions o;
    o.verify_name = "127.0.0.1";
    o.io_timeout = std::chrono::seconds(5);
    o.shared_ctx = ctx;
    return o;
  }

  // A client context offering http/1.1 with the fixture's client1 certificate.
  SSL_CTX *client_cert_ctx() {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return nullptr;
    SSL_CTX_load_verify_locations(ctx, pki_.ca().c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const uint8_t *>(kHttpOffer.data()),
                            static_cast<unsigned>(kHttpOffer.size()));
    if (SSL_CTX_use_certificate_chain_file(ctx, pki_.client_cert().c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, pki_.client_key().c_str(), SSL_FILETYPE_PEM) != 1) {
      SSL_CTX_free(ctx);
      return nullptr;
    }
    return ctx;
  }
  // A refused browser's answer: `403 Forbidden` (head already read) with the
  // front's security headers, no 101, then nothing more before the close.
  static void expect_forbidden_response(test::RawTlsClient &c, const std::string &head) {
    EXPECT_EQ(head.rfind("HTTP/1.1 403 ", 0), 0u) << head;
    EXPECT_EQ(head.find(" 101 "), std::string::npos) << head;
    EXPECT_NE(head.find("\r\nX-Content-Type-Options: nosniff\r\n"), std::string::npos) << head;
    EXPECT_NE(head.find("\r\nCache-Control: no-store\r\n"), std::string::npos) << head;
    EXPECT_NE(head.find("\r\nContent-Security-Policy: "), std::string::npos) << head;
    size_t length = 0;
    const size_t at = head.find("\r\nContent-Length: ");
    if (at != std::string::npos) length = std::strtoul(head.c_str() + at + 18, nullptr, 10);
    const std::string rest = read_to_close(c.ssl());
    EXPECT_EQ(rest.size(), length) << "the error body, then close: no frame of the stream";
    EXPECT_EQ(rest.find("TLSF"), std::string::npos);
  }

  SSL_CTX *ctx_ = nullptr;
};

TEST_F(BrowserFrontTest, AOneShotResponseCarriesTheSecurityHeadersThenCloses) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps("image/jpeg, width=(int)320, height=(int)240");
  auto c = connect_http(server->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->write("GET /streams.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  const std::string r = read_to_close(c->ssl());
  EXPECT_EQ(r.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("\r\nX-Content-Type-Options: nosniff\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nCache-Control: no-store\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nContent-Security-Policy: "), std::string::npos);
  EXPECT_NE(r.find("{\"streams\":[{\"name\":\"\",\"caps\":\"image/jpeg 320x240\""),
            std::string::npos)
      << r;
  EXPECT_EQ(SSL_get_shutdown(c->ssl()) & SSL_RECEIVED_SHUTDOWN, SSL_RECEIVED_SHUTDOWN)
      << "close_notify after the response";
  EXPECT_TRUE(events_.snapshot().added.empty()) << "a page request is not a client";
}

TEST_F(BrowserFrontTest, AWebSocketClientGetsCapsAsTextAndBuffersAsV2Messages) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  auto c = connect_http(server->port());
  ASSERT_TRUE(c);
  ASSERT_TRUE(upgrade(*c, server->port()));
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return l.added.size() == 1; }));
  EXPECT_EQ(server->stats().clients, 1u) << "counts in num-clients";
  uint8_t op = 0;
  std::vector<uint8_t> p;
  ASSERT_TRUE(read_frame(c->ssl(), op, p));
  EXPECT_EQ(op, 0x1);
  EXPECT_EQ(std::string(p.begin(), p.end()), kCaps);
  publish(*server, 0, 0, 3000);  // a keyframe, 3000 bytes: a 16-bit frame length
  ASSERT_TRUE(read_frame(c->ssl(), op, p));
  EXPECT_EQ(op, 0x2);
  const std::vector<uint8_t> data = pattern(0, 3000);
  ASSERT_EQ(p.size(), wire::kHeaderSize + wire::kBufferMetaSize + data.size());
  EXPECT_EQ(p[4], 2) << "version 2";
  EXPECT_EQ(p[5], static_cast<uint8_t>(MessageType::kBuffer));
  EXPECT_TRUE(std::equal(data.begin(), data.end(), p.begin() + 60));
  // A KEYFRAME_REQUEST is read; a RENDITION_REQUEST on a stream without
  // renditions is ignored (no notice, still connected); a ping is answered.
  ASSERT_TRUE(c->write(masked(0x82, wire::encode_keyframe_request())));
  ASSERT_TRUE(c->write(masked(0x82, wire::encode_rendition_request("low"))));
  ASSERT_TRUE(c->write(masked(0x89, {7, 7})));
  ASSERT_TRUE(read_frame(c->ssl(), op, p));
  EXPECT_EQ(op, 0xA);
  EXPECT_EQ(p, (std::vector<uint8_t>{7, 7}));
  // EOS: the v2 EOS, then a close frame, then close_notify.
  ASSERT_TRUE(server->publish_eos_and_flush(std::chrono::milliseconds(2000)));
  ASSERT_TRUE(read_frame(c->ssl(), op, p));
  EXPECT_EQ(p, wire::encode_eos(wire::Version::kV2));
  ASSERT_TRUE(read_frame(c->ssl(), op, p));
  EXPECT_EQ(op, 0x8);
  EXPECT_EQ((p[0] << 8) | p[1], ws::kCloseNormal);
}

TEST_F(BrowserFrontTest, HostileInputClosesThatConnectionAloneWhileANativeClientKeepsFullRate) {
  ServerConfig cfg = server_config();
  cfg.handshake_timeout = std::chrono::milliseconds(600);
  auto server = start_server(cfg);
  ASSERT_TRUE(server);
  server->publish_caps(kCaps);
  auto native = connect_receiver(*server);
  ASSERT_TRUE(native);
  ASSERT_TRUE(next_caps(*native, kCaps));
  uint64_t index = 0;
  // Publishes one buffer and checks the native client gets it: between each step.
  auto native_keeps_up = [&] {
    publish(*server, index, 0);
    EXPECT_TRUE(next_buffer(*native, index)) << "the native client stopped receiving";
    index++;
  };
  native_keeps_up();

  {  // Slowloris: a header byte every 50 ms, never finishing: dropped at the handshake timeout.
    auto c = connect_http(server->port());
    ASSERT_TRUE(c);
    const auto t0 = Clock::now();
    ASSERT_TRUE(c->write("GET / HTTP/1.1\r\nX-Slow: "));
    bool closed = false;
    for (int i = 0; i < 200 && !closed; ++i) {
      closed = !c->write("a");
      pollfd p{c->fd(), POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) closed = true;  // the server's answer (408) or its close
      native_keeps_up();
    }
    EXPECT_TRUE(closed);
    const std::string r = read_to_close(c->ssl());
    EXPECT_EQ(r.rfind("HTTP/1.1 408 ", 0), 0u) << r;
    EXPECT_LT(Clock::now() - t0, 3s);
  }
  {  // Oversized headers.
    auto c = connect_http(server->port());
    ASSERT_TRUE(c);
    c->write("GET / HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n");
    const std::string r = read_to_close(c->ssl());
    EXPECT_EQ(r.rfind("HTTP/1.1 431 ", 0), 0u) << r.substr(0, 100);
    native_keeps_up();
  }
  {  // A cross-origin upgrade.
    auto c = connect_http(server->port());
    ASSERT_TRUE(c);
    EXPECT_FALSE(upgrade(*c, server->port(), "evil.example"));
    EXPECT_NE(read_to_close(c->ssl()).find("cross-origin"), std::string::npos) << "a 403, closed";
    native_keeps_up();
  }
  // Unmasked, then oversized client frames: a close frame (1002, 1009), then the close.
  for (const auto &[frame, code] : std::vector<std::pair<std::string, uint16_t>>{
           {std::string("\x82\x02\x01\x02", 4), ws::kCloseProtocol},
           {std::string("\x82\xFE\x10\x00\x01\x02\x03\x04", 8) + std::string(4096, 'x'),
            ws::kCloseTooBig}}) {
    auto c = connect_http(server->port());
    ASSERT_TRUE(c);
    ASSERT_TRUE(upgrade(*c, server->port()));
    c->write(frame);
    uint8_t op = 0;
    std::vector<uint8_t> p;
    bool got_close = false;
    for (int i = 0; i < 100 && !got_close && read_frame(c->ssl(), op, p); ++i) {
      got_close = op == 0x8;  // skips the caps and buffers sent before
    }
    ASSERT_TRUE(got_close);
    EXPECT_EQ((p[0] << 8) | p[1], code);
    read_to_close(c->ssl());
    native_keeps_up();
  }
  EXPECT_EQ(server->client_stats().size(), 1u) << "only the native client is left";
  for (int i = 0; i < 30; ++i) native_keeps_up();
  EXPECT_EQ(server->stats().frames_dropped, 0u) << "nothing dropped for the native client";
}


// Issue 12's rules hold for a browser as for a native client: under
// require-client-cert and authorized-clients, a browser whose certificate is
// not on the list is refused before its upgrade: `403 Forbidden` with the
// front's security headers, never a 101 nor a frame of the stream, then
// close_notify; it is reported forbidden, never added. One that is on the
// list gets the 101 and streams.
TEST_F(BrowserFrontTest, AuthorizedClientsApplyToABrowserClient) {
  for (const bool allowed : {false, true}) {
    SCOPED_TRACE(allowed ? "CN=client1 allowed" : "only CN=someone-else allowed");
    ServerConfig cfg = server_config();
    cfg.tls.ca_file = pki_.ca();
    cfg.tls.require_client_cert = true;
    cfg.authorized_clients = {allowed ? "CN=client1" : "CN=someone-else"};
    auto server = start_server(cfg);
    ASSERT_TRUE(server);
    server->publish_caps("image/jpeg, width=(int)320, height=(int)240");
    SSL_CTX *ctx = client_cert_ctx();
    ASSERT_NE(ctx, nullptr);
    const test::RawTlsOptions o = options_for(ctx);
    const size_t added_before = events_.snapshot().added.size();
    const size_t removed_before = events_.snapshot().removed.size();
    test::RawTlsClient c;
    ASSERT_TRUE(c.connect(server->port(), o)) << c.error();
    std::string head;
    const bool upgraded = upgrade(c, server->port(), "", &head);
    if (allowed) {
      ASSERT_TRUE(upgraded) << head;
      uint8_t op = 0;
      std::vector<uint8_t> payload;
      ASSERT_TRUE(read_frame(c.ssl(), op, payload));
      EXPECT_EQ(op, 0x1) << "the caps as a text message";
      ASSERT_TRUE(events_.wait([&](const EventLog &l) { return l.added.size() > added_before; }));
      const std::string subject = events_.snapshot().added[added_before].subject;
      EXPECT_NE(subject.find("CN=client1"), std::string::npos) << subject;
    } else {
      expect_forbidden_response(c, head);
      ASSERT_TRUE(
          events_.wait([&](const EventLog &l) { return l.removed.size() > removed_before; }));
      const EventLog l = events_.snapshot();
      EXPECT_EQ(l.removed[removed_before].reason, RemoveReason::kForbidden)
          << l.removed[removed_before].error;
      EXPECT_EQ(l.added.size(), added_before) << "a refused browser is never added";
    }
    c.close_clean();
    // The multipart JPEG route too: 403 (refused) or the 200 multipart head.
    test::RawTlsClient m;
    ASSERT_TRUE(m.connect(server->port(), o)) << m.error();
    ASSERT_TRUE(m.write("GET /mjpeg/ HTTP/1.1\r\nHost: 127.0.0.1:" +
                        std::to_string(server->port()) + "\r\n\r\n"));
    std::string mhead;
    char ch;
    for (int i = 0; i < 8192 && mhead.find("\r\n\r\n") == std::string::npos; ++i) {
      if (SSL_read(m.ssl(), &ch, 1) != 1) break;
      mhead += ch;
    }
    if (allowed) {
      EXPECT_EQ(mhead.rfind("HTTP/1.1 200 ", 0), 0u) << mhead;
      EXPECT_NE(mhead.find("multipart/x-mixed-replace"), std::string::npos) << mhead;
    } else {
      expect_forbidden_response(m, mhead);
    }
    m.close_clean();
    server.reset();
    SSL_CTX_free(ctx);
  }
}

// The application's accept_client answer (asynchronous) decides a browser's
// upgrade too: nothing is answered while it is awaited; an accept then gets
// the 101 and the caps, a refusal `403 Forbidden` and nothing of the stream.
TEST_F(BrowserFrontTest, TheUpgradeWaitsForTheAcceptClientAnswer) {
  std::mutex lock;
  std::condition_variable asked;
  std::vector<AcceptDecision> pending;
  ServerCallbacks cb = events_.callbacks();
  cb.accept_client = [&](const AcceptRequest &, AcceptDecision decide) {
    {
      std::lock_guard<std::mutex> g(lock);
      pending.push_back(std::move(decide));
    }
    asked.notify_all();
    return true;  // answered by the test below
  };
  ServerConfig cfg = server_config();
  cfg.tls.ca_file = pki_.ca();
  cfg.tls.require_client_cert = true;
  auto started = Server::start(cfg, cb);
  ASSERT_TRUE(started.ok()) << started.error().message;
  auto server = std::move(started.value());
  server->publish_caps("image/jpeg, width=(int)320, height=(int)240");
  SSL_CTX *ctx = client_cert_ctx();
  ASSERT_NE(ctx, nullptr);
  for (const bool accept : {true, false}) {
    SCOPED_TRACE(accept ? "accepted" : "refused");
    const test::RawTlsOptions o = options_for(ctx);
    const size_t added_before = events_.snapshot().added.size();
    const size_t removed_before = events_.snapshot().removed.size();
    test::RawTlsClient c;
    ASSERT_TRUE(c.connect(server->port(), o)) << c.error();
    const std::string host = "127.0.0.1:" + std::to_string(server->port());
    ASSERT_TRUE(c.write("GET /watch/ HTTP/1.1\r\nHost: " + host +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://" +
                        host + "\r\n\r\n"));
    {
      std::unique_lock<std::mutex> g(lock);
      ASSERT_TRUE(asked.wait_for(g, kWait, [&] { return !pending.empty(); }))
          << "accept_client was not asked";
    }
    // Asked, not answered: nothing has been sent on the socket (a snapshot;
    // the refused case below proves the order: its first bytes are the 403).
    pollfd pfd{c.fd(), POLLIN, 0};
    EXPECT_EQ(poll(&pfd, 1, 0), 0) << "a response before the application answered";
    EXPECT_EQ(events_.snapshot().added.size(), added_before);
    AcceptDecision decide;
    {
      std::lock_guard<std::mutex> g(lock);
      decide = std::move(pending.front());
      pending.clear();
    }
    std::thread answer([decide, accept] { decide(accept); });
    answer.join();
    std::string head;
    char ch;
    for (int i = 0; i < 8192 && head.find("\r\n\r\n") == std::string::npos; ++i) {
      if (SSL_read(c.ssl(), &ch, 1) != 1) break;
      head += ch;
    }
    if (accept) {
      ASSERT_EQ(head.rfind("HTTP/1.1 101 ", 0), 0u) << head;
      uint8_t op = 0;
      std::vector<uint8_t> payload;
      ASSERT_TRUE(read_frame(c.ssl(), op, payload));
      EXPECT_EQ(op, 0x1) << "the caps as a text message";
      EXPECT_TRUE(events_.wait([&](const EventLog &l) { return l.added.size() > added_before; }));
    } else {
      expect_forbidden_response(c, head);
      // (The accepted client of the first round may be reported removed after it.)
      EXPECT_TRUE(events_.wait([&](const EventLog &l) {
        return std::any_of(l.removed.begin() + static_cast<std::ptrdiff_t>(removed_before),
                           l.removed.end(),
                           [](const auto &r) { return r.reason == RemoveReason::kForbidden; });
      })) << "reported removed with status forbidden";
      EXPECT_EQ(events_.snapshot().added.size(), added_before) << "never added";
    }
    c.close_clean();
  }
  server->stop();
  SSL_CTX_free(ctx);
}

// Renditions (issue 13) over the WebSocket: before the first caps the
// browser gets a RENDITION notice (binary, the v2 message with the list of
// renditions); a RENDITION_REQUEST (binary, like KEYFRAME_REQUEST) switches
// at the target's keyframe: the notice, the target's caps as text, the
// keyframe. /streams.json lists the renditions with their viewers. A
// malformed RENDITION_REQUEST closes that connection alone.
TEST_F(BrowserFrontTest, AWebSocketClientSwitchesRenditionsWithANoticeBeforeTheCaps) {
  constexpr const char *kHighCaps = "video/x-h264, width=(int)1280, height=(int)720";
  constexpr const char *kLowCaps = "video/x-h264, width=(int)640, height=(int)360";
  constexpr uint64_t kLow = 1000;  // the low rendition's buffer indexes
  uint16_t port = 0;
  {
    TcpSocket probe;
    ASSERT_TRUE(probe.bind_any(false));
    port = probe.port();
  }
  ServerConfig hc = server_config();
  hc.port = port;
  hc.stream_name = "cam";
  hc.rendition = "high";
  ServerConfig lc = hc;
  lc.rendition = "low";
  std::atomic<int> low_keyframes{0};
  ServerCallbacks low_cb;
  low_cb.keyframe_wanted = [&] { low_keyframes++; };
  auto high = start_server(hc);
  ASSERT_TRUE(high);
  auto lr = Server::start(lc, low_cb);
  ASSERT_TRUE(lr.ok()) << lr.error().message;
  std::unique_ptr<Server> low = std::move(lr.value());
  high->publish_caps(kHighCaps);
  low->publish_caps(kLowCaps);

  // The v2 RENDITION in a binary frame: its rendition, reason and list.
  struct Notice {
    std::string rendition, reason, renditions;
  };
  auto read_notice = [](SSL *ssl, Notice &n) -> ::testing::AssertionResult {
    uint8_t op = 0;
    std::vector<uint8_t> p;
    if (!read_frame(ssl, op, p)) return ::testing::AssertionFailure() << "no frame";
    if (op != 0x2) return ::testing::AssertionFailure() << "opcode " << int(op);
    wire::MessageView view;
    const wire::DecodeResult r =
        wire::decode(p.data(), p.size(), 4096, wire::Protocol::kV2Client, view);
    if (r.status != wire::DecodeStatus::kMessage || r.size != p.size() ||
        view.type != MessageType::kRendition) {
      return ::testing::AssertionFailure() << "not one RENDITION: " << r.error;
    }
    n.rendition = std::string(view.rendition);
    n.reason = std::string(view.reason);
    n.renditions = std::string(view.fields.find("renditions").value_or(""));
    return ::testing::AssertionSuccess();
  };
  auto read_text = [](SSL *ssl) {
    uint8_t op = 0;
    std::vector<uint8_t> p;
    if (!read_frame(ssl, op, p) || op != 0x1) return std::string("(not a text message)");
    return std::string(p.begin(), p.end());
  };
  auto read_buffer = [](SSL *ssl, uint64_t index) -> ::testing::AssertionResult {
    uint8_t op = 0;
    std::vector<uint8_t> p;
    if (!read_frame(ssl, op, p) || op != 0x2) return ::testing::AssertionFailure() << "no binary";
    const std::vector<uint8_t> data = pattern(index, 256);
    if (p.size() != wire::kHeaderSize + wire::kBufferMetaSize + data.size() ||
        p[5] != static_cast<uint8_t>(MessageType::kBuffer) ||
        !std::equal(data.begin(), data.end(), p.begin() + 60)) {
      return ::testing::AssertionFailure()
             << "not buffer " << index << " (" << p.size() << " bytes, type "
             << int(p.size() > 5 ? p[5] : 0) << ")";
    }
    return ::testing::AssertionSuccess();
  };

  auto c = connect_http(port);
  ASSERT_TRUE(c);
  ASSERT_TRUE(upgrade(*c, port, "", nullptr, "/watch/cam"));
  Notice n;
  ASSERT_TRUE(read_notice(c->ssl(), n));
  EXPECT_EQ(n.rendition, "high") << "automatic: the largest picture first";
  EXPECT_EQ(n.reason, "auto");
  EXPECT_EQ(n.renditions, "high,low");
  // The caps, with the first buffer (the notice is queued: the queue sends
  // caps ahead of a buffer only to an idle client), then the buffer.
  publish(*high, 0, 0);
  EXPECT_EQ(read_text(c->ssl()), kHighCaps);
  ASSERT_TRUE(read_buffer(c->ssl(), 0));

  {  // /streams.json: the renditions, highest first, with their viewers.
    auto j = connect_http(port);
    ASSERT_TRUE(j);
    ASSERT_TRUE(j->write("GET /streams.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    const std::string r = read_to_close(j->ssl());
    EXPECT_NE(r.find("\"renditions\":[{\"name\":\"high\",\"viewers\":1},"
                     "{\"name\":\"low\",\"viewers\":0}]"),
              std::string::npos)
        << r;
  }

  // The switch: asked for, at the low rendition's keyframe (a rendition with
  // delta units: a keyframe is asked for).
  publish(*low, kLow, 0);
  publish(*low, kLow + 1, wire::kFlagDeltaUnit);
  ASSERT_TRUE(c->write(masked(0x82, wire::encode_rendition_request("low"))));
  EXPECT_TRUE(poll_until([&] { return low_keyframes.load() > 0; }))
      << "the target rendition was not asked for a keyframe";
  publish(*high, 1, wire::kFlagDeltaUnit);
  ASSERT_TRUE(read_buffer(c->ssl(), 1)) << "the current rendition until the target's keyframe";
  publish(*low, kLow + 2, 0);
  ASSERT_TRUE(read_notice(c->ssl(), n));
  EXPECT_EQ(n.rendition, "low");
  EXPECT_EQ(n.reason, "requested");
  EXPECT_NE(n.renditions.find("low"), std::string::npos) << n.renditions;
  EXPECT_EQ(read_text(c->ssl()), kLowCaps);
  ASSERT_TRUE(read_buffer(c->ssl(), kLow + 2));
  EXPECT_TRUE(poll_until([&] { return low->stats().clients == 1 && high->stats().clients == 0; }));

  // A malformed RENDITION_REQUEST (an invalid name: "bad,name") closes that
  // connection alone (policy violation); the first client keeps streaming.
  auto bad = connect_http(port);
  ASSERT_TRUE(bad);
  ASSERT_TRUE(upgrade(*bad, port, "", nullptr, "/watch/cam"));
  std::vector<uint8_t> malformed = {0x54, 0x4C, 0x53, 0x46, 2, 10, 0, 0, 0, 0, 0, 20, 9};
  for (char ch : std::string("rendition")) malformed.push_back(static_cast<uint8_t>(ch));
  malformed.insert(malformed.end(), {0, 8});
  for (char ch : std::string("bad,name")) malformed.push_back(static_cast<uint8_t>(ch));
  ASSERT_TRUE(bad->write(masked(0x82, malformed)));
  uint8_t op = 0;
  std::vector<uint8_t> p;
  bool got_close = false;
  for (int i = 0; i < 100 && !got_close && read_frame(bad->ssl(), op, p); ++i) {
    got_close = op == 0x8;  // skips the notice, caps and buffers sent before
  }
  ASSERT_TRUE(got_close);
  EXPECT_EQ((p[0] << 8) | p[1], ws::kClosePolicy);
  read_to_close(bad->ssl());
  EXPECT_TRUE(events_.wait([](const EventLog &l) {
    return std::any_of(l.removed.begin(), l.removed.end(),
                       [](const auto &r) { return r.reason == RemoveReason::kProtocol; });
  }));
  publish(*low, kLow + 3, wire::kFlagDeltaUnit);
  EXPECT_TRUE(read_buffer(c->ssl(), kLow + 3)) << "the other browser keeps streaming";
  EXPECT_EQ(low->stats().clients, 1u);
}

}  // namespace
}  // namespace tlsframe
