// `tlsframe certs`: a CA, a server certificate for every --host name and
// address, and client certificates, made with OpenSSL's API (core/certgen).
#include <arpa/inet.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli.h"
#include "commands.h"
#include "core/certgen.h"

namespace tlsframe::tool {

namespace {

constexpr const char *kUsage =
    R"(usage: tlsframe certs [--out DIR] [--host NAME]... [--client NAME]... [--rsa] [--days N] [--force]

Makes a certificate authority and certificates signed by it, ECDSA P-256 by default:
  DIR/ca.pem, DIR/ca.key               the CA (copy ca.pem to every viewer)
  DIR/server.pem, DIR/server.key       the server, with subjectAltName for every --host
                                       (names and IPv4/IPv6 addresses; default localhost,
                                       127.0.0.1 and ::1)
  DIR/client-NAME.pem, .key            a client certificate per --client (mutual TLS)
Keys are written with mode 0600. Existing files are never replaced without --force.

  --out DIR     output directory, created if missing (default: _certs)
  --host NAME   a DNS name or IP address of the server (repeat for more)
  --client NAME a client certificate with CN=NAME (repeat for more)
  --rsa         RSA 2048 keys instead of ECDSA P-256
  --days N      validity of the certificates in days (default 825)
  --force       replace existing files
)";

bool is_ip(const std::string &text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

bool valid_name(const std::string &name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

}  // namespace

int cmd_certs(int argc, char **argv) {
  std::string out = "_certs", days_text = "825";
  std::vector<std::string> hosts, clients;
  bool rsa = false, force = false, help = false;
  Options opts;
  opts.value("out", &out, "DIR");
  opts.repeated("host", &hosts);
  opts.repeated("client", &clients);
  opts.flag("rsa", &rsa);
  opts.value("days", &days_text, "N");
  opts.flag("force", &force);
  opts.flag("help", &help);
  std::vector<std::string> positional;
  if (!opts.parse(argc, argv, &positional)) return kExitUsage;
  if (help) {
    std::cout << kUsage;
    return kExitOk;
  }
  // Bare words are taken as more --host names (as make-dev-certs.sh does).
  hosts.insert(hosts.end(), positional.begin(), positional.end());
  long days = 0;
  if (!parse_int("days", days_text, 1, 36500, &days)) return kExitUsage;
  if (hosts.empty()) hosts = {"localhost", "127.0.0.1", "::1"};
  for (const auto &c : clients) {
    if (!valid_name(c)) {
      error("--client names use letters, digits, '-', '_' and '.' only: '" + c + "'");
      return kExitUsage;
    }
  }

  certgen::CertSpec base;
  base.key_type = rsa ? certgen::KeyType::kRsa2048 : certgen::KeyType::kEcdsaP256;
  base.not_after_offset_s = days * 86400;

  struct File {
    std::string name, text;
    bool key;
  };
  std::vector<File> files;

  certgen::CertSpec ca_spec = base;
  ca_spec.common_name = "tlsframe CA";
  ca_spec.usage = certgen::Usage::kCa;
  auto ca = certgen::make_self_signed(ca_spec);
  if (!ca) {
    error("making the CA failed: " + ca.error().message);
    return kExitError;
  }
  files.push_back({"ca.pem", ca->cert_pem, false});
  files.push_back({"ca.key", ca->key_pem, true});

  certgen::CertSpec server_spec = base;
  server_spec.common_name = hosts.front();
  server_spec.usage = certgen::Usage::kServer;
  std::string san_text;
  for (const auto &h : hosts) {
    (is_ip(h) ? server_spec.ip_addresses : server_spec.dns_names).push_back(h);
    san_text += (san_text.empty() ? "" : ", ") + std::string(is_ip(h) ? "IP:" : "DNS:") + h;
  }
  auto server = certgen::issue(server_spec, *ca);
  if (!server) {
    error("making the server certificate failed: " + server.error().message);
    return kExitError;
  }
  files.push_back({"server.pem", server->cert_pem, false});
  files.push_back({"server.key", server->key_pem, true});

  for (const auto &name : clients) {
    certgen::CertSpec spec = base;
    spec.common_name = name;
    spec.usage = certgen::Usage::kClient;
    auto client = certgen::issue(spec, *ca);
    if (!client) {
      error("making the client certificate '" + name + "' failed: " + client.error().message);
      return kExitError;
    }
    files.push_back({"client-" + name + ".pem", client->cert_pem, false});
    files.push_back({"client-" + name + ".key", client->key_pem, true});
  }

  // Refuse before writing anything, so a refused run leaves the directory as it was.
  if (mkdir(out.c_str(), 0755) != 0 && errno != EEXIST) {
    error("cannot create directory '" + out + "': " + strerror(errno));
    return kExitError;
  }
  if (!force) {
    for (const auto &f : files) {
      struct stat st;
      if (stat((out + "/" + f.name).c_str(), &st) == 0) {
        error(out + "/" + f.name + " already exists; pass --force to replace the certificates in " +
              out);
        return kExitError;
      }
    }
  }
  for (const auto &f : files) {
    Status s = certgen::write_file(out + "/" + f.name, f.text, f.key, force);
    if (!s) {
      error(s.error().message);
      return kExitError;
    }
  }

  info("wrote " + out + "/ca.pem and ca.key (certificate authority \"tlsframe CA\")");
  info("wrote " + out + "/server.pem and server.key for " + san_text);
  for (const auto &name : clients) {
    info("wrote " + out + "/client-" + name + ".pem and client-" + name + ".key (CN=" + name + ")");
  }
  info(std::string(rsa ? "RSA 2048" : "ECDSA P-256") + " keys, mode 0600, valid " +
       std::to_string(days) + " days");
  for (const auto &f : files) {
    if (f.key) continue;
    auto fp = certgen::fingerprint_sha256(f.text);
    if (fp) std::cout << "SHA-256 " << f.name << " " << *fp << std::endl;
  }
  return kExitOk;
}

}  // namespace tlsframe::tool
