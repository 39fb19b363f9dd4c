// core/certgen and tests/common/pki: the certificates verify (or fail) the way
// OpenSSL and the openssl command line see them.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/pki.h"
#include "core/certgen.h"

namespace tlsframe {
namespace {

using certgen::CertSpec;
using certgen::Issued;
using certgen::KeyType;
using certgen::Usage;

constexpr const char *kOpensslCli = "/usr/bin/openssl";
constexpr int64_t kDay = 86400;

struct X509Free {
  void operator()(X509 *p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY *p) const { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO *p) const { BIO_free(p); }
};
struct StoreFree {
  void operator()(X509_STORE *p) const { X509_STORE_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX *p) const { X509_STORE_CTX_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

X509Ptr parse_cert(const std::string &pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

PkeyPtr parse_key(const std::string &pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string read_text(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// X509_V_OK or the verification error of cert against the trusted CA,
// checked for purpose (X509_PURPOSE_SSL_SERVER / _CLIENT).
int verify(X509 *cert, X509 *trusted, int purpose) {
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  if (X509_STORE_add_cert(store.get(), trusted) != 1) return -1;
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert, nullptr) != 1) return -1;
  if (X509_STORE_CTX_set_purpose(ctx.get(), purpose) != 1) return -1;
  int ok = X509_verify_cert(ctx.get());
  int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return ok == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

int verify_pem(const std::string &cert_pem, const std::string &ca_pem, int purpose) {
  X509Ptr cert = parse_cert(cert_pem);
  X509Ptr ca = parse_cert(ca_pem);
  if (!cert || !ca) return -1;
  return verify(cert.get(), ca.get(), purpose);
}

std::string verify_text(int err) {
  return err < 0 ? "setup failed" : X509_verify_cert_error_string(err);
}

// Runs a shell command; returns its stdout+stderr and sets *status to the exit code.
std::string run(const std::string &cmd, int *status) {
  std::string out;
  // The command line is built by the test from fixed text and quoted temp paths.
  FILE *p = ::popen((cmd + " 2>&1").c_str(), "r");  // NOLINT(cert-env33-c)
  if (p == nullptr) {
    *status = -1;
    return out;
  }
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

std::string quote(const std::string &s) {
  return "'" + s + "'";
}

bool have_openssl_cli() {
  return ::access(kOpensslCli, X_OK) == 0;
}

mode_t file_mode(const std::string &path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

CertSpec ca_spec(KeyType type = KeyType::kEcdsaP256) {
  CertSpec spec;
  spec.common_name = "certgen test CA";
  spec.usage = Usage::kCa;
  spec.key_type = type;
  return spec;
}

CertSpec server_spec(KeyType type = KeyType::kEcdsaP256) {
  CertSpec spec;
  spec.common_name = "localhost";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1", "::1"};
  spec.usage = Usage::kServer;
  spec.key_type = type;
  return spec;
}

CertSpec client_spec(KeyType type = KeyType::kEcdsaP256) {
  CertSpec spec;
  spec.common_name = "client1";
  spec.usage = Usage::kClient;
  spec.key_type = type;
  return spec;
}

// A CA with a server and a client certificate, made once per test.
class CertgenChain : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<Issued> ca = certgen::make_self_signed(ca_spec());
    ASSERT_TRUE(ca.ok()) << ca.error().message << ": " << ca.error().detail;
    ca_ = *ca;
    Result<Issued> server = certgen::issue(server_spec(), ca_);
    ASSERT_TRUE(server.ok()) << server.error().message << ": " << server.error().detail;
    server_ = *server;
    Result<Issued> client = certgen::issue(client_spec(), ca_);
    ASSERT_TRUE(client.ok()) << client.error().message << ": " << client.error().detail;
    client_ = *client;
  }

  Issued ca_, server_, client_;
};

TEST_F(CertgenChain, ServerAndClientVerifyAgainstCaForTheirPurpose) {
  EXPECT_EQ(verify_pem(server_.cert_pem, ca_.cert_pem, X509_PURPOSE_SSL_SERVER), X509_V_OK);
  EXPECT_EQ(verify_pem(client_.cert_pem, ca_.cert_pem, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
}

TEST_F(CertgenChain, ExtendedKeyUsageRestrictsEachCertToItsRole) {
  EXPECT_EQ(verify_pem(server_.cert_pem, ca_.cert_pem, X509_PURPOSE_SSL_CLIENT),
            X509_V_ERR_INVALID_PURPOSE);
  EXPECT_EQ(verify_pem(client_.cert_pem, ca_.cert_pem, X509_PURPOSE_SSL_SERVER),
            X509_V_ERR_INVALID_PURPOSE);
}

TEST_F(CertgenChain, ServerSanMatchesLocalhostAndBothLoopbackAddressesOnly) {
  X509Ptr cert = parse_cert(server_.cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "0:0:0:0:0:0:0:1", 0), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "example.com", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.2", 0), 0);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::2", 0), 0);
}

TEST_F(CertgenChain, CaHasCriticalCaConstraintAndCertSignUsageWithoutEku) {
  X509Ptr ca = parse_cert(ca_.cert_pem);
  ASSERT_TRUE(ca);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  int idx = X509_get_ext_by_NID(ca.get(), NID_basic_constraints, -1);
  ASSERT_GE(idx, 0);
  EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(ca.get(), idx)), 1);
  EXPECT_EQ(X509_get_key_usage(ca.get()), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_FALSE(X509_get_extension_flags(ca.get()) & EXFLAG_XKUSAGE);
  EXPECT_NE(X509_get0_subject_key_id(ca.get()), nullptr);
  EXPECT_TRUE(X509_get_extension_flags(ca.get()) & EXFLAG_SS);
}

TEST_F(CertgenChain, LeafHasCaFalseDigitalSignatureAndOneEku) {
  X509Ptr server = parse_cert(server_.cert_pem);
  X509Ptr client = parse_cert(client_.cert_pem);
  ASSERT_TRUE(server && client);
  for (X509 *leaf : {server.get(), client.get()}) {
    EXPECT_EQ(X509_check_ca(leaf), 0);
    int idx = X509_get_ext_by_NID(leaf, NID_basic_constraints, -1);
    ASSERT_GE(idx, 0);
    EXPECT_EQ(X509_EXTENSION_get_critical(X509_get_ext(leaf, idx)), 1);
    EXPECT_EQ(X509_get_key_usage(leaf), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  }
  EXPECT_EQ(X509_get_extended_key_usage(server.get()), static_cast<uint32_t>(XKU_SSL_SERVER));
  EXPECT_EQ(X509_get_extended_key_usage(client.get()), static_cast<uint32_t>(XKU_SSL_CLIENT));
}

TEST_F(CertgenChain, IssuedCertNamesIssuerAndCarriesItsKeyIdentifier) {
  X509Ptr ca = parse_cert(ca_.cert_pem);
  X509Ptr server = parse_cert(server_.cert_pem);
  ASSERT_TRUE(ca && server);
  EXPECT_EQ(X509_NAME_cmp(X509_get_issuer_name(server.get()), X509_get_subject_name(ca.get())), 0);
  const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(ca.get());
  const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(server.get());
  ASSERT_NE(ski, nullptr);
  ASSERT_NE(aki, nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(ski, aki), 0);
  EXPECT_NE(X509_get0_subject_key_id(server.get()), nullptr);
  // Subject is the CN alone.
  X509_NAME *subject = X509_get_subject_name(server.get());
  ASSERT_EQ(X509_NAME_entry_count(subject), 1);
  EXPECT_EQ(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(subject, 0))),
            NID_commonName);
}

TEST_F(CertgenChain, SerialsArePositiveRandomAndAtMost128Bits) {
  X509Ptr server = parse_cert(server_.cert_pem);
  X509Ptr client = parse_cert(client_.cert_pem);
  ASSERT_TRUE(server && client);
  const ASN1_INTEGER *a = X509_get0_serialNumber(server.get());
  const ASN1_INTEGER *b = X509_get0_serialNumber(client.get());
  EXPECT_NE(ASN1_INTEGER_cmp(a, b), 0);
  for (const ASN1_INTEGER *serial : {a, b}) {
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, nullptr);
    ASSERT_NE(bn, nullptr);
    EXPECT_FALSE(BN_is_negative(bn));
    EXPECT_FALSE(BN_is_zero(bn));
    EXPECT_LE(BN_num_bits(bn), 128);
    BN_free(bn);
  }
}

TEST_F(CertgenChain, KeysArePkcs8PemAndMatchTheirCertificates) {
  for (const Issued *issued : {&ca_, &server_, &client_}) {
    EXPECT_EQ(issued->key_pem.rfind(std::string("-----BEGIN ") + "PRIVATE KEY-----", 0), 0U);
    X509Ptr cert = parse_cert(issued->cert_pem);
    PkeyPtr key = parse_key(issued->key_pem);
    ASSERT_TRUE(cert && key);
    EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
    EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_EC);
  }
  X509Ptr server = parse_cert(server_.cert_pem);
  PkeyPtr client_key = parse_key(client_.key_pem);
  EXPECT_NE(X509_check_private_key(server.get(), client_key.get()), 1);
  ERR_clear_error();
}

TEST_F(CertgenChain, ValidityFollowsTheRequestedOffsets) {
  CertSpec spec = server_spec();
  spec.not_before_offset_s = -2 * kDay;
  spec.not_after_offset_s = 10 * kDay;
  Result<Issued> issued = certgen::issue(spec, ca_);
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  X509Ptr cert = parse_cert(issued->cert_pem);
  ASSERT_TRUE(cert);
  int days = 0;
  int secs = 0;
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notBefore(cert.get())), 1);
  EXPECT_NEAR(days * kDay + secs, -2 * kDay, 60);
  ASSERT_EQ(ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert.get())), 1);
  EXPECT_NEAR(days * kDay + secs, 10 * kDay, 60);
}

TEST_F(CertgenChain, ExpiredCertFailsWithCertHasExpired) {
  CertSpec spec = server_spec();
  spec.not_before_offset_s = -30 * kDay;
  spec.not_after_offset_s = -kDay;
  Result<Issued> expired = certgen::issue(spec, ca_);
  ASSERT_TRUE(expired.ok()) << expired.error().message;
  int err = verify_pem(expired->cert_pem, ca_.cert_pem, X509_PURPOSE_SSL_SERVER);
  EXPECT_EQ(err, X509_V_ERR_CERT_HAS_EXPIRED) << verify_text(err);
}

TEST_F(CertgenChain, NotYetValidCertFailsWithCertNotYetValid) {
  CertSpec spec = server_spec();
  spec.not_before_offset_s = kDay;
  spec.not_after_offset_s = 30 * kDay;
  Result<Issued> future = certgen::issue(spec, ca_);
  ASSERT_TRUE(future.ok()) << future.error().message;
  int err = verify_pem(future->cert_pem, ca_.cert_pem, X509_PURPOSE_SSL_SERVER);
  EXPECT_EQ(err, X509_V_ERR_CERT_NOT_YET_VALID) << verify_text(err);
}

TEST_F(CertgenChain, CertFromAnotherCaFailsWithUnableToGetIssuer) {
  Result<Issued> other_ca = certgen::make_self_signed(ca_spec());
  ASSERT_TRUE(other_ca.ok());
  Result<Issued> rogue = certgen::issue(client_spec(), *other_ca);
  ASSERT_TRUE(rogue.ok());
  int err = verify_pem(rogue->cert_pem, ca_.cert_pem, X509_PURPOSE_SSL_CLIENT);
  EXPECT_EQ(err, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY) << verify_text(err);
}

TEST_F(CertgenChain, IssuingWithANonCaOrMismatchedIssuerFails) {
  Result<Issued> from_leaf = certgen::issue(client_spec(), server_);
  ASSERT_FALSE(from_leaf.ok());
  EXPECT_EQ(from_leaf.error().kind, Error::Kind::kSettings);
  EXPECT_NE(from_leaf.error().message.find("not a CA"), std::string::npos)
      << from_leaf.error().message;

  Issued mismatched{ca_.cert_pem, server_.key_pem};
  Result<Issued> bad = certgen::issue(client_spec(), mismatched);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("does not match"), std::string::npos) << bad.error().message;

  Result<Issued> garbage = certgen::issue(client_spec(), Issued{"not pem", "not pem"});
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.error().kind, Error::Kind::kSettings);
  EXPECT_FALSE(garbage.error().detail.empty()) << "OpenSSL error queue should be in detail";
  EXPECT_EQ(ERR_peek_error(), 0U) << "error queue should be drained";
}

// X509_V_OK or the error of cert against trusted with crl_pem checked (CRL_CHECK).
int verify_with_crl(const std::string &cert_pem, const std::string &ca_pem,
                    const std::string &crl_pem) {
  X509Ptr cert = parse_cert(cert_pem);
  X509Ptr ca = parse_cert(ca_pem);
  BioPtr bio(BIO_new_mem_buf(crl_pem.data(), static_cast<int>(crl_pem.size())));
  X509_CRL *crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr);
  if (!cert || !ca || !crl) {
    X509_CRL_free(crl);
    return -1;
  }
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  bool ok =
      X509_STORE_add_cert(store.get(), ca.get()) == 1 && X509_STORE_add_crl(store.get(), crl) == 1;
  X509_CRL_free(crl);
  if (!ok) return -1;
  X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) return -1;
  int verified = X509_verify_cert(ctx.get());
  int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return verified == 1 ? X509_V_OK : (err == X509_V_OK ? -1 : err);
}

TEST_F(CertgenChain, CrlRevokesExactlyItsSerialsAndReadsBack) {
  Result<std::string> serial = certgen::serial_hex(client_.cert_pem);
  ASSERT_TRUE(serial.ok()) << serial.error().message;
  certgen::CrlSpec spec;
  spec.revoked = {{*serial, 1700000000}};
  spec.crl_number = 7;
  Result<std::string> crl = certgen::make_crl(spec, ca_);
  ASSERT_TRUE(crl.ok()) << crl.error().message << ": " << crl.error().detail;
  EXPECT_EQ(verify_with_crl(client_.cert_pem, ca_.cert_pem, *crl), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify_with_crl(server_.cert_pem, ca_.cert_pem, *crl), X509_V_OK);

  Result<certgen::CrlContents> back = certgen::read_crl(*crl, ca_.cert_pem);
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->revoked.size(), 1U);
  EXPECT_EQ(back->revoked[0].serial_hex, *serial);
  EXPECT_EQ(back->revoked[0].revoked_at, 1700000000);
  EXPECT_EQ(back->crl_number, 7U);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  EXPECT_NEAR(static_cast<double>(back->next_update - now), 30.0 * kDay, 60.0);

  // Another CA's certificate does not read it as its own.
  Result<Issued> other = certgen::make_self_signed(ca_spec());
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(certgen::read_crl(*crl, other->cert_pem).ok());
  EXPECT_FALSE(certgen::read_crl("garbage", ca_.cert_pem).ok());
  Result<bool> ours = certgen::issued_by(client_.cert_pem, ca_.cert_pem);
  ASSERT_TRUE(ours.ok());
  EXPECT_TRUE(*ours);
  Result<bool> theirs = certgen::issued_by(client_.cert_pem, other->cert_pem);
  ASSERT_TRUE(theirs.ok());
  EXPECT_FALSE(*theirs);
}

TEST_F(CertgenChain, CrlMayBeEmptyOrExpiredButNotListASerialTwice) {
  certgen::CrlSpec empty;
  Result<std::string> crl = certgen::make_crl(empty, ca_);
  ASSERT_TRUE(crl.ok()) << crl.error().message;
  EXPECT_EQ(verify_with_crl(client_.cert_pem, ca_.cert_pem, *crl), X509_V_OK);

  certgen::CrlSpec expired;
  expired.this_update_offset_s = -2 * kDay;
  expired.next_update_offset_s = -kDay;
  Result<std::string> old = certgen::make_crl(expired, ca_);
  ASSERT_TRUE(old.ok()) << old.error().message;
  EXPECT_EQ(verify_with_crl(server_.cert_pem, ca_.cert_pem, *old), X509_V_ERR_CRL_HAS_EXPIRED);

  Result<std::string> serial = certgen::serial_hex(client_.cert_pem);
  ASSERT_TRUE(serial.ok());
  certgen::CrlSpec twice;
  twice.revoked = {{*serial, 0}, {*serial, 1}};
  EXPECT_FALSE(certgen::make_crl(twice, ca_).ok());
  certgen::CrlSpec bad;
  bad.revoked = {{"not hex", 0}};
  EXPECT_FALSE(certgen::make_crl(bad, ca_).ok());
}

TEST(Certgen, InvalidSpecIsRefusedWithAMessage) {
  CertSpec bad_ip = server_spec();
  bad_ip.ip_addresses = {"300.1.2.3"};
  Result<Issued> r1 = certgen::make_self_signed(bad_ip);
  ASSERT_FALSE(r1.ok());
  EXPECT_NE(r1.error().message.find("300.1.2.3"), std::string::npos) << r1.error().message;

  CertSpec no_cn = server_spec();
  no_cn.common_name.clear();
  EXPECT_FALSE(certgen::make_self_signed(no_cn).ok());

  CertSpec backwards = server_spec();
  backwards.not_before_offset_s = 10;
  backwards.not_after_offset_s = 5;
  EXPECT_FALSE(certgen::make_self_signed(backwards).ok());
}

TEST(Certgen, SanEntriesCannotBeInjectedThroughNames) {
  CertSpec spec = server_spec();
  spec.dns_names = {"a.example,IP:10.0.0.1"};
  spec.ip_addresses = {};
  Result<Issued> issued = certgen::make_self_signed(spec);
  ASSERT_TRUE(issued.ok()) << issued.error().message;
  X509Ptr cert = parse_cert(issued->cert_pem);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "10.0.0.1", 0), 0);
}

TEST(Certgen, RsaChainVerifiesAndLeafAllowsKeyEncipherment) {
  Result<Issued> ca = certgen::make_self_signed(ca_spec(KeyType::kRsa2048));
  ASSERT_TRUE(ca.ok()) << ca.error().message << ": " << ca.error().detail;
  Result<Issued> server = certgen::issue(server_spec(KeyType::kRsa2048), *ca);
  ASSERT_TRUE(server.ok()) << server.error().message << ": " << server.error().detail;
  EXPECT_EQ(verify_pem(server->cert_pem, ca->cert_pem, X509_PURPOSE_SSL_SERVER), X509_V_OK);

  X509Ptr cert = parse_cert(server->cert_pem);
  PkeyPtr key = parse_key(server->key_pem);
  ASSERT_TRUE(cert && key);
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_RSA);
  EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 2048);
  EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1);
  EXPECT_EQ(X509_get_key_usage(cert.get()),
            static_cast<uint32_t>(KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  EXPECT_EQ(X509_get_signature_nid(cert.get()), NID_sha256WithRSAEncryption);

  // Mixed: an ECDSA leaf under the RSA CA.
  Result<Issued> client = certgen::issue(client_spec(), *ca);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ(verify_pem(client->cert_pem, ca->cert_pem, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
}

TEST(Certgen, FingerprintIsUppercaseColonSeparatedSha256) {
  Result<Issued> ca = certgen::make_self_signed(ca_spec());
  ASSERT_TRUE(ca.ok());
  Result<std::string> fp = certgen::fingerprint_sha256(ca->cert_pem);
  ASSERT_TRUE(fp.ok()) << fp.error().message;
  ASSERT_EQ(fp->size(), 95U);
  for (size_t i = 0; i < fp->size(); ++i) {
    char c = (*fp)[i];
    if (i % 3 == 2) {
      EXPECT_EQ(c, ':') << "at " << i;
    } else {
      EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F')) << "at " << i;
    }
  }
  Result<std::string> again = certgen::fingerprint_sha256(ca->cert_pem);
  EXPECT_EQ(*again, *fp);

  Result<std::string> bad = certgen::fingerprint_sha256("garbage");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, Error::Kind::kSettings);
}

// A scratch directory removed at the end of the test.
class ScratchDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "certgen-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  size_t entries() const {
    size_t n = 0;
    for (auto it = std::filesystem::directory_iterator(dir_);
         it != std::filesystem::directory_iterator(); ++it) {
      ++n;
    }
    return n;
  }
  std::string dir_;
};

// Restores the process umask on scope exit.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
  ~UmaskGuard() { ::umask(old_); }

 private:
  mode_t old_;
};

TEST_F(ScratchDir, WriteFileUses0600ForKeysAnd0644OtherwiseWhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}}) {
    UmaskGuard guard(mask);
    std::string key = dir_ + "/k" + std::to_string(mask);
    std::string pem = dir_ + "/c" + std::to_string(mask);
    ASSERT_TRUE(certgen::write_file(key, "secret", true, false).ok());
    ASSERT_TRUE(certgen::write_file(pem, "public", false, false).ok());
    EXPECT_EQ(file_mode(key), 0600U) << "umask " << mask;
    EXPECT_EQ(file_mode(pem), 0644U) << "umask " << mask;
    EXPECT_EQ(read_text(key), "secret");
    EXPECT_EQ(read_text(pem), "public");

    std::string replaced_key = dir_ + "/rk" + std::to_string(mask);
    ASSERT_TRUE(certgen::write_file(replaced_key, "old", false, false).ok());
    ASSERT_TRUE(certgen::write_file(replaced_key, "new", true, true).ok());
    EXPECT_EQ(file_mode(replaced_key), 0600U) << "umask " << mask;
  }
}

TEST_F(ScratchDir, WriteFileRefusesToOverwriteUnlessAsked) {
  std::string path = dir_ + "/server.pem";
  ASSERT_TRUE(certgen::write_file(path, "first", false, false).ok());

  Status refused = certgen::write_file(path, "second", false, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().kind, Error::Kind::kSettings);
  EXPECT_EQ(refused.error().message, "refusing to overwrite existing file " + path);
  EXPECT_EQ(read_text(path), "first");

  Status replaced = certgen::write_file(path, "second", false, true);
  ASSERT_TRUE(replaced.ok()) << replaced.error().message;
  EXPECT_EQ(read_text(path), "second");
  EXPECT_EQ(file_mode(path), 0644U);
  EXPECT_EQ(entries(), 1U) << "no temporary file left behind";

  // overwrite=true also creates a missing file.
  ASSERT_TRUE(certgen::write_file(dir_ + "/new.pem", "x", false, true).ok());
  EXPECT_EQ(read_text(dir_ + "/new.pem"), "x");
}

TEST_F(ScratchDir, WriteFileIntoMissingDirectoryFailsWithAMessage) {
  Status st = certgen::write_file(dir_ + "/missing/x.pem", "x", false, false);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find(dir_ + "/missing/x.pem"), std::string::npos);
  EXPECT_FALSE(st.error().detail.empty());
  Status st2 = certgen::write_file(dir_ + "/missing/x.pem", "x", false, true);
  EXPECT_FALSE(st2.ok());
}

TEST(Pki, MakesEveryFileAndRemovesTheDirectoryOnDestruction) {
  std::string dir;
  {
    test::Pki pki;
    dir = pki.dir();
    const std::vector<std::string> files = {pki.ca(),
                                            pki.server_cert(),
                                            pki.server_key(),
                                            pki.client_cert(),
                                            pki.client_key(),
                                            pki.other_ca(),
                                            pki.rogue_client_cert(),
                                            pki.rogue_client_key(),
                                            pki.wrong_name_cert(),
                                            pki.wrong_name_key(),
                                            pki.expired_cert(),
                                            pki.expired_key(),
                                            pki.not_yet_valid_cert(),
                                            pki.not_yet_valid_key(),
                                            pki.self_signed_cert(),
                                            pki.self_signed_key()};
    for (const std::string &f : files) {
      EXPECT_TRUE(std::filesystem::is_regular_file(f)) << f;
      bool key = f.size() > 4 && f.compare(f.size() - 4, 4, ".key") == 0;
      EXPECT_EQ(file_mode(f), key ? 0600U : 0644U) << f;
    }
    EXPECT_EQ(file_mode(pki.dir()), 0700U);
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
}

TEST(Pki, EachFileVerifiesOrFailsAsDocumented) {
  test::Pki pki;
  const std::string ca = read_text(pki.ca());
  auto check = [&ca](const std::string &cert, int purpose) {
    return verify_pem(read_text(cert), ca, purpose);
  };
  EXPECT_EQ(check(pki.server_cert(), X509_PURPOSE_SSL_SERVER), X509_V_OK);
  EXPECT_EQ(check(pki.client_cert(), X509_PURPOSE_SSL_CLIENT), X509_V_OK);
  EXPECT_EQ(check(pki.wrong_name_cert(), X509_PURPOSE_SSL_SERVER), X509_V_OK);
  EXPECT_EQ(check(pki.rogue_client_cert(), X509_PURPOSE_SSL_CLIENT),
            X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_EQ(check(pki.expired_cert(), X509_PURPOSE_SSL_SERVER), X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(check(pki.not_yet_valid_cert(), X509_PURPOSE_SSL_SERVER),
            X509_V_ERR_CERT_NOT_YET_VALID);
  EXPECT_EQ(check(pki.self_signed_cert(), X509_PURPOSE_SSL_SERVER),
            X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  EXPECT_EQ(verify_pem(read_text(pki.rogue_client_cert()), read_text(pki.other_ca()),
                       X509_PURPOSE_SSL_CLIENT),
            X509_V_OK);

  X509Ptr server = parse_cert(read_text(pki.server_cert()));
  X509Ptr wrong = parse_cert(read_text(pki.wrong_name_cert()));
  ASSERT_TRUE(server && wrong);
  EXPECT_EQ(X509_check_host(server.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(server.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_host(wrong.get(), "localhost", 0, 0, nullptr), 0);
  EXPECT_EQ(X509_check_host(wrong.get(), "elsewhere.example", 0, 0, nullptr), 1);

  const std::pair<std::string, std::string> pairs[] = {
      {pki.server_cert(), pki.server_key()},
      {pki.client_cert(), pki.client_key()},
      {pki.rogue_client_cert(), pki.rogue_client_key()},
      {pki.wrong_name_cert(), pki.wrong_name_key()},
      {pki.expired_cert(), pki.expired_key()},
      {pki.not_yet_valid_cert(), pki.not_yet_valid_key()},
      {pki.self_signed_cert(), pki.self_signed_key()}};
  for (const auto &[cert_path, key_path] : pairs) {
    X509Ptr cert = parse_cert(read_text(cert_path));
    PkeyPtr key = parse_key(read_text(key_path));
    ASSERT_TRUE(cert && key) << cert_path;
    EXPECT_EQ(X509_check_private_key(cert.get(), key.get()), 1) << cert_path;
  }
}

TEST(Pki, TwoInstancesUseSeparateDirectoriesAndCas) {
  test::Pki a;
  test::Pki b;
  EXPECT_NE(a.dir(), b.dir());
  EXPECT_NE(verify_pem(read_text(a.server_cert()), read_text(b.ca()), X509_PURPOSE_SSL_SERVER),
            X509_V_OK);
}

TEST(Pki, UnusableTmpdirFailsTheTestAndLeavesPathsMissing) {
  const char *old = std::getenv("TMPDIR");
  const std::string saved = old ? old : "";
  ::setenv("TMPDIR", "/dev/null/no-such-dir", 1);
  static std::string server_cert;  // EXPECT_NONFATAL_FAILURE can't capture locals
  EXPECT_NONFATAL_FAILURE(
      {
        test::Pki pki;
        server_cert = pki.server_cert();
      },
      "mkdtemp");
  if (old) {
    ::setenv("TMPDIR", saved.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
  EXPECT_FALSE(server_cert.empty());
  EXPECT_FALSE(std::filesystem::exists(server_cert)) << server_cert;
}

TEST(OpensslCli, VerifiesTheChainWithCaFile) {
  if (!have_openssl_cli()) GTEST_SKIP() << kOpensslCli << " not installed";
  test::Pki pki;
  int status = 0;
  std::string out = run(std::string(kOpensslCli) + " verify -purpose sslserver -CAfile " +
                            quote(pki.ca()) + " " + quote(pki.server_cert()),
                        &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find(": OK"), std::string::npos) << out;

  out = run(std::string(kOpensslCli) + " verify -purpose sslclient -CAfile " + quote(pki.ca()) +
                " " + quote(pki.client_cert()),
            &status);
  EXPECT_EQ(status, 0) << out;

  out = run(std::string(kOpensslCli) + " verify -CAfile " + quote(pki.ca()) + " " +
                quote(pki.rogue_client_cert()),
            &status);
  EXPECT_NE(status, 0) << out;
}

TEST(OpensslCli, FingerprintMatchesX509Fingerprint) {
  if (!have_openssl_cli()) GTEST_SKIP() << kOpensslCli << " not installed";
  test::Pki pki;
  Result<std::string> fp = certgen::fingerprint_sha256(read_text(pki.server_cert()));
  ASSERT_TRUE(fp.ok()) << fp.error().message;
  int status = 0;
  std::string out = run(std::string(kOpensslCli) + " x509 -noout -fingerprint -sha256 -in " +
                            quote(pki.server_cert()),
                        &status);
  ASSERT_EQ(status, 0) << out;
  size_t eq = out.find('=');
  ASSERT_NE(eq, std::string::npos) << out;
  std::string cli = out.substr(eq + 1);
  while (!cli.empty() && (cli.back() == '\n' || cli.back() == '\r')) cli.pop_back();
  EXPECT_EQ(cli, *fp);
}

}  // namespace
}  // namespace tlsframe
