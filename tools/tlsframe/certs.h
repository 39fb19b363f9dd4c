// Certificate sets as `tlsframe certs` writes them (DIR/ca.*, DIR/server.*,
// DIR/client-NAME.*), made with core/certgen. Shared by `tlsframe certs` and
// the first run of `tlsframe serve`, which makes a set in the per-user directory.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/certgen.h"

namespace tlsframe::tool {

struct CertSetSpec {
  std::vector<std::string> hosts;    // server names and addresses; empty = no server certificate
  std::vector<std::string> clients;  // a client certificate per name (CN=name)
  bool rsa = false;                  // RSA 2048 instead of ECDSA P-256
  long days = 825;                   // validity
};

// One file of a set: name inside the directory, PEM text, and whether it is a private key.
struct CertFile {
  std::string name, text;
  bool key = false;
};

// Makes the files: a new CA (ca.pem, ca.key) unless `ca` is given, then the server
// certificate and the client certificates signed by it. nullopt after one error line.
std::optional<std::vector<CertFile>> make_cert_set(const CertSetSpec &spec,
                                                   const certgen::Issued *ca = nullptr);

// Writes the files into dir, creating it with mode 0700 when missing. Without force, refuses
// (one error line, nothing written) when any of the files exists. Keys get mode 0600.
bool write_cert_set(const std::string &dir, const std::vector<CertFile> &files, bool force);

// "DNS:cam1.lan, IP:192.0.2.20" for the hosts of a server certificate.
std::string san_text(const std::vector<std::string> &hosts);

bool is_ip_address(const std::string &text);

}  // namespace tlsframe::tool
