// TLS setup without sockets: contexts from core/tls_context driven through a
// handshake over an in-memory BIO pair, so policy (versions, suites, names,
// client certificates) and error wording are checked without the network.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <asio/ssl/error.hpp>

#include "common/pki.h"
#include "core/tls_context.h"

namespace tls = tlsframe::tls;
using tlsframe::Error;

namespace {

// A client and a server SSL joined by a BIO pair; step() pumps the handshake.
class MemoryHandshake {
 public:
  MemoryHandshake(SSL_CTX *server_ctx, SSL_CTX *client_ctx) {
    server_ = SSL_new(server_ctx);
    client_ = SSL_new(client_ctx);
    BIO *a = nullptr, *b = nullptr;
    BIO_new_bio_pair(&a, 0, &b, 0);
    SSL_set_bio(server_, a, a);
    SSL_set_bio(client_, b, b);
    SSL_set_accept_state(server_);
    SSL_set_connect_state(client_);
  }
  ~MemoryHandshake() {
    SSL_free(server_);
    SSL_free(client_);
  }
  // Runs both sides until both finish or one fails (bounded). True when both completed.
  bool run() {
    bool server_done = false, client_done = false;
    for (int i = 0; i < 50 && !(server_done && client_done); ++i) {
      if (!client_done) {
        int r = SSL_do_handshake(client_);
        if (r == 1)
          client_done = true;
        else if (SSL_get_error(client_, r) != SSL_ERROR_WANT_READ)
          return fail(client_, "client");
      }
      if (!server_done) {
        int r = SSL_do_handshake(server_);
        if (r == 1) {
          server_done = true;
        } else if (SSL_get_error(server_, r) != SSL_ERROR_WANT_READ) {
          // Let the client read the server's alert, as a real client would.
          ERR_clear_error();
          char byte;
          if (client_done)
            SSL_read(client_, &byte, 1);
          else
            SSL_do_handshake(client_);
          return fail(client_, "server");
        }
      }
    }
    // TLS 1.3: the server checks the client's certificate after the client
    // finished; a refusal reaches the client on its first read.
    char byte;
    SSL_write(server_, "x", 1);
    int r = SSL_read(client_, &byte, 1);
    if (r <= 0) return fail(client_, "client read");
    return server_done && client_done;
  }
  SSL *server() const { return server_; }
  SSL *client() const { return client_; }
  const std::string &failed_side() const { return failed_side_; }
  unsigned long error_code() const { return error_code_; }

 private:
  bool fail(SSL *, const char *side) {
    failed_side_ = side;
    error_code_ = ERR_peek_last_error();
    return false;
  }
  SSL *server_ = nullptr;
  SSL *client_ = nullptr;
  std::string failed_side_;
  unsigned long error_code_ = 0;
};

class TlsContextTest : public ::testing::Test {
 protected:
  tls::ServerTlsConfig server_config() const {
    tls::ServerTlsConfig c;
    c.cert_file = pki_.server_cert();
    c.key_file = pki_.server_key();
    return c;
  }
  tls::ClientTlsConfig client_config() const {
    tls::ClientTlsConfig c;
    c.ca_file = pki_.ca();
    return c;
  }
  static tls::ContextPtr must(tlsframe::Result<tls::ContextPtr> r) {
    EXPECT_TRUE(r.ok()) << r.error().message << " / " << r.error().detail;
    return r.ok() ? r.value() : nullptr;
  }
  // The Error describe_failure gives for the failure in h (as asio would report it).
  static Error describe(const MemoryHandshake &h, SSL *ssl, bool is_client) {
    std::error_code ec(static_cast<int>(h.error_code()), asio::error::get_ssl_category());
    ERR_clear_error();
    return tls::describe_failure(ssl, ec, is_client);
  }
  tlsframe::test::Pki pki_;
};

TEST_F(TlsContextTest, DefaultHandshakeIsTls13WithVerifiedServerName) {
  auto server = must(tls::make_server_context(server_config()));
  auto client = must(tls::make_client_context(client_config()));
  ASSERT_TRUE(server && client);
  MemoryHandshake h(server->native_handle(), client->native_handle());
  ASSERT_TRUE(tls::set_expected_server_name(h.client(), "localhost").ok());
  ASSERT_TRUE(h.run()) << h.failed_side();
  EXPECT_EQ(SSL_version(h.client()), TLS1_3_VERSION);
  EXPECT_EQ(SSL_get_verify_result(h.client()), X509_V_OK);
  EXPECT_NE(tls::peer_subject(h.client()).find("CN=localhost"), std::string::npos)
      << tls::peer_subject(h.client());
  EXPECT_EQ(SSL_get_current_compression(h.client()), nullptr);
  EXPECT_TRUE(SSL_CTX_get_options(server->native_handle()) & SSL_OP_NO_RENEGOTIATION);
  EXPECT_STREQ(SSL_get_servername(h.server(), TLSEXT_NAMETYPE_host_name), "localhost");
}

TEST_F(TlsContextTest, IpAddressNameIsCheckedAgainstIpSanAndSendsNoSni) {
  auto server = must(tls::make_server_context(server_config()));
  auto client = must(tls::make_client_context(client_config()));
  for (const char *ip : {"127.0.0.1", "::1"}) {
    MemoryHandshake h(server->native_handle(), client->native_handle());
    ASSERT_TRUE(tls::set_expected_server_name(h.client(), ip).ok());
    EXPECT_TRUE(h.run()) << ip;
    EXPECT_EQ(SSL_get_servername(h.server(), TLSEXT_NAMETYPE_host_name), nullptr) << ip;
  }
  MemoryHandshake wrong_ip(server->native_handle(), client->native_handle());
  ASSERT_TRUE(tls::set_expected_server_name(wrong_ip.client(), "127.0.0.2").ok());
  EXPECT_FALSE(wrong_ip.run());
  EXPECT_EQ(SSL_get_verify_result(wrong_ip.client()), X509_V_ERR_IP_ADDRESS_MISMATCH);
}

TEST_F(TlsContextTest, WrongServerNameFailsWithHostnameMismatch) {
  auto server = must(tls::make_server_context(server_config()));
  auto client = must(tls::make_client_context(client_config()));
  MemoryHandshake h(server->native_handle(), client->native_handle());
  ASSERT_TRUE(tls::set_expected_server_name(h.client(), "wrong.example").ok());
  ASSERT_FALSE(h.run());
  EXPECT_EQ(h.failed_side(), "client");
  Error e = describe(h, h.client(), true);
  EXPECT_EQ(e.kind, Error::Kind::kVerify);
  EXPECT_NE(e.message.find("hostname mismatch"), std::string::npos) << e.message;
}

TEST_F(TlsContextTest, UntrustedCaFailsWithIssuerMessage) {
  auto server = must(tls::make_server_context(server_config()));
  auto cc = client_config();
  cc.ca_file = pki_.other_ca();
  auto client = must(tls::make_client_context(cc));
  MemoryHandshake h(server->native_handle(), client->native_handle());
  ASSERT_TRUE(tls::set_expected_server_name(h.client(), "localhost").ok());
  ASSERT_FALSE(h.run());
  Error e = describe(h, h.client(), true);
  EXPECT_EQ(e.kind, Error::Kind::kVerify);
  EXPECT_NE(e.message.find("server certificate verification failed"), std::string::npos);
  EXPECT_NE(e.message.find("issuer"), std::string::npos) << e.message;
}

TEST_F(TlsContextTest, Tls12ClientIsRefusedByDefaultAndAcceptedWhenMinimumLowered) {
  auto cc = client_config();
  cc.min_version = tls::Version::kTls12;
  cc.max_version = tls::Version::kTls12;
  auto client = must(tls::make_client_context(cc));
  {
    auto server = must(tls::make_server_context(server_config()));
    MemoryHandshake h(server->native_handle(), client->native_handle());
    ASSERT_TRUE(tls::set_expected_server_name(h.client(), "localhost").ok());
    ASSERT_FALSE(h.run());
    Error e = describe(h, h.client(), true);
    EXPECT_EQ(e.kind, Error::Kind::kPeerRefused);
    EXPECT_NE(e.message.find("no TLS version in common"), std::string::npos) << e.message;
  }
  auto sc = server_config();
  sc.min_version = tls::Version::kTls12;
  auto server = must(tls::make_server_context(sc));
  MemoryHandshake h(server->native_handle(), client->native_handle());
  ASSERT_TRUE(tls::set_expected_server_name(h.client(), "localhost").ok());
  ASSERT_TRUE(h.run());
  EXPECT_EQ(SSL_version(h.client()), TLS1_2_VERSION);
  // TLS 1.2 only with forward secrecy and AEAD.
  const char *cipher = SSL_get_cipher_name(h.client());
  EXPECT_TRUE(std::string(cipher).rfind("ECDHE-", 0) == 0) << cipher;
  EXPECT_TRUE(std::string(cipher).find("GCM") != std::string::npos ||
              std::string(cipher).find("CHACHA20") != std::string::npos)
      << cipher;
}

TEST_F(TlsContextTest, MutualTlsRefusesMissingAndUntrustedClientCertificates) {
  auto sc = server_config();
  sc.ca_file = pki_.ca();
  sc.require_client_cert = true;
  auto server = must(tls::make_server_context(sc));
  {
    auto client = must(tls::make_client_context(client_config()));
    MemoryHandshake h(server->native_handle(), client->native_handle());
    ASSERT_TRUE(tls::set_expected_server_name(h.client(), "localhost").ok());
    ASSERT_FALSE(h.run());
    Error e = describe(h, h.client(), true);
    EXPECT_EQ(e.kind, Error::Kind::kPeerRefused) << e.message;
    EXPECT_NE(e.message.find("client certificate"), std::string::npos) << e.message;
    EXPECT_EQ(h.failed_side(), "server");
  }
  {
    auto cc = client_config();
    cc.cert_file = pki_.rogue_client_cert();
    cc.key_file = pki_.rogue_client_key();
    auto client = must(tls::make_client_context(cc));
    MemoryHandshake h(server->native_handle(), client->native_handle());
    ASSERT_TRUE(tls::set_expected_server_name(h.client(), "localhost").ok());
    ASSERT_FALSE(h.run());
    Error e = describe(h, h.client(), true);
    EXPECT_EQ(e.kind, Error::Kind::kPeerRefused) << e.message;
    EXPECT_NE(e.message.find("refused our certificate"), std::string::npos) << e.message;
  }
  auto cc = client_config();
  cc.cert_file = pki_.client_cert();
  cc.key_file = pki_.client_key();
  auto client = must(tls::make_client_context(cc));
  MemoryHandshake h(server->native_handle(), client->native_handle());
  ASSERT_TRUE(tls::set_expected_server_name(h.client(), "localhost").ok());
  ASSERT_TRUE(h.run());
  EXPECT_NE(tls::peer_subject(h.server()).find("client1"), std::string::npos);
}

TEST_F(TlsContextTest, SettingsErrorsNameTheProblem) {
  auto missing = server_config();
  missing.cert_file = pki_.path("nope.pem");
  auto r = tls::make_server_context(missing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, Error::Kind::kSettings);
  EXPECT_NE(r.error().message.find("nope.pem"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("No such file"), std::string::npos) << r.error().message;

  auto mismatched = server_config();
  mismatched.key_file = pki_.client_key();
  r = tls::make_server_context(mismatched);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("does not match"), std::string::npos) << r.error().message;

  auto not_pem = server_config();
  not_pem.cert_file = pki_.dir();  // a directory
  r = tls::make_server_context(not_pem);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a regular file"), std::string::npos) << r.error().message;

  auto no_ca = server_config();
  no_ca.require_client_cert = true;
  r = tls::make_server_context(no_ca);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("ca-file"), std::string::npos) << r.error().message;

  auto cc = client_config();
  cc.ca_file = pki_.path("missing-ca.pem");
  auto rc = tls::make_client_context(cc);
  ASSERT_FALSE(rc.ok());
  EXPECT_NE(rc.error().message.find("missing-ca.pem"), std::string::npos);
  EXPECT_EQ(ERR_peek_error(), 0u) << "the OpenSSL error queue should be drained";
}

TEST_F(TlsContextTest, ClientAlwaysVerifiesTheServer) {
  auto client = must(tls::make_client_context(client_config()));
  EXPECT_EQ(SSL_CTX_get_verify_mode(client->native_handle()) & SSL_VERIFY_PEER, SSL_VERIFY_PEER);
  // With the system store (no ca-file), our test CA is not trusted.
  tls::ClientTlsConfig system_store;
  auto sys_client = must(tls::make_client_context(system_store));
  auto server = must(tls::make_server_context(server_config()));
  MemoryHandshake h(server->native_handle(), sys_client->native_handle());
  ASSERT_TRUE(tls::set_expected_server_name(h.client(), "localhost").ok());
  EXPECT_FALSE(h.run());
  EXPECT_NE(SSL_get_verify_result(h.client()), X509_V_OK);
}

}  // namespace
