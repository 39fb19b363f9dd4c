// Core server tests (fixture: server_fixture.h). TLS verification and mutual TLS failures against a
// running server, while a good receiver keeps receiving.
#include "core/server_fixture.h"

namespace tlsframe {
namespace {

// A failing receiver against a running server, while a good one keeps receiving.
class FailingReceiverTest : public ServerReceiverTest {
 protected:
  // Starts the server and a good receiver; the caller then tries a bad one.
  void start(const ServerConfig &cfg, const ReceiverConfig *good_config = nullptr) {
    server_ = start_server(cfg);
    ASSERT_TRUE(server_);
    good_ = good_config ? connect_receiver(with_port(*good_config)) : connect_receiver(*server_);
    ASSERT_TRUE(good_);
  }
  ReceiverConfig with_port(ReceiverConfig c) const {
    c.port = server_->port();
    return c;
  }
  // Runs the bad receiver to its terminal error; checks the server never added
  // it and the good receiver still gets what is published afterwards.
  Error fail_bad(const ReceiverConfig &bad_config, bool server_sees_handshake_failure = true) {
    const size_t failed_before = events_.snapshot().failed.size();
    auto bad = Receiver::start(with_port(bad_config));
    Error e;
    EXPECT_TRUE(next_error(*bad, e));
    if (server_sees_handshake_failure) {
      EXPECT_TRUE(events_.wait([&](const EventLog &l) { return l.failed.size() > failed_before; }))
          << "server reported no handshake failure";
    }
    EXPECT_EQ(events_.snapshot().added.size(), 1u) << "the bad receiver was added";
    expect_still_receives(*server_, *good_, next_index_++);
    return e;
  }

  std::unique_ptr<Server> server_;
  std::unique_ptr<Receiver> good_;
  uint64_t next_index_ = 0;
};

TEST_F(FailingReceiverTest, ServerFromUntrustedCaFailsVerification) {
  start(server_config());
  ReceiverConfig bad = receiver_config(0);
  bad.tls.ca_file = pki_.other_ca();
  Error e = fail_bad(bad);
  EXPECT_EQ(e.kind, Error::Kind::kVerify) << e.message;
  EXPECT_NE(e.message.find("verification failed"), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, WrongServerNameFailsWithHostnameMismatch) {
  start(server_config());
  ReceiverConfig bad = receiver_config(0);
  bad.server_name = "wrong.example";
  Error e = fail_bad(bad);
  EXPECT_EQ(e.kind, Error::Kind::kVerify) << e.message;
  EXPECT_NE(e.message.find("hostname mismatch"), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, ExpiredServerCertificateFailsVerification) {
  ServerConfig cfg = server_config();
  cfg.tls.cert_file = pki_.expired_cert();
  cfg.tls.key_file = pki_.expired_key();
  server_ = start_server(cfg);
  ASSERT_TRUE(server_);
  auto bad = Receiver::start(receiver_config(server_->port()));
  Error e;
  ASSERT_TRUE(next_error(*bad, e));
  EXPECT_EQ(e.kind, Error::Kind::kVerify) << e.message;
  EXPECT_NE(e.message.find("expired"), std::string::npos) << e.message;
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return !l.failed.empty(); }));
  EXPECT_TRUE(events_.snapshot().added.empty());
}

// OpenSSL falls back to the subject CN when a certificate has no DNS
// subjectAltName; the receiver must not (issue 14, item 11).
TEST_F(FailingReceiverTest, ServerCertificateWithCommonNameOnlyAndNoSanIsRefused) {
  ServerConfig cfg = server_config();
  cfg.tls.cert_file = pki_.cn_only_cert();
  cfg.tls.key_file = pki_.cn_only_key();
  server_ = start_server(cfg);
  ASSERT_TRUE(server_);
  ReceiverConfig rc = receiver_config(server_->port());
  rc.server_name = "localhost";  // the certificate's CN, in no subjectAltName
  auto bad = Receiver::start(rc);
  Error e;
  ASSERT_TRUE(next_error(*bad, e));
  EXPECT_EQ(e.kind, Error::Kind::kVerify) << e.message;
  EXPECT_NE(e.message.find("hostname mismatch"), std::string::npos) << e.message;
  EXPECT_TRUE(events_.wait([](const EventLog &l) { return !l.failed.empty(); }));
  EXPECT_TRUE(events_.snapshot().added.empty());
}

TEST_F(FailingReceiverTest, Tls12OnlyReceiverIsRefusedByDefaultTls13Server) {
  start(server_config());
  ReceiverConfig bad = receiver_config(0);
  bad.tls.min_version = tls::Version::kTls12;
  bad.tls.max_version = tls::Version::kTls12;
  Error e = fail_bad(bad);
  EXPECT_TRUE(e.kind == Error::Kind::kPeerRefused || e.kind == Error::Kind::kTls)
      << kind_name(e.kind) << ": " << e.message;
  EXPECT_NE(e.message.find("TLS version"), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, Tls12ReceiverIsAcceptedWhenServerAllowsTls12) {
  ServerConfig cfg = server_config();
  cfg.tls.min_version = tls::Version::kTls12;
  start(cfg);
  ReceiverConfig old_client = with_port(receiver_config(0));
  old_client.tls.min_version = tls::Version::kTls12;
  old_client.tls.max_version = tls::Version::kTls12;
  auto r = connect_receiver(old_client);
  ASSERT_TRUE(r);
  publish(*server_, 0, 0);
  EXPECT_TRUE(next_buffer(*r, 0));
  EXPECT_TRUE(next_buffer(*good_, 0));
}

TEST_F(ServerReceiverTest, ReceiverWithMissingCaFileFailsWithSettingsError) {
  ReceiverConfig rc = receiver_config(1);
  rc.tls.ca_file = pki_.path("no-such-ca.pem");
  auto r = Receiver::start(rc);
  Error e;
  ASSERT_TRUE(next_error(*r, e, 0, 1s));
  EXPECT_EQ(e.kind, Error::Kind::kSettings) << e.message;
  EXPECT_NE(e.message.find(rc.tls.ca_file), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, ReceiverWithoutCertificateIsRefusedUnderMutualTls) {
  ServerConfig cfg = server_config();
  cfg.tls.ca_file = pki_.ca();
  cfg.tls.require_client_cert = true;
  ReceiverConfig good = receiver_config(0);
  good.tls.cert_file = pki_.client_cert();
  good.tls.key_file = pki_.client_key();
  start(cfg, &good);
  Error e = fail_bad(receiver_config(0));
  EXPECT_EQ(e.kind, Error::Kind::kPeerRefused) << e.message;
  EXPECT_NE(e.message.find("client certificate"), std::string::npos) << e.message;
}

TEST_F(FailingReceiverTest, ReceiverWithRogueCertificateIsRefusedUnderMutualTls) {
  ServerConfig cfg = server_config();
  cfg.tls.ca_file = pki_.ca();
  cfg.tls.require_client_cert = true;
  ReceiverConfig good = receiver_config(0);
  good.tls.cert_file = pki_.client_cert();
  good.tls.key_file = pki_.client_key();
  start(cfg, &good);
  ReceiverConfig bad = receiver_config(0);
  bad.tls.cert_file = pki_.rogue_client_cert();
  bad.tls.key_file = pki_.rogue_client_key();
  Error e = fail_bad(bad);
  EXPECT_EQ(e.kind, Error::Kind::kPeerRefused) << e.message;
  const EventLog l = events_.snapshot();
  ASSERT_FALSE(l.failed.empty());
  EXPECT_EQ(l.failed.back().error.kind, Error::Kind::kVerify) << l.failed.back().error.message;
}

TEST_F(FailingReceiverTest, TrustedClientCertificateIsAcceptedAndItsSubjectReported) {
  ServerConfig cfg = server_config();
  cfg.tls.ca_file = pki_.ca();
  cfg.tls.require_client_cert = true;
  ReceiverConfig good = receiver_config(0);
  good.tls.cert_file = pki_.client_cert();
  good.tls.key_file = pki_.client_key();
  start(cfg, &good);
  const EventLog l = events_.snapshot();
  ASSERT_EQ(l.added.size(), 1u);
  EXPECT_NE(l.added[0].subject.find("client1"), std::string::npos) << l.added[0].subject;
  auto cs = server_->client_stats(l.added[0].id);
  ASSERT_TRUE(cs);
  EXPECT_EQ(cs->info.subject, l.added[0].subject);
  expect_still_receives(*server_, *good_, 0);
}

TEST_F(FailingReceiverTest, OversizedMessageIsProtocolErrorNamingTheMaximum) {
  start(server_config());
  ReceiverConfig small = with_port(receiver_config(0));
  small.max_payload = 1024;
  auto r = connect_receiver(small);
  ASSERT_TRUE(r);
  server_->publish_caps(kCaps);
  publish(*server_, 0, 0, 4096);
  Error e;
  ASSERT_TRUE(next_error(*r, e, /*max_skip=*/1));  // the caps fit
  EXPECT_EQ(e.kind, Error::Kind::kProtocol) << e.message;
  EXPECT_NE(e.message.find("maximum"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("1024"), std::string::npos) << e.message;
  // The good receiver (default maximum) got the large buffer.
  EXPECT_TRUE(next_caps(*good_, kCaps));
  EXPECT_TRUE(next_buffer(*good_, 0, 4096));
  expect_still_receives(*server_, *good_, 1);
}

}  // namespace
}  // namespace tlsframe
