// Certificate generation with OpenSSL 3 (see certgen.h for the contract).
#include "core/certgen.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <system_error>
#include <utility>

namespace tlsframe::certgen {
namespace {

// unique_ptr deleter calling an OpenSSL free function (some return int, hence auto).
template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T *p) const {
    Free(p);
  }
};
template <typename T, auto Free>
using Ptr = std::unique_ptr<T, Deleter<Free>>;

using PkeyPtr = Ptr<EVP_PKEY, EVP_PKEY_free>;
using X509Ptr = Ptr<X509, X509_free>;
using BioPtr = Ptr<BIO, BIO_free>;
using ExtPtr = Ptr<X509_EXTENSION, X509_EXTENSION_free>;
using BnPtr = Ptr<BIGNUM, BN_free>;
using GeneralNamesPtr = Ptr<GENERAL_NAMES, GENERAL_NAMES_free>;
using GeneralNamePtr = Ptr<GENERAL_NAME, GENERAL_NAME_free>;
using OctetPtr = Ptr<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;
using Ia5Ptr = Ptr<ASN1_IA5STRING, ASN1_IA5STRING_free>;

// Drains OpenSSL's error queue into one line ("error:...; error:...").
std::string drain_openssl_errors() {
  std::string out;
  char buf[256];
  while (const auto e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// An Error for a failed OpenSSL call; the detail is the drained error queue.
Error ssl_error(std::string message) {
  return Error{Error::Kind::kSettings, std::move(message), drain_openssl_errors()};
}

// An Error for a failed system call; the detail is errno's text.
Error errno_error(std::string message, int err) {
  return Error{Error::Kind::kSettings, std::move(message),
               std::error_code(err, std::generic_category()).message()};
}

Result<PkeyPtr> generate_key(KeyType type) {
  EVP_PKEY *key = nullptr;
  const char *what = "";
  switch (type) {
    case KeyType::kEcdsaP256:
      what = "EC P-256";
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyType::kRsa2048:
      what = "RSA 2048";
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
      break;
  }
  if (key == nullptr) return ssl_error(std::string("generating an ") + what + " key failed");
  return PkeyPtr(key);
}

Result<X509Ptr> read_cert(const std::string &pem, const char *what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ssl_error(std::string("reading the ") + what + " failed");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return ssl_error(std::string("the ") + what + " is not a PEM certificate");
  return cert;
}

Result<PkeyPtr> read_key(const std::string &pem, const char *what) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ssl_error(std::string("reading the ") + what + " failed");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) return ssl_error(std::string("the ") + what + " is not an unencrypted PEM private key");
  return key;
}

Result<std::string> bio_to_string(BIO *bio) {
  char *data = nullptr;
  const auto len = BIO_get_mem_data(bio, &data);
  if (len < 0 || data == nullptr) return ssl_error("reading a memory BIO failed");
  return std::string(data, static_cast<size_t>(len));
}

// Adds an extension from its OpenSSL config-string form ("critical,CA:TRUE").
Status add_conf_ext(X509 *cert, X509V3_CTX *ctx, int nid, const std::string &value) {
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return ssl_error(std::string("adding the ") + OBJ_nid2ln(nid) + " extension (" + value +
                     ") failed");
  }
  return Status::Ok();
}

// Moves gen into names; false (and gen freed) if the push fails.
bool push_name(GENERAL_NAMES *names, GeneralNamePtr gen) {
  if (sk_GENERAL_NAME_push(names, gen.get()) == 0) return false;
  static_cast<void>(gen.release());  // now owned by names
  return true;
}

// subjectAltName built as a GENERAL_NAMES structure, not a config string, so a
// name holding ',' or ':' cannot inject extra entries.
Status add_subject_alt_name(X509 *cert, const CertSpec &spec) {
  if (spec.dns_names.empty() && spec.ip_addresses.empty()) return Status::Ok();
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return ssl_error("allocating subjectAltName failed");
  for (const std::string &dns : spec.dns_names) {
    if (dns.empty()) return Error{Error::Kind::kSettings, "empty DNS name in subjectAltName", ""};
    Ia5Ptr ia5(ASN1_IA5STRING_new());
    if (!ia5 || ASN1_STRING_set(ia5.get(), dns.data(), static_cast<int>(dns.size())) != 1) {
      return ssl_error("setting subjectAltName DNS entry '" + dns + "' failed");
    }
    GeneralNamePtr gen(GENERAL_NAME_new());
    if (!gen) return ssl_error("allocating a subjectAltName entry failed");
    GENERAL_NAME_set0_value(gen.get(), GEN_DNS, ia5.release());
    if (!push_name(names.get(), std::move(gen))) {
      return ssl_error("adding subjectAltName DNS entry '" + dns + "' failed");
    }
  }
  for (const std::string &ip : spec.ip_addresses) {
    OctetPtr octets(a2i_IPADDRESS(ip.c_str()));
    if (!octets) return ssl_error("'" + ip + "' is not an IPv4 or IPv6 address");
    GeneralNamePtr gen(GENERAL_NAME_new());
    if (!gen) return ssl_error("allocating a subjectAltName entry failed");
    GENERAL_NAME_set0_value(gen.get(), GEN_IPADD, octets.release());
    if (!push_name(names.get(), std::move(gen))) {
      return ssl_error("adding subjectAltName IP entry '" + ip + "' failed");
    }
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return ssl_error("adding the subjectAltName extension failed");
  }
  return Status::Ok();
}

Status add_extensions(X509 *cert, X509 *issuer_cert, const CertSpec &spec) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer_cert, cert, nullptr, nullptr, 0);
  const bool ca = spec.usage == Usage::kCa;

  Status st = add_conf_ext(cert, &ctx, NID_basic_constraints,
                           ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  if (!st) return st;

  std::string key_usage = "critical,";
  if (ca) {
    key_usage += "keyCertSign,cRLSign";
  } else {
    key_usage += "digitalSignature";
    if (spec.key_type == KeyType::kRsa2048) key_usage += ",keyEncipherment";
  }
  if (!(st = add_conf_ext(cert, &ctx, NID_key_usage, key_usage))) return st;

  if (spec.usage == Usage::kServer) {
    if (!(st = add_conf_ext(cert, &ctx, NID_ext_key_usage, "serverAuth"))) return st;
  } else if (spec.usage == Usage::kClient) {
    if (!(st = add_conf_ext(cert, &ctx, NID_ext_key_usage, "clientAuth"))) return st;
  }

  if (!(st = add_subject_alt_name(cert, spec))) return st;
  if (!(st = add_conf_ext(cert, &ctx, NID_subject_key_identifier, "hash"))) return st;
  if (issuer_cert != cert) {
    // keyid of the issuer's subjectKeyIdentifier; chain building matches on it.
    if (!(st = add_conf_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always"))) return st;
  }
  return Status::Ok();
}

// A random 128-bit serial, positive and non-zero (RFC 5280 4.1.2.2).
Status set_random_serial(X509 *cert) {
  BnPtr bn(BN_new());
  if (!bn) return ssl_error("allocating the serial number failed");
  do {
    if (BN_rand(bn.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1) {
      return ssl_error("generating a random serial number failed");
    }
  } while (BN_is_zero(bn.get()));
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return ssl_error("setting the serial number failed");
  }
  return Status::Ok();
}

// Builds and signs a certificate for spec. With issuer_cert == nullptr the
// certificate is self-signed with its own key.
Result<Issued> make_cert(const CertSpec &spec, X509 *issuer_cert, EVP_PKEY *issuer_key) {
  if (spec.common_name.empty()) {
    return Error{Error::Kind::kSettings, "certificate common name is empty", ""};
  }
  if (spec.not_after_offset_s <= spec.not_before_offset_s) {
    return Error{Error::Kind::kSettings,
                 "certificate validity ends before it starts (not_after_offset_s <= "
                 "not_before_offset_s)",
                 ""};
  }

  Result<PkeyPtr> key = generate_key(spec.key_type);
  if (!key) return key.error();

  X509Ptr cert(X509_new());
  if (!cert) return ssl_error("allocating a certificate failed");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return ssl_error("setting the certificate version failed");
  }
  Status st = set_random_serial(cert.get());
  if (!st) return st.error();

  // X509_gmtime_adj takes a long: 64 bits on the LP64 targets we build for.
  using OffsetT = long;  // NOLINT(google-runtime-int): OpenSSL's parameter type
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()),
                      static_cast<OffsetT>(spec.not_before_offset_s)) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                      static_cast<OffsetT>(spec.not_after_offset_s)) == nullptr) {
    return ssl_error("setting the certificate validity period failed");
  }

  X509_NAME *subject = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char *>(spec.common_name.data()),
                                 static_cast<int>(spec.common_name.size()), -1, 0) != 1) {
    return ssl_error("setting the subject CN '" + spec.common_name + "' failed");
  }
  if (issuer_cert == nullptr) {
    issuer_cert = cert.get();
    issuer_key = key->get();
  }
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)) != 1) {
    return ssl_error("setting the issuer name failed");
  }
  if (X509_set_pubkey(cert.get(), key->get()) != 1) {
    return ssl_error("setting the certificate public key failed");
  }
  if (!(st = add_extensions(cert.get(), issuer_cert, spec))) return st.error();

  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) {
    return ssl_error("signing the certificate failed");
  }

  BioPtr cert_bio(BIO_new(BIO_s_mem()));
  if (!cert_bio || PEM_write_bio_X509(cert_bio.get(), cert.get()) != 1) {
    return ssl_error("writing the certificate as PEM failed");
  }
  BioPtr key_bio(BIO_new(BIO_s_mem()));
  if (!key_bio || PEM_write_bio_PKCS8PrivateKey(key_bio.get(), key->get(), nullptr, nullptr, 0,
                                                nullptr, nullptr) != 1) {
    return ssl_error("writing the private key as PKCS#8 PEM failed");
  }
  Result<std::string> cert_pem = bio_to_string(cert_bio.get());
  if (!cert_pem) return cert_pem.error();
  Result<std::string> key_pem = bio_to_string(key_bio.get());
  if (!key_pem) return key_pem.error();
  return Issued{std::move(*cert_pem), std::move(*key_pem)};
}

// Writes all of text to fd, retrying on EINTR and short writes. Returns 0 or errno.
int write_all(int fd, const std::string &text) {
  const char *p = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return 0;
}

// fchmod (umask must not weaken or widen the mode), write, optionally fsync, close.
// Returns an Error naming what failed; fd is closed either way.
Status fill_and_close(int fd, const std::string &path, const std::string &text, mode_t mode,
                      bool sync) {
  const char *step = nullptr;
  int err = 0;
  if (::fchmod(fd, mode) != 0) {
    step = "setting the mode of";
    err = errno;
  } else if ((err = write_all(fd, text)) != 0) {
    step = "writing";
  } else if (sync && ::fsync(fd) != 0) {
    step = "syncing";
    err = errno;
  }
  if (::close(fd) != 0 && step == nullptr) {
    step = "closing";
    err = errno;
  }
  if (step != nullptr) return errno_error(std::string(step) + " " + path + " failed", err);
  return Status::Ok();
}

}  // namespace

Result<Issued> make_self_signed(const CertSpec &spec) {
  ERR_clear_error();
  return make_cert(spec, nullptr, nullptr);
}

Result<Issued> issue(const CertSpec &spec, const Issued &issuer) {
  ERR_clear_error();
  Result<X509Ptr> issuer_cert = read_cert(issuer.cert_pem, "issuer certificate");
  if (!issuer_cert) return issuer_cert.error();
  Result<PkeyPtr> issuer_key = read_key(issuer.key_pem, "issuer key");
  if (!issuer_key) return issuer_key.error();
  if (X509_check_private_key(issuer_cert->get(), issuer_key->get()) != 1) {
    return ssl_error("the issuer key does not match the issuer certificate");
  }
  if (X509_check_ca(issuer_cert->get()) == 0) {
    return ssl_error("the issuer certificate is not a CA certificate");
  }
  return make_cert(spec, issuer_cert->get(), issuer_key->get());
}

Result<std::string> fingerprint_sha256(const std::string &cert_pem) {
  ERR_clear_error();
  Result<X509Ptr> cert = read_cert(cert_pem, "certificate");
  if (!cert) return cert.error();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert->get(), EVP_sha256(), md, &len) != 1) {
    return ssl_error("computing the SHA-256 fingerprint failed");
  }
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(static_cast<size_t>(len) * 3);
  for (unsigned int i = 0; i < len; ++i) {
    if (i > 0) out += ':';
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xF];
  }
  return out;
}

namespace {

using CrlPtr = Ptr<X509_CRL, X509_CRL_free>;
using RevokedPtr = Ptr<X509_REVOKED, X509_REVOKED_free>;
using IntegerPtr = Ptr<ASN1_INTEGER, ASN1_INTEGER_free>;
using TimePtr = Ptr<ASN1_TIME, ASN1_TIME_free>;

// Uppercase hex of an ASN1_INTEGER serial ("" on failure).
std::string integer_hex(const ASN1_INTEGER *serial) {
  BnPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (!bn) return "";
  char *hex = BN_bn2hex(bn.get());
  if (hex == nullptr) return "";
  std::string out(hex);
  OPENSSL_free(hex);
  return out;
}

Result<IntegerPtr> integer_from_hex(const std::string &hex) {
  BIGNUM *raw = nullptr;
  if (hex.empty() || BN_hex2bn(&raw, hex.c_str()) != static_cast<int>(hex.size())) {
    BN_free(raw);
    return Error{Error::Kind::kSettings, "'" + hex + "' is not a hex serial number", ""};
  }
  BnPtr bn(raw);
  IntegerPtr out(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!out) return ssl_error("converting serial number " + hex + " failed");
  return out;
}

Result<TimePtr> time_at(int64_t unix_seconds) {
  TimePtr t(ASN1_TIME_set(nullptr, static_cast<time_t>(unix_seconds)));
  if (!t) return ssl_error("setting a CRL time failed");
  return t;
}

int64_t unix_time(const ASN1_TIME *t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

Result<std::string> make_crl(const CrlSpec &spec, const Issued &issuer) {
  ERR_clear_error();
  Result<X509Ptr> ca = read_cert(issuer.cert_pem, "CA certificate");
  if (!ca) return ca.error();
  Result<PkeyPtr> key = read_key(issuer.key_pem, "CA key");
  if (!key) return key.error();
  if (X509_check_private_key(ca->get(), key->get()) != 1) {
    return ssl_error("the CA key does not match the CA certificate");
  }
  CrlPtr crl(X509_CRL_new());
  if (!crl) return ssl_error("allocating a CRL failed");
  const int64_t now = static_cast<int64_t>(::time(nullptr));
  Result<TimePtr> this_update = time_at(now + spec.this_update_offset_s);
  if (!this_update) return this_update.error();
  Result<TimePtr> next_update = time_at(now + spec.next_update_offset_s);
  if (!next_update) return next_update.error();
  if (X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca->get())) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), this_update->get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next_update->get()) != 1) {
    return ssl_error("setting the CRL's version, issuer or dates failed");
  }
  std::vector<std::string> seen;
  for (const RevokedCert &r : spec.revoked) {
    Result<IntegerPtr> serial = integer_from_hex(r.serial_hex);
    if (!serial) return serial.error();
    std::string canonical = integer_hex(serial->get());
    for (const std::string &s : seen) {
      if (s == canonical) {
        return Error{Error::Kind::kSettings, "serial " + canonical + " is listed twice", ""};
      }
    }
    seen.push_back(canonical);
    RevokedPtr entry(X509_REVOKED_new());
    Result<TimePtr> when = time_at(r.revoked_at);
    if (!entry || !when || X509_REVOKED_set_serialNumber(entry.get(), serial->get()) != 1 ||
        X509_REVOKED_set_revocationDate(entry.get(), when->get()) != 1) {
      return ssl_error("making the CRL entry for serial " + canonical + " failed");
    }
    if (X509_CRL_add0_revoked(crl.get(), entry.get()) != 1) {
      return ssl_error("adding serial " + canonical + " to the CRL failed");
    }
    static_cast<void>(entry.release());  // now owned by the CRL
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca->get(), nullptr, nullptr, crl.get(), 0);
  ExtPtr aki(X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!aki || X509_CRL_add_ext(crl.get(), aki.get(), -1) != 1) {
    return ssl_error("adding the CRL's authorityKeyIdentifier failed");
  }
  BnPtr number_bn(BN_new());
  if (!number_bn || BN_set_word(number_bn.get(), spec.crl_number) != 1) {
    return ssl_error("setting the CRL number failed");
  }
  IntegerPtr number(BN_to_ASN1_INTEGER(number_bn.get(), nullptr));
  if (!number || X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    return ssl_error("adding the CRL number failed");
  }
  if (X509_CRL_sort(crl.get()) != 1 || X509_CRL_sign(crl.get(), key->get(), EVP_sha256()) <= 0) {
    return ssl_error("signing the CRL failed");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) {
    return ssl_error("writing the CRL as PEM failed");
  }
  return bio_to_string(bio.get());
}

Result<CrlContents> read_crl(const std::string &crl_pem, const std::string &issuer_cert_pem) {
  ERR_clear_error();
  Result<X509Ptr> ca = read_cert(issuer_cert_pem, "CA certificate");
  if (!ca) return ca.error();
  BioPtr bio(BIO_new_mem_buf(crl_pem.data(), static_cast<int>(crl_pem.size())));
  CrlPtr crl(bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!crl) return ssl_error("the CRL is not a PEM certificate revocation list");
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_subject_name(ca->get())) != 0) {
    return Error{Error::Kind::kSettings, "the CRL was issued by another CA", ""};
  }
  EVP_PKEY *ca_key = X509_get0_pubkey(ca->get());
  if (ca_key == nullptr || X509_CRL_verify(crl.get(), ca_key) != 1) {
    return ssl_error("the CRL's signature is not the CA's");
  }
  CrlContents out;
  out.next_update = unix_time(X509_CRL_get0_nextUpdate(crl.get()));
  IntegerPtr number(static_cast<ASN1_INTEGER *>(
      X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr)));
  if (number) out.crl_number = static_cast<uint64_t>(ASN1_INTEGER_get(number.get()));
  STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; revoked != nullptr && i < sk_X509_REVOKED_num(revoked); ++i) {
    const X509_REVOKED *r = sk_X509_REVOKED_value(revoked, i);
    out.revoked.push_back(RevokedCert{integer_hex(X509_REVOKED_get0_serialNumber(r)),
                                      unix_time(X509_REVOKED_get0_revocationDate(r))});
  }
  return out;
}

Result<std::string> serial_hex(const std::string &cert_pem) {
  ERR_clear_error();
  Result<X509Ptr> cert = read_cert(cert_pem, "certificate");
  if (!cert) return cert.error();
  std::string hex = integer_hex(X509_get0_serialNumber(cert->get()));
  if (hex.empty()) return ssl_error("reading the certificate's serial number failed");
  return hex;
}

Result<bool> issued_by(const std::string &cert_pem, const std::string &issuer_cert_pem) {
  ERR_clear_error();
  Result<X509Ptr> cert = read_cert(cert_pem, "certificate");
  if (!cert) return cert.error();
  Result<X509Ptr> ca = read_cert(issuer_cert_pem, "CA certificate");
  if (!ca) return ca.error();
  EVP_PKEY *ca_key = X509_get0_pubkey(ca->get());
  bool ok = X509_check_issued(ca->get(), cert->get()) == X509_V_OK && ca_key != nullptr &&
            X509_verify(cert->get(), ca_key) == 1;
  ERR_clear_error();
  return ok;
}

Status write_file(const std::string &path, const std::string &text, bool private_key,
                  bool overwrite) {
  const mode_t mode = private_key ? 0600 : 0644;
  if (!overwrite) {
    int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
    if (fd < 0) {
      int err = errno;
      if (err == EEXIST) {
        return Error{Error::Kind::kSettings, "refusing to overwrite existing file " + path, ""};
      }
      return errno_error("creating " + path + " failed", err);
    }
    Status st = fill_and_close(fd, path, text, mode, /*sync=*/false);
    if (!st) ::unlink(path.c_str());  // we created it; don't leave a partial file
    return st;
  }

  // Replace atomically: a temporary file in the same directory (so rename stays
  // on one filesystem), given the final mode before any byte is written.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string tmp = dir + "/." + base + ".tmp-XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);  // creates with mode 0600
  if (fd < 0) {
    int err = errno;
    return errno_error("creating a temporary file in " + dir + " failed", err);
  }
  Status st = fill_and_close(fd, tmp, text, mode, /*sync=*/true);
  if (st && ::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    st = errno_error("renaming " + tmp + " to " + path + " failed", err);
  }
  if (!st) ::unlink(tmp.c_str());
  return st;
}

}  // namespace tlsframe::certgen
