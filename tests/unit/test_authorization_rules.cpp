// authorized-clients rules (core/authorization.h): what parses, what each
// form matches and with which case rules, and the identity read from a real
// certificate made at test time. No network.
#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/pki.h"
#include "core/authorization.h"
#include "core/certgen.h"

namespace tlsframe::authz {
namespace {

Rule rule(const std::string &text) {
  Result<Rule> r = parse_rule(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.error().message;
  return r.ok() ? r.value() : Rule{};
}

std::string parse_error(const std::string &text) {
  Result<Rule> r = parse_rule(text);
  return r.ok() ? "" : r.error().message;
}

Identity sample() {
  Identity id;
  id.present = true;
  id.common_names = {"Alice Example"};
  id.dns_names = {"viewer.example.org"};
  id.uris = {"spiffe://example.org/viewer"};
  id.emails = {"Alice@Example.ORG"};
  id.sha256 =
      "0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:"
      "E8:F9";
  return id;
}

TEST(AuthorizationRules, EveryFormParsesAndPrefixesIgnoreCase) {
  EXPECT_EQ(rule("CN=alice").kind, Rule::Kind::kCommonName);
  EXPECT_EQ(rule("cn=alice").value, "alice");
  EXPECT_EQ(rule("DNS:a.example").kind, Rule::Kind::kDns);
  EXPECT_EQ(rule("dns:a.example").kind, Rule::Kind::kDns);
  EXPECT_EQ(rule("URI:spiffe://x/y").kind, Rule::Kind::kUri);
  EXPECT_EQ(rule("email:a@b.c").kind, Rule::Kind::kEmail);
  EXPECT_EQ(rule("Email:a@b.c").kind, Rule::Kind::kEmail);
  EXPECT_EQ(rule("SHA256:" + std::string(64, 'a')).kind, Rule::Kind::kSha256);
  // A value keeps everything after the prefix, '=' and ':' included.
  EXPECT_EQ(rule("CN=a=b:c").value, "a=b:c");
}

TEST(AuthorizationRules, FingerprintIsNormalizedColonsOptionalAnyCase) {
  const std::string plain = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
  std::string colons;
  for (size_t i = 0; i < plain.size(); i += 2) {
    if (i) colons += ':';
    colons += plain.substr(i, 2);
  }
  const std::string upper = "0A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8F9";
  EXPECT_EQ(rule("sha256:" + plain).value, upper);
  EXPECT_EQ(rule("sha256:" + colons).value, upper);
  EXPECT_TRUE(matches(rule("sha256:" + plain), sample()));
  EXPECT_TRUE(matches(rule("sha256:" + colons), sample()));
  EXPECT_EQ(rule_text(rule("sha256:" + colons)), "sha256:" + upper);
}

TEST(AuthorizationRules, MalformedRulesAreRefusedNamingTheEntry) {
  EXPECT_NE(parse_error("alice").find("\"alice\" is not a rule"), std::string::npos)
      << parse_error("alice");
  EXPECT_NE(parse_error("alice").find("CN=NAME"), std::string::npos);
  EXPECT_NE(parse_error("O=Example").find("is not a rule"), std::string::npos);
  EXPECT_NE(parse_error("CN=").find("nothing after its prefix"), std::string::npos);
  EXPECT_NE(parse_error("DNS:").find("nothing after its prefix"), std::string::npos);
  EXPECT_NE(parse_error("sha256:abc").find("64 hex digits (3 given)"), std::string::npos)
      << parse_error("sha256:abc");
  EXPECT_NE(parse_error("sha256:" + std::string(64, 'g')).find("64 hex digits"),
            std::string::npos);
  EXPECT_NE(parse_error("").find("is not a rule"), std::string::npos);

  Result<std::vector<Rule>> all = parse_rules({"CN=a", "bogus", "DNS:b"});
  ASSERT_FALSE(all.ok());
  EXPECT_NE(all.error().message.find("\"bogus\""), std::string::npos);
  EXPECT_EQ(all.error().kind, Error::Kind::kSettings);
}

TEST(AuthorizationRules, CaseRulesPerForm) {
  const Identity id = sample();
  // CN and URI: exact.
  EXPECT_TRUE(matches(rule("CN=Alice Example"), id));
  EXPECT_FALSE(matches(rule("CN=alice example"), id));
  EXPECT_FALSE(matches(rule("CN=Alice"), id));
  EXPECT_TRUE(matches(rule("URI:spiffe://example.org/viewer"), id));
  EXPECT_FALSE(matches(rule("URI:SPIFFE://example.org/viewer"), id));
  // DNS: ASCII case-insensitive, whole names only (no wildcard, no suffix).
  EXPECT_TRUE(matches(rule("DNS:Viewer.Example.ORG"), id));
  EXPECT_FALSE(matches(rule("DNS:example.org"), id));
  EXPECT_FALSE(matches(rule("DNS:*.example.org"), id));
  // email: the domain without case, the local part exactly.
  EXPECT_TRUE(matches(rule("email:Alice@example.org"), id));
  EXPECT_FALSE(matches(rule("email:alice@example.org"), id));
  // The forms do not cross: a CN is not a DNS name.
  EXPECT_FALSE(matches(rule("DNS:Alice Example"), id));
  EXPECT_FALSE(matches(rule("CN=viewer.example.org"), id));
}

TEST(AuthorizationRules, EmptyRulesAuthorizeEveryoneOtherwiseOneMustMatch) {
  Identity none;  // no certificate
  EXPECT_TRUE(authorized({}, none));
  EXPECT_TRUE(authorized({}, sample()));
  const std::vector<Rule> rules = {rule("CN=bob"), rule("DNS:viewer.example.org")};
  EXPECT_TRUE(authorized(rules, sample()));
  EXPECT_FALSE(authorized({rule("CN=bob")}, sample()));
  EXPECT_FALSE(authorized(rules, none)) << "no certificate never matches a rule";
}

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

X509 *load_cert(const std::string &pem) {
  BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509 *cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return cert;
}

TEST(AuthorizationIdentity, ReadFromARealCertificate) {
  test::Pki pki;
  ASSERT_TRUE(pki.issue_client("viewer", "viewer one", {"viewer.example.org", "Alt.Example"}));
  const std::string pem = read_file(pki.path("viewer.pem"));
  X509 *cert = load_cert(pem);
  ASSERT_NE(cert, nullptr);
  const Identity id = identity_of(cert);
  X509_free(cert);

  EXPECT_TRUE(id.present);
  EXPECT_EQ(id.subject, "/CN=viewer one");
  EXPECT_EQ(id.issuer, "/CN=tlsframe test CA");
  EXPECT_EQ(id.common_names, std::vector<std::string>{"viewer one"});
  EXPECT_EQ(id.dns_names, (std::vector<std::string>{"viewer.example.org", "Alt.Example"}));
  EXPECT_TRUE(id.uris.empty());
  EXPECT_TRUE(id.emails.empty());
  auto fp = certgen::fingerprint_sha256(pem);
  ASSERT_TRUE(fp.ok());
  EXPECT_EQ(id.sha256, *fp);
  auto serial = certgen::serial_hex(pem);
  ASSERT_TRUE(serial.ok());
  EXPECT_EQ(id.serial, *serial);
  // certgen's default validity: 825 days from now.
  const int64_t expected = static_cast<int64_t>(std::time(nullptr)) + int64_t{825} * 86400;
  EXPECT_NEAR(static_cast<double>(id.not_after), static_cast<double>(expected), 120.0);

  EXPECT_TRUE(authorized({rule("CN=viewer one")}, id));
  EXPECT_TRUE(authorized({rule("DNS:alt.example")}, id));
  EXPECT_TRUE(authorized({rule("sha256:" + *fp)}, id));
  EXPECT_FALSE(authorized({rule("CN=viewer")}, id));
}

TEST(AuthorizationIdentity, ServerCertificateIpAddressesAsText) {
  test::Pki pki;
  X509 *cert = load_cert(read_file(pki.server_cert()));
  ASSERT_NE(cert, nullptr);
  const Identity id = identity_of(cert);
  X509_free(cert);
  EXPECT_EQ(id.ip_addresses, (std::vector<std::string>{"127.0.0.1", "::1"}));
  EXPECT_EQ(id.dns_names, std::vector<std::string>{"localhost"});
}

TEST(AuthorizationIdentity, NoCertificateIsAnEmptyIdentity) {
  const Identity id = identity_of(nullptr);
  EXPECT_FALSE(id.present);
  EXPECT_TRUE(id.subject.empty());
  EXPECT_TRUE(id.sha256.empty());
}

}  // namespace
}  // namespace tlsframe::authz
