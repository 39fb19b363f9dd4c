// Core server tests (fixture: server_fixture.h). Server lifecycle: stop disconnects promptly and
// reports server-stopped; start fails with a readable error.
#include "core/server_fixture.h"

namespace tlsframe {
namespace {

// ===========================================================================
// Server lifecycle.

TEST_F(ServerReceiverTest, StopDisconnectsReceiversPromptlyAndReportsServerStopped) {
  auto server = start_server(server_config());
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Receiver>> rx;
  for (int i = 0; i < 2; ++i) {
    rx.push_back(connect_receiver(*server));
    ASSERT_TRUE(rx.back());
  }
  publish(*server, 0, 0);
  for (auto &r : rx) ASSERT_TRUE(next_buffer(*r, 0));
  TcpSocket handshaking;  // a connection still in its handshake (default timeout: 10 s)
  ASSERT_TRUE(handshaking.connect_to(server->port()));

  auto t = Clock::now();
  server->stop();
  EXPECT_LT(Clock::now() - t, 3s);
  t = Clock::now();
  server->stop();  // idempotent
  EXPECT_LT(Clock::now() - t, 1s);

  // Clients that keep up are told why before the connection closes.
  for (auto &r : rx) {
    Received m;
    Error e;
    const auto t0 = Clock::now();
    ASSERT_EQ(r->next(m, e, Clock::now() + 2s), NextStatus::kMessage) << e.message;
    EXPECT_LT(Clock::now() - t0, 1s);
    ASSERT_EQ(m.type, MessageType::kError);
    EXPECT_EQ(m.error_code, static_cast<uint16_t>(tlsframe::wire::ErrorCode::kShuttingDown));
    EXPECT_NE(m.error_text.find("shutting down"), std::string::npos) << m.error_text;
    EXPECT_FALSE(r->connected());
  }
  // stop() joined the I/O threads, so every callback has already run.
  const EventLog l = events_.snapshot();
  ASSERT_EQ(l.removed.size(), 2u);
  for (const auto &r : l.removed) {
    EXPECT_EQ(r.reason, RemoveReason::kServerStopped);
    EXPECT_TRUE(l.was_added(r.info.id));
  }
  EXPECT_NE(l.removed[0].info.id, l.removed[1].info.id);
  EXPECT_EQ(server->num_clients(), 0u);
  EXPECT_TRUE(handshaking.wait_peer_closed(1s)) << "a handshaking connection outlived stop()";

  // Publishing to a stopped server is harmless.
  server->publish_caps(kCaps);
  publish(*server, 1, 0);
  t = Clock::now();
  EXPECT_TRUE(server->publish_eos_and_flush(std::chrono::milliseconds(2000)));
  EXPECT_LT(Clock::now() - t, 1s);

  // The listener is closed too.
  auto late = Receiver::start(receiver_config(server->port()));
  Error e;
  ASSERT_TRUE(next_error(*late, e));
  EXPECT_EQ(e.kind, Error::Kind::kNetwork) << e.message;
}

TEST_F(ServerReceiverTest, StartFailsWithSettingsErrorNamingMissingCertFile) {
  ServerConfig cfg = server_config();
  cfg.tls.cert_file = pki_.path("does-not-exist.pem");
  auto r = Server::start(cfg, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kSettings);
  EXPECT_NE(r.error().message.find(cfg.tls.cert_file), std::string::npos) << r.error().message;
}

TEST_F(ServerReceiverTest, StartFailsWithSettingsErrorWhenKeyDoesNotMatchCert) {
  ServerConfig cfg = server_config();
  cfg.tls.key_file = pki_.client_key();
  auto r = Server::start(cfg, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kSettings);
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos) << r.error().message;
}

TEST_F(ServerReceiverTest, StartFailsWithNetworkErrorWhenPortInUse) {
  auto first = start_server(server_config());
  ASSERT_TRUE(first);
  ServerConfig cfg = server_config();
  cfg.port = first->port();
  auto r = Server::start(cfg, events_.callbacks());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kNetwork);
  EXPECT_NE(r.error().message.find("cannot listen"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(std::to_string(cfg.port)), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace tlsframe
