// Core server tests (fixture: server_fixture.h). Who may watch (issue 12):
// CRLs (refused at connect, revoked while watching and removed within 1 s of
// the reload while another client keeps every buffer), authorized-clients
// per stream on one port, and the accept_client callback answered later,
// never, or on no I/O thread. Real TLS on loopback, certificates and CRLs
// made at test time.
#include <cinttypes>

#include "core/certgen.h"
#include "core/server_fixture.h"
#include "core/tls_context.h"
#include "core/wire_v2.h"

namespace tlsframe {
namespace {

// A port free now on 127.0.0.1, for servers that must share a fixed port.
uint16_t free_port() {
  TcpSocket s;
  if (!s.bind_any(false)) return 0;
  return s.port();
}

class AuthorizationTest : public ServerReceiverTest {
 protected:
  void SetUp() override {
    ServerReceiverTest::SetUp();
    ASSERT_TRUE(pki_.issue_client("victim", "victim"));
    ASSERT_TRUE(pki_.issue_client("viewer", "viewer", {"door-viewer.example"}));
    ASSERT_TRUE(pki_.issue_client("other", "other"));
    ASSERT_TRUE(pki_.write_crl("empty.crl", {}));
  }

  // Mutual TLS with ca and, when given, a CRL.
  ServerConfig mtls_config(const std::string &crl = "") const {
    ServerConfig c = server_config();
    c.tls.ca_file = pki_.ca();
    c.tls.require_client_cert = true;
    c.tls.crl_file = crl;
    return c;
  }

  // A receiver presenting <stem>.pem for `stream`.
  ReceiverConfig client(uint16_t port, const std::string &stem, const std::string &stream = "") {
    ReceiverConfig c = receiver_config(port);
    c.tls.cert_file = pki_.path(stem + ".pem");
    c.tls.key_file = pki_.path(stem + ".key");
    c.stream_name = stream;
    return c;
  }

  // The next ERROR the receiver gets (skipping nothing): its code.
  ::testing::AssertionResult next_error_code(Receiver &r, wire::ErrorCode code,
                                             std::string *text = nullptr) {
    Received m;
    if (auto ok = next_of_type(r, MessageType::kError, m); !ok) return ok;
    if (m.error_code != static_cast<uint16_t>(code)) {
      return ::testing::AssertionFailure() << "ERROR code " << m.error_code << " ("
                                           << m.error_text << "), expected "
                                           << static_cast<int>(code);
    }
    if (text) *text = m.error_text;
    return ::testing::AssertionSuccess();
  }

  // Waits for the removal of a client that was never added (refused by
  // authorization) from address-less events: the n-th removal with `reason`.
  bool wait_removals(RemoveReason reason, size_t n) {
    return events_.wait([&](const EventLog &l) {
      return static_cast<size_t>(std::count_if(l.removed.begin(), l.removed.end(),
                                               [&](const RemovedEvent &e) {
                                                 return e.reason == reason;
                                               })) >= n;
    });
  }
};

std::string error_text(const Error &e) {
  return e.message + " (" + e.detail + ")";
}

TEST_F(AuthorizationTest, CrlSettingsAreCheckedAtStartNamingTheProperty) {
  ServerConfig c = server_config();
  c.tls.crl_file = pki_.path("empty.crl");
  auto r = Server::start(c, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("crl-file needs ca-file"), std::string::npos)
      << r.error().message;

  c = mtls_config(pki_.path("missing.crl"));
  r = Server::start(c, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("crl-file"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("missing.crl"), std::string::npos) << r.error().message;

  c = mtls_config(pki_.client_cert());  // a certificate, not a CRL
  r = Server::start(c, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no PEM \"X509 CRL\" block"), std::string::npos)
      << r.error().message;

  EXPECT_TRUE(tls::expired_crls(pki_.path("empty.crl")).empty());
  ASSERT_TRUE(pki_.write_crl("old.crl", {}, -3600));
  const std::vector<std::string> expired = tls::expired_crls(pki_.path("old.crl"));
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_NE(expired[0].find("/CN=tlsframe test CA"), std::string::npos) << expired[0];
  EXPECT_NE(expired[0].find("next update has passed"), std::string::npos) << expired[0];
}

TEST_F(AuthorizationTest, RevokedClientIsRefusedAtConnectOthersServed) {
  ASSERT_TRUE(pki_.write_crl("revoked.crl", {pki_.path("victim.pem")}));
  auto server = start_server(mtls_config(pki_.path("revoked.crl")));
  ASSERT_TRUE(server);

  auto good = connect_receiver(client(server->port(), "viewer"));
  ASSERT_TRUE(good);

  auto revoked = Receiver::start(client(server->port(), "victim"));
  Error e;
  ASSERT_TRUE(next_error(*revoked, e));
  // TLS 1.3: the client's handshake completes before the server has checked
  // its certificate; the server's certificate_revoked alert ends its first read.
  EXPECT_EQ(e.kind, Error::Kind::kPeerRefused) << error_text(e);
  EXPECT_NE(e.message.find("revoked"), std::string::npos) << error_text(e);
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return !l.failed.empty(); }));
  const Error server_side = events_.snapshot().failed.front().error;
  EXPECT_EQ(server_side.kind, Error::Kind::kVerify) << error_text(server_side);
  EXPECT_NE(server_side.message.find("certificate revoked"), std::string::npos)
      << error_text(server_side);
  EXPECT_EQ(events_.snapshot().added.size(), 1u);
  expect_still_receives(*server, *good, 1);
}

TEST_F(AuthorizationTest, ExpiredCrlRefusesThatCasClients) {
  ASSERT_TRUE(pki_.write_crl("old.crl", {}, -3600));
  auto server = start_server(mtls_config(pki_.path("old.crl")));
  ASSERT_TRUE(server);
  auto r = Receiver::start(client(server->port(), "viewer"));
  Error e;
  ASSERT_TRUE(next_error(*r, e));
  ASSERT_TRUE(events_.wait([](const EventLog &l) { return !l.failed.empty(); }));
  const Error server_side = events_.snapshot().failed.front().error;
  EXPECT_NE(server_side.message.find("CRL has expired"), std::string::npos)
      << error_text(server_side);
  EXPECT_NE(server_side.message.find("load a current CRL"), std::string::npos)
      << error_text(server_side);
}

// The reload revokes one watching client: it gets ERROR REVOKED and is
// reported removed (revoked) within 1 s; the other gets every buffer
// published meanwhile, in order (full rate: nothing dropped).
TEST_F(AuthorizationTest, ClientRevokedWhileWatchingIsRemovedWithinOneSecond) {
  ServerConfig config = mtls_config(pki_.path("empty.crl"));
  auto server = start_server(config);
  ASSERT_TRUE(server);
  uint64_t victim_id = 0, good_id = 0;
  auto victim = connect_receiver(client(server->port(), "victim"), &victim_id);
  auto good = connect_receiver(client(server->port(), "viewer"), &good_id);
  ASSERT_TRUE(victim && good);
  server->publish_caps(kCaps);
  ASSERT_TRUE(next_caps(*victim, kCaps));
  ASSERT_TRUE(next_caps(*good, kCaps));

  // A publisher at ~200 buffers/s throughout; the good receiver must see every one.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> published{0};
  std::thread publisher([&] {
    for (uint64_t i = 0; i < 2000 && !stop.load(); ++i) {
      publish(*server, i, 0);
      published = i + 1;
      std::this_thread::sleep_for(5ms);  // the publishing rate, not a synchronisation
    }
  });
  ASSERT_TRUE(next_buffer(*good, 0));

  ASSERT_TRUE(pki_.write_crl("revoking.crl", {pki_.path("victim.pem")}));
  tls::ServerTlsConfig reloaded = config.tls;
  reloaded.crl_file = pki_.path("revoking.crl");
  const auto reload_at = Clock::now();
  ASSERT_TRUE(server->reload_tls(reloaded)) << "reload failed";
  ASSERT_TRUE(events_.wait(
      [&](const EventLog &l) { return l.removal_of(victim_id) != nullptr; }, 1s))
      << "the revoked client was not removed within 1 s of the reload";
  const auto removed_after = Clock::now() - reload_at;
  EXPECT_EQ(events_.snapshot().removal_of(victim_id)->reason, RemoveReason::kRevoked);

  // The victim's last message is ERROR REVOKED (after whatever buffers were queued).
  ReadLog log = read_until_end(*victim, Clock::now() + kWait, 10000);
  ASSERT_FALSE(log.messages.empty());
  EXPECT_EQ(log.messages.back().type, MessageType::kError);
  EXPECT_EQ(log.messages.back().error_code, static_cast<uint16_t>(wire::ErrorCode::kRevoked));

  // The good client: every buffer, for at least another 200 ms after the removal.
  const uint64_t until = published.load() + 40;
  uint64_t next_index = 1;
  while (next_index < until) {
    ASSERT_TRUE(next_buffer(*good, next_index)) << "the other client lost buffer " << next_index;
    next_index++;
  }
  stop = true;
  publisher.join();
  EXPECT_EQ(server->client_stats(good_id)->frames_dropped, 0u);
  EXPECT_EQ(events_.snapshot().removal_of(good_id), nullptr);
  std::printf("revoked client removed %.0f ms after the reload; the other got %" PRIu64
              " buffers in order\n",
              std::chrono::duration<double, std::milli>(removed_after).count(), next_index);

  // New connections with the revoked certificate are refused from now on.
  auto again = Receiver::start(client(server->port(), "victim"));
  Error e;
  EXPECT_TRUE(next_error(*again, e));
}

// authorized-clients per stream on one port: cam1 admits CN=client1 only;
// door admits a DNS name and a fingerprint. Each client gets only what its
// rules allow; the refused get ERROR FORBIDDEN and a removal (forbidden).
TEST_F(AuthorizationTest, AuthorizedClientsByCnDnsAndFingerprintOnTwoStreamsOfOnePort) {
  const uint16_t port = free_port();
  ASSERT_GT(port, 0);
  auto fp = certgen::fingerprint_sha256(test::Pki::read(pki_.path("other.pem")));
  ASSERT_TRUE(fp.ok());
  ServerConfig cam1 = mtls_config();
  cam1.port = port;
  cam1.stream_name = "cam1";
  cam1.authorized_clients = {"CN=client1"};
  ServerConfig door = cam1;
  door.stream_name = "door";
  door.authorized_clients = {"DNS:Door-Viewer.example", "sha256:" + *fp};
  auto s1 = start_server(cam1);
  auto s2 = start_server(door);
  ASSERT_TRUE(s1 && s2);

  struct Case {
    const char *stem;
    const char *stream;
    bool allowed;
  };
  const Case cases[] = {
      {"client", "cam1", true},  {"client", "door", false}, {"viewer", "door", true},
      {"viewer", "cam1", false}, {"other", "door", true},   {"other", "cam1", false},
  };
  size_t refused = 0;
  std::vector<std::unique_ptr<Receiver>> watching;
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.stem) + " -> " + c.stream);
    ReceiverConfig rc = client(port, c.stem, c.stream);  // "client": pki_.client_cert(), CN=client1
    if (c.allowed) {
      auto r = connect_receiver(rc);
      ASSERT_TRUE(r);
      watching.push_back(std::move(r));
      continue;
    }
    auto r = Receiver::start(rc);
    std::string why;
    EXPECT_TRUE(next_error_code(*r, wire::ErrorCode::kForbidden, &why));
    EXPECT_NE(why.find(c.stream), std::string::npos) << why;
    EXPECT_TRUE(wait_removals(RemoveReason::kForbidden, ++refused));
  }
  EXPECT_EQ(events_.snapshot().added.size(), 3u);
  EXPECT_EQ(s1->num_clients() + s2->num_clients(), 3u);
}

TEST_F(AuthorizationTest, AuthorizedClientsNeedRequireClientCertAndValidRules) {
  ServerConfig c = server_config();
  c.tls.ca_file = pki_.ca();
  c.authorized_clients = {"CN=client1"};
  auto r = Server::start(c, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("authorized-clients"), std::string::npos);
  EXPECT_NE(r.error().message.find("require-client-cert"), std::string::npos);

  c.tls.require_client_cert = true;
  c.authorized_clients = {"CN=client1", "O=Example"};
  r = Server::start(c, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("\"O=Example\""), std::string::npos) << r.error().message;
}

// accept_client: the answer comes later from another thread; a refusal is
// ERROR FORBIDDEN and a removal (forbidden); the request carries the identity.
TEST_F(AuthorizationTest, AcceptClientAnsweredFromAnotherThread) {
  std::mutex lock;
  std::vector<AcceptRequest> asked;
  std::vector<std::thread> answerers;
  ServerCallbacks cb = events_.callbacks();
  cb.accept_client = [&](const AcceptRequest &req, AcceptDecision decide) {
    std::lock_guard<std::mutex> g(lock);
    asked.push_back(req);
    const bool accept = req.identity.common_names == std::vector<std::string>{"viewer"};
    answerers.emplace_back([decide, accept] { decide(accept); });
    return true;
  };
  ServerConfig config = mtls_config();
  config.stream_name = "cam1";
  auto started = Server::start(config, cb);
  ASSERT_TRUE(started.ok()) << started.error().message;
  auto server = std::move(started.value());

  auto ok = connect_receiver(client(server->port(), "viewer", "cam1"));
  ASSERT_TRUE(ok);
  auto refused = Receiver::start(client(server->port(), "other", "cam1"));
  EXPECT_TRUE(next_error_code(*refused, wire::ErrorCode::kForbidden));
  EXPECT_TRUE(wait_removals(RemoveReason::kForbidden, 1));
  server->publish_caps(kCaps);
  EXPECT_TRUE(next_caps(*ok, kCaps));
  {
    std::lock_guard<std::mutex> g(lock);
    ASSERT_EQ(asked.size(), 2u);
    const AcceptRequest &a = asked.front();
    EXPECT_EQ(a.stream_name, "cam1");
    EXPECT_TRUE(a.identity.present);
    EXPECT_EQ(a.identity.subject, "/CN=viewer");
    EXPECT_EQ(a.identity.dns_names, std::vector<std::string>{"door-viewer.example"});
    EXPECT_EQ(a.address.rfind("127.0.0.1:", 0), 0u) << a.address;
    EXPECT_EQ(a.identity.sha256,
              *certgen::fingerprint_sha256(test::Pki::read(pki_.path("viewer.pem"))));
  }
  server->stop();
  for (auto &t : answerers) t.join();
}

// No answer within the handshake timeout refuses; a late answer changes
// nothing. Meanwhile (one I/O thread) a watching client of another stream
// on the port gets every buffer and a new one joins at once: no thread waits.
TEST_F(AuthorizationTest, AcceptClientUnansweredRefusesAfterHandshakeTimeoutAndBlocksNothing) {
  const uint16_t port = free_port();
  ASSERT_GT(port, 0);
  std::mutex lock;
  std::vector<AcceptDecision> pending;
  ServerCallbacks waiting = events_.callbacks();
  waiting.accept_client = [&](const AcceptRequest &, AcceptDecision decide) {
    std::lock_guard<std::mutex> g(lock);
    pending.push_back(std::move(decide));
    return true;  // and never answers in time
  };
  ServerConfig config = mtls_config();
  config.port = port;
  config.io_threads = 1;
  config.handshake_timeout = 800ms;
  config.stream_name = "slow";
  auto slow = Server::start(config, waiting);
  ASSERT_TRUE(slow.ok()) << slow.error().message;
  config.stream_name = "free";
  auto free_stream = start_server(config);
  ASSERT_TRUE(free_stream);

  auto watcher = connect_receiver(client(port, "viewer", "free"));
  ASSERT_TRUE(watcher);
  free_stream->publish_caps(kCaps);
  ASSERT_TRUE(next_caps(*watcher, kCaps));

  const auto asked_at = Clock::now();
  auto waiter = Receiver::start(client(port, "other", "slow"));
  ASSERT_TRUE(events_.wait([&](const EventLog &) {
    std::lock_guard<std::mutex> g(lock);
    return !pending.empty();
  })) << "accept_client was not asked";
  // While the application has not answered: the watcher gets every buffer,
  // and a new client of the other stream joins.
  for (uint64_t i = 0; i < 20; ++i) {
    publish(*free_stream, i, 0);
    ASSERT_TRUE(next_buffer(*watcher, i));
  }
  auto joiner = connect_receiver(client(port, "client", "free"));
  ASSERT_TRUE(joiner) << "a client of another stream waited for the application";

  std::string why;
  EXPECT_TRUE(next_error_code(*waiter, wire::ErrorCode::kForbidden, &why));
  const auto refused_after = Clock::now() - asked_at;
  EXPECT_NE(why.find("no authorization decision"), std::string::npos) << why;
  EXPECT_GE(refused_after, 700ms);
  EXPECT_LT(refused_after, 3s);
  EXPECT_TRUE(wait_removals(RemoveReason::kForbidden, 1));
  {
    std::lock_guard<std::mutex> g(lock);
    for (auto &decide : pending) decide(true);  // too late: ignored
  }
  publish(*free_stream, 20, 0);
  EXPECT_TRUE(next_buffer(*watcher, 20));
  EXPECT_EQ(slow.value()->num_clients(), 0u);
  slow.value()->stop();
  {
    std::lock_guard<std::mutex> g(lock);
    for (auto &decide : pending) decide(true);  // after stop: still harmless
  }
}

}  // namespace
}  // namespace tlsframe
