// Identity extraction and authorized-clients matching (see authorization.h).
#include "core/authorization.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <functional>

namespace tlsframe::authz {
namespace {

constexpr const char *kForms =
    "expected CN=NAME, DNS:NAME, URI:URI, email:ADDRESS or sha256:FINGERPRINT";

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char &c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && lower_ascii(a) == lower_ascii(b);
}

std::string asn1_text(const ASN1_STRING *s) {
  if (!s) return {};
  unsigned char *utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0 || !utf8) return {};
  std::string out(reinterpret_cast<const char *>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::string name_line(const X509_NAME *name) {
  char *line = X509_NAME_oneline(name, nullptr, 0);
  std::string out = line ? line : "";
  OPENSSL_free(line);
  return out;
}

std::vector<std::string> name_entries(const X509_NAME *name, int nid) {
  std::vector<std::string> out;
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, nid, i)) {
    out.push_back(asn1_text(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i))));
  }
  return out;
}

std::string hex_upper(const unsigned char *p, size_t n, bool colons) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (colons && i > 0) out += ':';
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 0xF];
  }
  return out;
}

std::string serial_hex(X509 *cert) {
  BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
  if (!bn) return {};
  char *hex = BN_bn2hex(bn);
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

std::string ip_text(const ASN1_OCTET_STRING *ip) {
  const unsigned char *p = ASN1_STRING_get0_data(ip);
  const int n = ASN1_STRING_length(ip);
  char buf[INET6_ADDRSTRLEN] = "";
  if (n == 4 && inet_ntop(AF_INET, p, buf, sizeof buf)) return buf;
  if (n == 16 && inet_ntop(AF_INET6, p, buf, sizeof buf)) return buf;
  return {};
}

int64_t epoch_seconds(const ASN1_TIME *t) {
  struct tm tm {};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

// The domain of an address compares without case, its local part exactly.
bool same_email(std::string_view a, std::string_view b) {
  const size_t at_a = a.rfind('@');
  const size_t at_b = b.rfind('@');
  if (at_a == std::string_view::npos || at_b == std::string_view::npos) return a == b;
  return a.substr(0, at_a) == b.substr(0, at_b) &&
         equal_ignoring_case(a.substr(at_a + 1), b.substr(at_b + 1));
}

bool any_of(const std::vector<std::string> &values,
            const std::function<bool(const std::string &)> &pred) {
  return std::any_of(values.begin(), values.end(), pred);
}

}  // namespace

Identity identity_of(X509 *cert) {
  Identity id;
  if (!cert) return id;
  id.present = true;
  id.subject = name_line(X509_get_subject_name(cert));
  id.issuer = name_line(X509_get_issuer_name(cert));
  id.serial = serial_hex(cert);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) == 1) id.sha256 = hex_upper(md, len, true);
  id.not_after = epoch_seconds(X509_get0_notAfter(cert));
  id.common_names = name_entries(X509_get_subject_name(cert), NID_commonName);

  auto *sans = static_cast<GENERAL_NAMES *>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
    switch (gn->type) {
      case GEN_DNS:
        id.dns_names.push_back(asn1_text(gn->d.dNSName));
        break;
      case GEN_URI:
        id.uris.push_back(asn1_text(gn->d.uniformResourceIdentifier));
        break;
      case GEN_EMAIL:
        id.emails.push_back(asn1_text(gn->d.rfc822Name));
        break;
      case GEN_IPADD:
        if (std::string ip = ip_text(gn->d.iPAddress); !ip.empty()) {
          id.ip_addresses.push_back(ip);
        }
        break;
      default:
        break;
    }
  }
  GENERAL_NAMES_free(sans);
  for (std::string &e : name_entries(X509_get_subject_name(cert), NID_pkcs9_emailAddress)) {
    id.emails.push_back(std::move(e));
  }
  ERR_clear_error();  // a certificate without a SAN leaves nothing worth reporting
  return id;
}

Result<Rule> parse_rule(std::string_view text) {
  struct Prefix {
    const char *text;
    Rule::Kind kind;
  };
  static const Prefix kPrefixes[] = {
      {"cn=", Rule::Kind::kCommonName}, {"dns:", Rule::Kind::kDns},
      {"uri:", Rule::Kind::kUri},       {"email:", Rule::Kind::kEmail},
      {"sha256:", Rule::Kind::kSha256},
  };
  const std::string quoted = "authorized-clients entry \"" + std::string(text) + "\"";
  for (const Prefix &p : kPrefixes) {
    const size_t n = std::strlen(p.text);
    if (text.size() < n || lower_ascii(text.substr(0, n)) != p.text) continue;
    Rule rule;
    rule.kind = p.kind;
    rule.value = std::string(text.substr(n));
    if (rule.value.empty()) {
      return Error{Error::Kind::kSettings, quoted + " has nothing after its prefix", ""};
    }
    if (rule.kind == Rule::Kind::kSha256) {
      std::string hex;
      for (char c : rule.value) {
        if (c == ':') continue;
        if (!std::isxdigit(static_cast<unsigned char>(c))) {
          return Error{Error::Kind::kSettings,
                       quoted + ": a SHA-256 fingerprint is 64 hex digits, colons optional", ""};
        }
        hex += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      }
      if (hex.size() != 64) {
        return Error{Error::Kind::kSettings,
                     quoted + ": a SHA-256 fingerprint is 64 hex digits (" +
                         std::to_string(hex.size()) + " given), colons optional",
                     ""};
      }
      rule.value = hex;
    }
    return rule;
  }
  return Error{Error::Kind::kSettings, quoted + " is not a rule: " + kForms, ""};
}

Result<std::vector<Rule>> parse_rules(const std::vector<std::string> &texts) {
  std::vector<Rule> rules;
  for (const std::string &t : texts) {
    Result<Rule> r = parse_rule(t);
    if (!r) return r.error();
    rules.push_back(std::move(r.value()));
  }
  return rules;
}

std::string rule_text(const Rule &rule) {
  switch (rule.kind) {
    case Rule::Kind::kCommonName:
      return "CN=" + rule.value;
    case Rule::Kind::kDns:
      return "DNS:" + rule.value;
    case Rule::Kind::kUri:
      return "URI:" + rule.value;
    case Rule::Kind::kEmail:
      return "email:" + rule.value;
    case Rule::Kind::kSha256:
      return "sha256:" + rule.value;
  }
  return rule.value;
}

bool matches(const Rule &rule, const Identity &id) {
  if (!id.present) return false;
  const std::string &v = rule.value;
  switch (rule.kind) {
    case Rule::Kind::kCommonName:
      return any_of(id.common_names, [&](const std::string &cn) { return cn == v; });
    case Rule::Kind::kDns:
      return any_of(id.dns_names, [&](const std::string &d) { return equal_ignoring_case(d, v); });
    case Rule::Kind::kUri:
      return any_of(id.uris, [&](const std::string &u) { return u == v; });
    case Rule::Kind::kEmail:
      return any_of(id.emails, [&](const std::string &e) { return same_email(e, v); });
    case Rule::Kind::kSha256: {
      std::string fp;
      for (char c : id.sha256) {
        if (c != ':') fp += c;
      }
      return fp == v;
    }
  }
  return false;
}

bool authorized(const std::vector<Rule> &rules, const Identity &id) {
  if (rules.empty()) return true;
  return std::any_of(rules.begin(), rules.end(), [&](const Rule &r) { return matches(r, id); });
}

}  // namespace tlsframe::authz
