#include "core/tls_context.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <asio/ssl/error.hpp>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "core/log.h"
#include "core/wire_v2.h"

namespace tlsframe::tls {
namespace {

constexpr auto kComp = log::Component::kTls;

int proto_version(Version v) {
  return v == Version::kTls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
}

Error settings_error(std::string message) {
  Error e;
  e.kind = Error::Kind::kSettings;
  e.message = std::move(message);
  e.detail = drain_errors();
  return e;
}

// A file we are about to hand to OpenSSL: say clearly when it is missing or
// unreadable instead of OpenSSL's "system lib" wording.
Status check_readable(const std::string &what, const std::string &path) {
  if (path.empty()) return settings_error(what + " is not set");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return settings_error("cannot read " + what + " '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return settings_error(what + " '" + path + "' is not a regular file");
  return Status::Ok();
}

Result<ContextPtr> new_context(asio::ssl::context::method method) {
  ERR_clear_error();
  SSL_CTX *raw = SSL_CTX_new(method == asio::ssl::context::tls_server ? TLS_server_method()
                                                                      : TLS_client_method());
  if (!raw) return settings_error("cannot create TLS context");
  // asio::ssl::context takes ownership of the native handle.
  return std::make_shared<asio::ssl::context>(raw);
}

Status common_setup(SSL_CTX *ctx, Version min_version) {
  if (!SSL_CTX_set_min_proto_version(ctx, proto_version(min_version))) {
    return settings_error("cannot set the minimum TLS version");
  }
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // TLS 1.2 (only when the minimum is lowered): forward secrecy and AEAD only.
  if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20")) {
    return settings_error("cannot set the TLS 1.2 cipher list");
  }
  // TLS 1.3 suites in the server's order of preference: AES-128-GCM encrypts
  // about 8% faster than AES-256-GCM here (openssl speed, 16 KB records), and
  // every byte is encrypted once per client. All three are AEAD.
  if (!SSL_CTX_set_ciphersuites(
          ctx, "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384")) {
    return settings_error("cannot set the TLS 1.3 cipher suites");
  }
  // Key exchange: elliptic curves only (OpenSSL also offers finite-field DH
  // groups by default: slower, and not the ECDHE this policy promises).
  if (!SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384")) {
    return settings_error("cannot set the key exchange groups");
  }
  // Idle connections give their read/write buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return Status::Ok();
}

Status load_chain_and_key(SSL_CTX *ctx, const std::string &cert_file, const std::string &key_file,
                          const char *role) {
  std::string cert_what = std::string(role) + " certificate file";
  std::string key_what = std::string(role) + " key file";
  if (Status s = check_readable(cert_what, cert_file); !s) return s;
  if (Status s = check_readable(key_what, key_file); !s) return s;
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    return settings_error("cannot load " + cert_what + " '" + cert_file +
                          "' (not a PEM certificate chain?)");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    std::string detail = drain_errors();
    Error e = settings_error("cannot load " + key_what + " '" + key_file +
                             "' (not a PEM private key, or it does not match the certificate)");
    e.detail = detail;
    return e;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return settings_error(key_what + " '" + key_file + "' does not match " + cert_what + " '" +
                          cert_file + "'");
  }
  return Status::Ok();
}

Status load_trust(SSL_CTX *ctx, const std::string &ca_file, const char *what) {
  if (Status s = check_readable(what, ca_file); !s) return s;
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    return settings_error(std::string("cannot load ") + what + " '" + ca_file +
                          "' (not PEM certificates?)");
  }
  return Status::Ok();
}

// The CRLs of a PEM file, each owned by the caller (X509_CRL_free); an error
// when the file cannot be read or holds none.
Result<std::vector<X509_CRL *>> read_crls(const std::string &crl_file) {
  if (Status s = check_readable("crl-file", crl_file); !s) return s.error();
  ERR_clear_error();
  BIO *bio = BIO_new_file(crl_file.c_str(), "r");
  if (!bio) return settings_error("cannot open crl-file '" + crl_file + "'");
  std::vector<X509_CRL *> crls;
  while (X509_CRL *crl = PEM_read_bio_X509_CRL(bio, nullptr, nullptr, nullptr)) {
    crls.push_back(crl);
  }
  BIO_free(bio);
  // The loop ends on "no start line" at the end of the file: expected once
  // at least one CRL was read; any other error is a damaged file.
  const unsigned long last = ERR_peek_last_error();
  const bool clean_end = ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (crls.empty() || !clean_end) {
    for (X509_CRL *crl : crls) X509_CRL_free(crl);
    return settings_error("cannot load crl-file '" + crl_file + "' (" +
                          (crls.empty() ? "no PEM \"X509 CRL\" block in it"
                                        : "a damaged CRL after the first ones") +
                          ")");
  }
  ERR_clear_error();
  return crls;
}

// Client certificates are checked against the CRLs of crl_file (the leaf's
// issuer must have one there: X509_V_FLAG_CRL_CHECK).
Status load_crls(SSL_CTX *ctx, const std::string &crl_file) {
  auto crls = read_crls(crl_file);
  if (!crls) return crls.error();
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  Status status;
  for (X509_CRL *crl : crls.value()) {
    if (status && X509_STORE_add_crl(store, crl) != 1) {
      status = settings_error("cannot use a CRL of crl-file '" + crl_file + "'");
    }
    X509_CRL_free(crl);  // the store holds its own reference
  }
  if (!status) return status;
  X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
  TF_DEBUG(kComp, "%zu CRLs loaded from %s", crls.value().size(), crl_file.c_str());
  return Status::Ok();
}

std::string asn1_time_text(const ASN1_TIME *t) {
  std::string out;
  BIO *mem = BIO_new(BIO_s_mem());
  if (mem && t && ASN1_TIME_print(mem, t) == 1) {
    char *data = nullptr;
    long n = BIO_get_mem_data(mem, &data);  // NOLINT(google-runtime-int): OpenSSL's type
    out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(mem);
  return out;
}

// Verification callback of peer_revoked(): notes a revocation, lets every
// other problem pass so the check reaches the CRL.
int note_revocation(int ok, X509_STORE_CTX *sctx) {
  if (!ok && X509_STORE_CTX_get_error(sctx) == X509_V_ERR_CERT_REVOKED) {
    *static_cast<bool *>(X509_STORE_CTX_get_app_data(sctx)) = true;
  }
  return 1;
}

bool is_ip_literal(const std::string &name) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

}  // namespace

const char *version_name(Version v) {
  return v == Version::kTls12 ? "TLS 1.2" : "TLS 1.3";
}

std::string server_certificate_problem(const std::string &cert_file) {
  ERR_clear_error();
  BIO *bio = BIO_new_file(cert_file.c_str(), "r");
  X509 *cert = bio ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  ERR_clear_error();
  if (!cert) return "";
  auto when = [](const ASN1_TIME *t) {
    std::string out;
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem && ASN1_TIME_print(mem, t) == 1) {
      char *data = nullptr;
      long n = BIO_get_mem_data(mem, &data);  // NOLINT(google-runtime-int): OpenSSL's type
      out.assign(data, static_cast<size_t>(n));
    }
    BIO_free(mem);
    return out;
  };
  std::string problem;
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    problem = "the server certificate expired on " + when(X509_get0_notAfter(cert));
  } else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    problem = "the server certificate is not valid until " + when(X509_get0_notBefore(cert));
  } else if (X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0) != 1) {
    problem =
        "the server certificate is not for TLS server use (its key usage or extended key "
        "usage does not allow it)";
  }
  X509_free(cert);
  ERR_clear_error();
  return problem;
}

std::vector<std::string> expired_crls(const std::string &crl_file) {
  std::vector<std::string> out;
  auto crls = read_crls(crl_file);
  if (!crls) return out;
  for (X509_CRL *crl : crls.value()) {
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    if (next && X509_cmp_current_time(next) < 0) {
      char *issuer = X509_NAME_oneline(X509_CRL_get_issuer(crl), nullptr, 0);
      out.push_back(std::string("the CRL of ") + (issuer ? issuer : "?") + " expired on " +
                    asn1_time_text(next) + " (its next update has passed)");
      OPENSSL_free(issuer);
    }
    X509_CRL_free(crl);
  }
  ERR_clear_error();
  return out;
}

bool peer_revoked(SSL *ssl, SSL_CTX *ctx) {
  X509 *leaf = ssl ? SSL_get0_peer_certificate(ssl) : nullptr;
  if (!leaf || !ctx) return false;
  ERR_clear_error();
  X509_STORE_CTX *sctx = X509_STORE_CTX_new();
  if (!sctx) return false;
  bool revoked = false;
  // On the server side the peer chain holds the intermediates the client sent (not the leaf).
  if (X509_STORE_CTX_init(sctx, SSL_CTX_get_cert_store(ctx), leaf, SSL_get_peer_cert_chain(ssl)) ==
      1) {
    X509_STORE_CTX_set_default(sctx, "ssl_client");
    X509_STORE_CTX_set_app_data(sctx, &revoked);
    X509_STORE_CTX_set_verify_cb(sctx, note_revocation);
    (void)X509_verify_cert(sctx);  // the callback records the one outcome that matters here
  }
  X509_STORE_CTX_free(sctx);
  ERR_clear_error();
  return revoked;
}

std::string drain_errors() {
  std::string out;
  unsigned long code;
  char buf[256];
  while ((code = ERR_get_error()) != 0) {
    ERR_error_string_n(code, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

namespace {

// Protocol version by ALPN (docs/PROTOCOL.md 8.1): "tlsframe/2" selected when
// offered; any other offer refused with the no_application_protocol alert
// (h2 is never selected; http/1.1 when the browser front is on: arg non-null).
// A client offering no ALPN never reaches this callback: it is a version 1 client.
int select_alpn(SSL *, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                unsigned int inlen, void *arg) {
  const wire::AlpnSelection s = wire::select_alpn(in, inlen, /*http_enabled=*/arg != nullptr);
  if (s.choice == wire::AlpnChoice::kNoOverlap) return SSL_TLSEXT_ERR_ALERT_FATAL;
  *out = s.protocol;
  *outlen = s.protocol_size;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Result<ContextPtr> make_server_context(const ServerTlsConfig &config) {
  auto made = new_context(asio::ssl::context::tls_server);
  if (!made) return made.error();
  SSL_CTX *ctx = made.value()->native_handle();
  if (Status s = common_setup(ctx, config.min_version); !s) return s.error();
  if (Status s = load_chain_and_key(ctx, config.cert_file, config.key_file, "server"); !s) {
    return s.error();
  }
  if (config.require_client_cert && config.ca_file.empty()) {
    return settings_error(
        "require-client-cert needs ca-file: the CAs trusted for client certificates");
  }
  if (!config.crl_file.empty() && config.ca_file.empty()) {
    return settings_error(
        "crl-file needs ca-file: CRLs revoke client certificates, which are only asked for "
        "with ca-file");
  }
  if (!config.ca_file.empty()) {
    if (Status s = load_trust(ctx, config.ca_file, "client CA file"); !s) return s.error();
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(config.ca_file.c_str());
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    int mode = SSL_VERIFY_PEER;
    if (config.require_client_cert) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, mode, nullptr);
    if (!config.crl_file.empty()) {
      if (Status s = load_crls(ctx, config.crl_file); !s) return s.error();
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  // No session resumption: tlsframesrc never resumes, and tickets would only
  // cost bytes per connection. The id context keeps verification-enabled
  // servers from failing a client that tries to resume anyway.
  static const unsigned char kSessionContext[] = "tlsframe";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
  static int http_on;  // its address marks the browser front on (select_alpn's arg)
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, config.http ? &http_on : nullptr);
  TF_DEBUG(kComp, "server context ready (min %s, client certs %s)",
           version_name(config.min_version),
           config.require_client_cert ? "required"
           : config.ca_file.empty()   ? "off"
                                      : "optional");
  return made;
}

namespace {

// Server certificate pinning (ClientTlsConfig::server_fingerprint). The pin
// replaces OpenSSL's whole chain verification through
// SSL_CTX_set_cert_verify_callback, so what is checked is stated in one
// place. The handshake itself is unchanged: TLS 1.3 CertificateVerify (and
// the signed key exchange of TLS 1.2) still makes the server prove it holds
// the private key of the very leaf whose digest is compared here.
constexpr size_t kSha256Size = 32;

struct Pin {
  unsigned char digest[kSha256Size];  // the expected SHA-256 of the leaf (DER)
  std::string text;                   // the same as "AB:CD:...", for messages
  bool with_chain = false;            // ca_file set too: the usual verification must also pass
};

// NOLINTNEXTLINE(google-runtime-int): OpenSSL's CRYPTO_EX_free signature
void free_pin(void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *) {
  delete static_cast<Pin *>(ptr);
}

// The SSL_CTX ex_data slot owning a context's Pin (freed with the context).
int pin_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_pin);
  return index;
}

std::string hex_pairs(const unsigned char *bytes, size_t n) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) out += ':';
    out += kHex[bytes[i] >> 4];
    out += kHex[bytes[i] & 0xF];
  }
  return out;
}

bool leaf_digest(X509 *leaf, unsigned char (&md)[EVP_MAX_MD_SIZE]) {
  unsigned int len = 0;
  return leaf && X509_digest(leaf, EVP_sha256(), md, &len) == 1 && len == kSha256Size;
}

int fail_verify(X509_STORE_CTX *store, X509 *leaf, int error) {
  X509_STORE_CTX_set_error_depth(store, 0);
  X509_STORE_CTX_set_current_cert(store, leaf);
  X509_STORE_CTX_set_error(store, error);
  return 0;
}

// Replaces X509_verify_cert for a pinned client context: the leaf's digest
// must equal the pin. Without a CA file the leaf must also be within its
// dates and usable for a TLS server; with one, X509_verify_cert (chain, name,
// dates, purpose) must pass as well. A mismatch is
// X509_V_ERR_APPLICATION_VERIFICATION, which pin_mismatch() recognises.
int verify_pinned(X509_STORE_CTX *store, void *arg) {
  const Pin *pin = static_cast<const Pin *>(arg);
  X509 *leaf = X509_STORE_CTX_get0_cert(store);
  unsigned char md[EVP_MAX_MD_SIZE];
  if (!leaf_digest(leaf, md)) return fail_verify(store, leaf, X509_V_ERR_UNSPECIFIED);
  if (CRYPTO_memcmp(md, pin->digest, kSha256Size) != 0) {
    return fail_verify(store, leaf, X509_V_ERR_APPLICATION_VERIFICATION);
  }
  if (pin->with_chain) return X509_verify_cert(store) == 1 ? 1 : 0;
  if (X509_cmp_current_time(X509_get0_notBefore(leaf)) != -1) {
    return fail_verify(store, leaf, X509_V_ERR_CERT_NOT_YET_VALID);
  }
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) != 1) {
    return fail_verify(store, leaf, X509_V_ERR_CERT_HAS_EXPIRED);
  }
  if (X509_check_purpose(leaf, X509_PURPOSE_SSL_SERVER, 0) != 1) {
    return fail_verify(store, leaf, X509_V_ERR_INVALID_PURPOSE);
  }
  return 1;
}

Status pin_server_certificate(SSL_CTX *ctx, const std::string &fingerprint, bool with_chain) {
  auto text = normalize_fingerprint(fingerprint);
  if (!text) return text.error();
  auto pin = std::make_unique<Pin>();
  pin->text = *text;
  for (size_t i = 0; i < kSha256Size; ++i) {
    pin->digest[i] = static_cast<unsigned char>(std::stoi(pin->text.substr(i * 3, 2), nullptr, 16));
  }
  pin->with_chain = with_chain;
  ERR_clear_error();
  if (pin_index() < 0 || SSL_CTX_set_ex_data(ctx, pin_index(), pin.get()) != 1) {
    return settings_error("cannot attach the server fingerprint to the TLS context");
  }
  Pin *owned = pin.release();  // now owned by the context (free_pin)
  SSL_CTX_set_cert_verify_callback(ctx, verify_pinned, owned);
  return Status::Ok();
}

}  // namespace

Result<std::string> normalize_fingerprint(const std::string &text) {
  std::string digits;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c)) || digits.size() == 2 * kSha256Size) {
      digits.clear();
      break;
    }
    digits += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (digits.size() != 2 * kSha256Size) {
    return Error{Error::Kind::kSettings,
                 "invalid server fingerprint '" + text.substr(0, 120) +
                     "': expected a SHA-256 fingerprint, 64 hex digits (colons optional), as "
                     "tlsframe serve prints it",
                 ""};
  }
  std::string out;
  for (size_t i = 0; i < digits.size(); i += 2) {
    if (i > 0) out += ':';
    out += digits.substr(i, 2);
  }
  return out;
}

std::optional<Error> pin_mismatch(SSL *ssl) {
  if (!ssl || SSL_get_verify_result(ssl) != X509_V_ERR_APPLICATION_VERIFICATION) {
    return std::nullopt;
  }
  const auto *pin =
      static_cast<const Pin *>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), pin_index()));
  if (!pin) return std::nullopt;
  // A failed verification leaves no peer certificate, but the chain the
  // server sent (leaf first, on the client side) is kept.
  X509 *leaf = SSL_get0_peer_certificate(ssl);
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
  if (!leaf && chain && sk_X509_num(chain) > 0) leaf = sk_X509_value(chain, 0);
  unsigned char md[EVP_MAX_MD_SIZE];
  std::string got = leaf_digest(leaf, md) ? hex_pairs(md, kSha256Size) : "(no certificate)";
  Error e;
  e.kind = Error::Kind::kVerify;
  e.message = "the server's certificate does not match the pinned fingerprint: expected " +
              pin->text + ", got " + got +
              " (a new server certificate needs the new fingerprint; otherwise this is not the "
              "server you pinned)";
  e.detail = drain_errors();
  return e;
}

Result<ContextPtr> make_client_context(const ClientTlsConfig &config) {
  auto made = new_context(asio::ssl::context::tls_client);
  if (!made) return made.error();
  SSL_CTX *ctx = made.value()->native_handle();
  if (Status s = common_setup(ctx, config.min_version); !s) return s.error();
  if (!SSL_CTX_set_max_proto_version(ctx, proto_version(config.max_version))) {
    return settings_error("cannot set the maximum TLS version");
  }
  const bool pinned = !config.server_fingerprint.empty();
  if (config.ca_file.empty()) {
    // Pinned without a CA file: the pin is the whole trust, no store needed.
    if (!pinned && SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return settings_error("cannot load the system's trusted CA store");
    }
  } else if (Status s = load_trust(ctx, config.ca_file, "CA file"); !s) {
    return s.error();
  }
  // The server is always verified; there is no switch to turn this off.
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (pinned) {
    Status s = pin_server_certificate(ctx, config.server_fingerprint, !config.ca_file.empty());
    if (!s) return s.error();
  }
  if (!config.cert_file.empty() || !config.key_file.empty()) {
    if (Status s = load_chain_and_key(ctx, config.cert_file, config.key_file, "client"); !s) {
      return s.error();
    }
  }
  return made;
}

Status set_expected_server_name(SSL *ssl, const std::string &name) {
  ERR_clear_error();
  if (name.empty()) return settings_error("no server name to verify the certificate against");
  X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
  // Names come from the subjectAltName only: without NEVER_CHECK_SUBJECT,
  // OpenSSL falls back to the subject CN when a certificate has no DNS
  // subjectAltName (RFC 6125 deprecates that; browsers refuse it).
  X509_VERIFY_PARAM_set_hostflags(
      param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
  if (is_ip_literal(name)) {
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str()) != 1) {
      return settings_error("invalid server address '" + name + "'");
    }
    return Status::Ok();
  }
  if (SSL_set1_host(ssl, name.c_str()) != 1)
    return settings_error("invalid server name '" + name + "'");
  if (SSL_set_tlsext_host_name(ssl, name.c_str()) != 1) {
    return settings_error("cannot set SNI server name '" + name + "'");
  }
  return Status::Ok();
}

std::string peer_subject(SSL *ssl) {
  X509 *cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return {};
  char *line = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
  std::string out = line ? line : "";
  OPENSSL_free(line);
  return out;
}

Error describe_failure(SSL *ssl, const std::error_code &ec, bool is_client) {
  Error e;
  e.kind = Error::Kind::kTls;
  e.detail = ec.message();
  std::string queued = drain_errors();
  if (!queued.empty()) e.detail += "; " + queued;

  if (ec == asio::ssl::error::stream_truncated || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::broken_pipe) {
    // A reset is how a peer that closes with unread data (e.g. session tickets) goes away.
    e.kind = Error::Kind::kClosed;
    e.message = "the peer closed the connection";
    return e;
  }
  if (ec.category() != asio::error::get_ssl_category()) {
    e.kind = ec == asio::error::operation_aborted ? Error::Kind::kCancelled : Error::Kind::kNetwork;
    e.message = "connection failed: " + ec.message();
    return e;
  }
  long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
  int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
  if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && verify != X509_V_OK) {
    e.kind = Error::Kind::kVerify;
    e.message = std::string(is_client ? "server" : "client") +
                " certificate verification failed: " + X509_verify_cert_error_string(verify);
    if (verify == X509_V_ERR_CRL_HAS_EXPIRED) {
      e.message += " (crl-file: the CRL's next update has passed; load a current CRL)";
    } else if (verify == X509_V_ERR_UNABLE_TO_GET_CRL) {
      e.message += " (crl-file has no CRL from the CA of this certificate)";
    }
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      e.message += " (the name must be in the certificate's subjectAltName; its subject CN is "
                   "never used)";
    }
    return e;
  }
  switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      e.kind = Error::Kind::kPeerRefused;
      e.message = "the client sent no certificate, but one is required";
      return e;
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      e.kind = Error::Kind::kPeerRefused;
      e.message = "the server requires a client certificate (set cert-file and key-file)";
      return e;
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
      e.kind = Error::Kind::kPeerRefused;
      e.message = std::string("the ") + (is_client ? "server" : "client") +
                  " refused our certificate: it has been revoked (certificate_revoked alert)";
      return e;
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
      e.kind = Error::Kind::kPeerRefused;
      e.message = std::string("the ") + (is_client ? "server" : "client") +
                  " refused our certificate: " + ec.message();
      return e;
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
      e.kind = Error::Kind::kPeerRefused;
      e.message = "no TLS version in common with the peer (" + ec.message() + ")";
      return e;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
      e.message = "the peer does not speak TLS (" + ec.message() + ")";
      return e;
    default:
      e.message = "TLS failure: " + ec.message();
      return e;
  }
}

}  // namespace tlsframe::tls
