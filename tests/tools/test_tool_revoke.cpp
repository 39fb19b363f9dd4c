// tlsframe certs --revoke (issue 12): DIR/crl.pem beside the CA, checked
// with the openssl command: the revoked serials are listed, a later revoke
// keeps the earlier ones, a repeat changes nothing but the dates, and
// `openssl verify -crl_check` refuses exactly the revoked certificates.
#include <fstream>
#include <sstream>

#include "tools/tool_fixture.h"

namespace tlsframe::test {
namespace {

constexpr const char *kOpenssl = "/usr/bin/openssl";

// "serial=0123AB" from `openssl x509 -serial`: the hex part, uppercase.
std::string serial_of(const std::string &cert) {
  RunResult r = run_process({kOpenssl, "x509", "-in", cert, "-noout", "-serial"}, 30s);
  EXPECT_EQ(r.status, 0) << r.transcript;
  if (r.out.empty()) return "";
  std::string line = r.out[0];
  std::string hex = line.substr(line.find('=') + 1);
  for (char &c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return hex;
}

// `openssl crl -text` of the CRL, uppercased (serials are compared as upper hex).
std::string crl_text(const std::string &crl) {
  RunResult r = run_process({kOpenssl, "crl", "-in", crl, "-noout", "-text"}, 30s);
  EXPECT_EQ(r.status, 0) << r.transcript;
  std::string text;
  for (const auto &l : r.out) text += l + "\n";
  for (char &c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

size_t count_of(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// `openssl verify` with the CRL checked: 0 = valid, else refused.
RunResult verify_with_crl(const std::string &certs, const std::string &cert) {
  return run_process({kOpenssl, "verify", "-crl_check", "-CAfile", certs + "/ca.pem", "-CRLfile",
                      certs + "/crl.pem", cert},
                     30s);
}

class RevokeTest : public ToolTest {
 protected:
  void SetUp() override {
    ToolTest::SetUp();
    certs_ = make_certs();  // client alice
    RunResult bob =
        run_process(cmd({"certs", "--out", certs_, "--client", "bob"}), 30s, quiet_env());
    ASSERT_EQ(bob.status, 0) << bob.transcript;
  }
  RunResult revoke(const std::vector<std::string> &extra) {
    std::vector<std::string> args = {"certs", "--out", certs_};
    for (const auto &name : extra) {
      args.push_back("--revoke");
      args.push_back(name);
    }
    return run_process(cmd(args), 30s, quiet_env());
  }
  std::string certs_;
};

TEST_F(RevokeTest, RevokedSerialIsListedAndOpensslRefusesOnlyThatCertificate) {
  const std::string alice = serial_of(certs_ + "/client-alice.pem");
  ASSERT_FALSE(alice.empty());
  RunResult r = revoke({"alice"});
  ASSERT_EQ(r.status, 0) << r.transcript;
  EXPECT_NE(r.transcript.find("revoked " + certs_ + "/client-alice.pem"), std::string::npos)
      << r.transcript;
  EXPECT_NE(r.transcript.find("wrote " + certs_ + "/crl.pem: 1 revoked"), std::string::npos)
      << r.transcript;

  std::string text = crl_text(certs_ + "/crl.pem");
  EXPECT_NE(text.find("SERIAL NUMBER: " + alice), std::string::npos) << text;
  EXPECT_EQ(count_of(text, "SERIAL NUMBER:"), 1u) << text;
  EXPECT_NE(text.find("ISSUER: CN = TLSFRAME CA"), std::string::npos) << text;
  EXPECT_NE(text.find("NEXT UPDATE"), std::string::npos) << text;
  EXPECT_NE(text.find("X509V3 CRL NUMBER"), std::string::npos) << text;

  RunResult refused = verify_with_crl(certs_, certs_ + "/client-alice.pem");
  EXPECT_NE(refused.status, 0) << refused.transcript;
  EXPECT_NE(refused.transcript.find("certificate revoked"), std::string::npos)
      << refused.transcript;
  RunResult accepted = verify_with_crl(certs_, certs_ + "/client-bob.pem");
  EXPECT_EQ(accepted.status, 0) << accepted.transcript;
}

TEST_F(RevokeTest, SecondRevokeKeepsTheFirstAndRepeatChangesOnlyTheDates) {
  const std::string alice = serial_of(certs_ + "/client-alice.pem");
  const std::string bob = serial_of(certs_ + "/client-bob.pem");
  ASSERT_EQ(revoke({"alice"}).status, 0);
  RunResult second = revoke({"bob"});
  ASSERT_EQ(second.status, 0) << second.transcript;
  std::string text = crl_text(certs_ + "/crl.pem");
  EXPECT_NE(text.find("SERIAL NUMBER: " + alice), std::string::npos) << text;
  EXPECT_NE(text.find("SERIAL NUMBER: " + bob), std::string::npos) << text;
  EXPECT_EQ(count_of(text, "SERIAL NUMBER:"), 2u) << text;
  EXPECT_NE(verify_with_crl(certs_, certs_ + "/client-bob.pem").status, 0);

  // Again: nothing added, both still listed, the CRL re-signed (number 3).
  RunResult again = revoke({"alice"});
  ASSERT_EQ(again.status, 0) << again.transcript;
  EXPECT_NE(again.transcript.find("was already revoked on"), std::string::npos) << again.transcript;
  text = crl_text(certs_ + "/crl.pem");
  EXPECT_EQ(count_of(text, "SERIAL NUMBER:"), 2u) << text;
  EXPECT_NE(again.transcript.find("CRL number 3"), std::string::npos) << again.transcript;
}

TEST_F(RevokeTest, RefusesUnknownNamesForeignCertificatesAndMixedRuns) {
  RunResult missing = revoke({"carol"});
  EXPECT_NE(missing.status, 0) << missing.transcript;
  EXPECT_NE(missing.transcript.find("client-carol.pem"), std::string::npos) << missing.transcript;

  // A certificate of another CA: its serial means nothing in this CA's CRL.
  std::string other = make_certs("other");
  RunResult foreign = revoke({other + "/client-alice.pem"});
  EXPECT_NE(foreign.status, 0) << foreign.transcript;
  EXPECT_NE(foreign.transcript.find("was not signed by the CA"), std::string::npos)
      << foreign.transcript;

  RunResult mixed = run_process(
      cmd({"certs", "--out", certs_, "--revoke", "alice", "--client", "dave"}), 30s, quiet_env());
  EXPECT_NE(mixed.status, 0) << mixed.transcript;
  // Nothing of the refused runs reached the directory.
  std::ifstream crl(certs_ + "/crl.pem");
  EXPECT_FALSE(crl.good());
}

}  // namespace
}  // namespace tlsframe::test
