// Who may watch a stream: a client's identity read from its certificate, and
// the authorized-clients rules matched against it. Pure: no socket, no
// session, no GStreamer; unit-tested (tests/unit/test_authorization_rules.cpp).
//
// Rules (one string each, docs/SECURITY.md "Authorization"):
//   CN=NAME        a commonName of the subject, exact (case-sensitive)
//   DNS:NAME       a subjectAltName DNS entry, ASCII case-insensitive, no wildcard expansion
//   URI:URI        a subjectAltName URI entry, exact (case-sensitive)
//   email:ADDRESS  a subjectAltName email (or subject emailAddress): local part exact,
//                  domain case-insensitive
//   sha256:HEX     the SHA-256 fingerprint of the leaf certificate: 64 hex digits, colons
//                  optional, any case
// The prefix itself is case-insensitive ("cn=", "dns:", "SHA256:" ...).
// Surrounding spaces of the value are not trimmed: a rule is taken as written.
//
// Threads: all functions are pure, callable from any thread.
#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace tlsframe::authz {

// What a client certificate says about its holder (all "" / empty when the
// client sent no certificate: present == false).
struct Identity {
  bool present = false;                    // the client sent a certificate
  std::string subject;                     // "/CN=client1/O=..." (X509_NAME_oneline form)
  std::string issuer;                      // the same form
  std::string serial;                      // uppercase hex, no separators ("0" for zero)
  std::string sha256;                      // "AB:CD:..." uppercase, of the DER leaf
  int64_t not_after = 0;                   // seconds since the Unix epoch (UTC)
  std::vector<std::string> common_names;   // every CN of the subject, in order
  std::vector<std::string> dns_names;      // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;   // subjectAltName IP entries as text
  std::vector<std::string> uris;           // subjectAltName URI entries
  std::vector<std::string> emails;         // subjectAltName email entries, then subject emailAddress
};

// The identity of a certificate (nullptr: present == false).
Identity identity_of(X509 *cert);

struct Rule {
  enum class Kind { kCommonName, kDns, kUri, kEmail, kSha256 };
  Kind kind = Kind::kCommonName;
  std::string value;  // as written after the prefix; for kSha256, 64 uppercase hex digits
};

// "CN=client1" -> Rule. The error names the rule and the accepted forms.
Result<Rule> parse_rule(std::string_view text);
// Every rule, or the first that does not parse.
Result<std::vector<Rule>> parse_rules(const std::vector<std::string> &texts);

// The rule as it would be written ("CN=client1", "sha256:AB12..."): for logs.
std::string rule_text(const Rule &rule);

bool matches(const Rule &rule, const Identity &id);
// No rules: every client (the CA's word is enough). Otherwise a certificate
// that matches at least one rule.
bool authorized(const std::vector<Rule> &rules, const Identity &id);

}  // namespace tlsframe::authz
