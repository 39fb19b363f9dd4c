// TLS setup: configuration structs -> SSL_CTX (through asio::ssl::context),
// per-connection peer checks, and OpenSSL failures turned into readable Errors.
#pragma once

#include <openssl/ssl.h>

#include <asio/ssl/context.hpp>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "core/result.h"

namespace tlsframe::tls {

enum class Version { kTls12, kTls13 };

// The browser front (ALPN http/1.1) is on unless turned off (tlsframesink's `browser`).
inline constexpr bool kDefaultHttp = true;

struct ServerTlsConfig {
  std::string cert_file;             // PEM chain: leaf first, then intermediates
  std::string key_file;              // PEM private key matching the leaf
  std::string ca_file;               // CAs trusted for client certificates ("" = none)
  bool require_client_cert = false;  // mutual TLS: refuse clients without a valid certificate
  Version min_version = Version::kTls13;
  // PEM CRLs (one or more) checked for client certificates ("" = none; needs
  // ca_file). With a CRL, a client whose CA has no CRL in the file is refused.
  std::string crl_file;
  // ALPN http/1.1 accepted: the browser front (HTTPS and WebSocket on this
  // port; docs/PROTOCOL.md 8.1).
  bool http = kDefaultHttp;
};

struct ClientTlsConfig {
  std::string ca_file;    // CAs trusted for the server ("" = the system store)
  std::string cert_file;  // client certificate for mutual TLS ("" = none)
  std::string key_file;   // its private key
  Version min_version = Version::kTls13;
  Version max_version = Version::kTls13;  // tests use kTls12 to act as an old client
  // SHA-256 fingerprint of the server's leaf certificate: 64 hex digits, colons
  // optional, any case ("" = no pin). When set, the pin is the trust: without
  // ca_file, the leaf must match it and be within its dates, and neither the
  // chain nor the server name is checked (nor the system store loaded); with
  // ca_file, both the pin and the usual verification must hold.
  std::string server_fingerprint;
};

using ContextPtr = std::shared_ptr<asio::ssl::context>;

// Server context: TLS min version, no compression, no renegotiation, ECDHE+AEAD
// suites only for TLS 1.2, chain + key loaded and checked against each other.
Result<ContextPtr> make_server_context(const ServerTlsConfig &config);
// Client context: always verifies the server (SSL_VERIFY_PEER).
Result<ContextPtr> make_client_context(const ClientTlsConfig &config);

// "AB:CD:..." (32 uppercase pairs) from a SHA-256 fingerprint written as 64 hex
// digits, colons optional, any case; a kSettings error for anything else.
Result<std::string> normalize_fingerprint(const std::string &text);

// A client handshake that failed because the server's leaf certificate does
// not match ClientTlsConfig::server_fingerprint: the kVerify error naming
// both fingerprints (expected and got). nullopt for any other outcome.
std::optional<Error> pin_mismatch(SSL *ssl);

// Per connection, before the client handshake: expected server name (checked
// against DNS or IP subjectAltName) and SNI (for DNS names only).
Status set_expected_server_name(SSL *ssl, const std::string &name);

// Human description of a failed handshake or TLS read/write, using the peer
// verification result when there is one. is_client: our role.
Error describe_failure(SSL *ssl, const std::error_code &ec, bool is_client);

// The peer certificate's subject as a one-line string ("" when none).
std::string peer_subject(SSL *ssl);

// Why clients will refuse the first certificate in cert_file although it
// loads: "expired on ...", "not valid until ...", or not for TLS server use
// (key usage). "" when none of these applies or the file cannot be read.
std::string server_certificate_problem(const std::string &cert_file);

// One line per CRL in crl_file whose next update has passed ("the CRL of
// /CN=... expired on ..."); clients of that CA are refused while it is in
// force. Empty when none has, or the file cannot be read.
std::vector<std::string> expired_crls(const std::string &crl_file);

// The peer certificate of ssl (a server connection), checked again now
// against ctx's trust store and CRLs: true when it is revoked. Only the
// revocation counts (a certificate that expired since, or whose CA has no
// CRL, is not "revoked"). False without a peer certificate.
bool peer_revoked(SSL *ssl, SSL_CTX *ctx);

// Drain OpenSSL's error queue of this thread into "; "-separated text.
std::string drain_errors();

const char *version_name(Version v);

}  // namespace tlsframe::tls
