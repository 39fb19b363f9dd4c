// Test PKI made at test time with core/certgen: a trusted CA, a server
// certificate for localhost/127.0.0.1/::1, client certificates, and the bad
// cases (another CA, wrong name, expired, not yet valid, ...). Files live in a
// fresh temporary directory removed when the Pki is destroyed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tlsframe::test {

class Pki {
 public:
  Pki();  // generates everything; ADD_FAILURE (paths then point at missing files) on error
  ~Pki();
  Pki(const Pki &) = delete;
  Pki &operator=(const Pki &) = delete;

  const std::string &dir() const { return dir_; }
  std::string path(const std::string &name) const { return dir_ + "/" + name; }

  // Files (PEM), each a path:
  std::string ca() const { return path("ca.pem"); }  // trusted CA certificate
  std::string server_cert() const {
    return path("server.pem");
  }  // leaf only, CN=localhost, SAN localhost,127.0.0.1,::1
  std::string server_key() const { return path("server.key"); }
  std::string client_cert() const {
    return path("client.pem");
  }  // client cert issued by ca, CN=client1
  std::string client_key() const { return path("client.key"); }
  std::string other_ca() const { return path("other-ca.pem"); }  // an unrelated CA
  std::string rogue_client_cert() const {
    return path("rogue-client.pem");
  }  // client cert issued by other CA
  std::string rogue_client_key() const { return path("rogue-client.key"); }
  std::string wrong_name_cert() const {
    return path("wrong-name.pem");
  }  // issued by ca for "elsewhere.example" only
  std::string wrong_name_key() const { return path("wrong-name.key"); }
  std::string expired_cert() const {
    return path("expired.pem");
  }  // issued by ca, localhost, expired yesterday
  std::string expired_key() const { return path("expired.key"); }
  std::string not_yet_valid_cert() const { return path("future.pem"); }  // valid from tomorrow
  std::string not_yet_valid_key() const { return path("future.key"); }
  std::string self_signed_cert() const {
    return path("self-signed.pem");
  }  // self-signed leaf for localhost
  std::string self_signed_key() const { return path("self-signed.key"); }
  std::string wrong_usage_cert() const {
    return path("wrong-usage.pem");
  }  // issued by ca for localhost, but extended key usage clientAuth only
  std::string wrong_usage_key() const { return path("wrong-usage.key"); }
  std::string cn_only_cert() const {
    return path("cn-only.pem");
  }  // issued by ca, subject CN=localhost, no subjectAltName at all
  std::string cn_only_key() const { return path("cn-only.key"); }
  std::string intermediate_ca() const {
    return path("intermediate-ca.pem");
  }  // CA issued by ca, issuer of the chained server certificate
  std::string chained_server_cert() const {
    return path("chained-server.pem");
  }  // localhost leaf issued by the intermediate, then the intermediate
  std::string chained_server_leaf_only() const {
    return path("chained-server-leaf.pem");
  }  // the same leaf without its intermediate (an incomplete chain)
  std::string chained_server_key() const { return path("chained-server.key"); }

  // The whole text of a file ("" when it cannot be read).
  static std::string read(const std::string &path);

  // Made on demand (authorization tests), all issued by ca():
  // a client certificate <stem>.pem / <stem>.key with subject CN `cn` and
  // subjectAltName DNS `dns_names`. False (and ADD_FAILURE) on error.
  bool issue_client(const std::string &stem, const std::string &cn,
                    const std::vector<std::string> &dns_names = {});
  // A CRL signed by ca() revoking the certificates in the PEM files
  // `revoked` (empty: a CRL revoking nothing), written to path(name)
  // (replacing it). next_update_offset_s: its nextUpdate from now
  // (negative: already past). False (and ADD_FAILURE) on error.
  bool write_crl(const std::string &name, const std::vector<std::string> &revoked,
                 int64_t next_update_offset_s = 30 * 86400);

 private:
  std::string dir_;
};

}  // namespace tlsframe::test
