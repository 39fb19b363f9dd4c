// Certificate generation with OpenSSL's API (no shell-out): a CA, server and
// client certificates. Used by tests (certificates made at test time) and by
// the `tlsframe certs` tool.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"

namespace tlsframe::certgen {

enum class KeyType { kEcdsaP256, kRsa2048 };
// Extended key usage of the certificate.
enum class Usage { kCa, kServer, kClient, kNone };

struct CertSpec {
  std::string common_name;                // subject CN
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries (IPv4 or IPv6 text)
  Usage usage = Usage::kServer;           // kCa sets basicConstraints CA:TRUE, keyCertSign
  KeyType key_type = KeyType::kEcdsaP256;
  int64_t not_before_offset_s = -3600;       // validity start relative to now
  int64_t not_after_offset_s = 825 * 86400;  // validity end relative to now
};

// A certificate and its private key, both PEM.
struct Issued {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed certificate (a CA when spec.usage == kCa).
Result<Issued> make_self_signed(const CertSpec &spec);
// A certificate signed by issuer (which must hold a CA certificate and key).
Result<Issued> issue(const CertSpec &spec, const Issued &issuer);

// "AB:CD:..." SHA-256 fingerprint of the first certificate in cert_pem.
Result<std::string> fingerprint_sha256(const std::string &cert_pem);

// One entry of a certificate revocation list.
struct RevokedCert {
  std::string serial_hex;  // the certificate's serial number, uppercase hex without colons
  int64_t revoked_at = 0;  // revocation date, Unix seconds
};

struct CrlSpec {
  std::vector<RevokedCert> revoked;           // in any order; duplicates are refused
  int64_t this_update_offset_s = 0;           // thisUpdate relative to now
  int64_t next_update_offset_s = 30 * 86400;  // nextUpdate relative to now (negative: expired)
  uint64_t crl_number = 1;                    // the crlNumber extension; grows with each issue
};

// A CRL in its contents, as read_crl() returns it.
struct CrlContents {
  std::vector<RevokedCert> revoked;
  uint64_t crl_number = 0;  // 0 = the CRL has no crlNumber
  int64_t next_update = 0;  // Unix seconds (0 = none)
};

// A version 2 CRL (PEM) signed by issuer (a CA certificate and its key), with
// crlNumber and authorityKeyIdentifier, SHA-256 signature.
Result<std::string> make_crl(const CrlSpec &spec, const Issued &issuer);
// Reads a PEM CRL and checks that issuer_cert_pem's key signed it and its
// issuer name is that certificate's subject; an Error otherwise.
Result<CrlContents> read_crl(const std::string &crl_pem, const std::string &issuer_cert_pem);
// The serial number of the first certificate in cert_pem (uppercase hex).
Result<std::string> serial_hex(const std::string &cert_pem);
// Whether issuer_cert_pem signed cert_pem (name and signature).
Result<bool> issued_by(const std::string &cert_pem, const std::string &issuer_cert_pem);

// Write text to path. Private keys use mode 0600 (private_key = true), others
// 0644. Refuses to replace an existing file unless overwrite is true.
Status write_file(const std::string &path, const std::string &text, bool private_key,
                  bool overwrite);

}  // namespace tlsframe::certgen
