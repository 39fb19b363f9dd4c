// `tlsframe certs`: a CA, a server certificate for every --host name and
// address, and client certificates, made with OpenSSL's API (core/certgen).
#include "certs.h"

#include <arpa/inet.h>
#include <glib.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli.h"
#include "commands.h"
#include "tls_files.h"

namespace tlsframe::tool {

namespace {

constexpr const char *kSummary =
    "Makes a certificate authority and certificates signed by it, ECDSA P-256 by default:\n"
    "  DIR/ca.pem, DIR/ca.key          the CA (copy ca.pem to every viewer)\n"
    "  DIR/server.pem, DIR/server.key  the server, with subjectAltName for every --host\n"
    "                                  (names and IPv4/IPv6 addresses; default localhost,\n"
    "                                  127.0.0.1 and ::1)\n"
    "  DIR/client-NAME.pem, .key       a client certificate per --client (mutual TLS)\n"
    "Keys are written with mode 0600, the directory (when made) with 0700. Existing files\n"
    "are never replaced without --force. With --client only (no --host) and a CA already in\n"
    "DIR (such as the one `tlsframe serve` makes on its first run), only the client\n"
    "certificates are made, signed by that CA. Bare words are more --host names.";

bool valid_name(const std::string &name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  }
  return true;
}

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int issue_clients_from_existing_ca(const std::string &out, const std::vector<std::string> &clients,
                                   bool rsa, long days) {
  certgen::Issued ca{read_file(out + "/ca.pem"), read_file(out + "/ca.key")};
  CertSetSpec spec;
  spec.clients = clients;
  spec.rsa = rsa;
  spec.days = days;
  auto files = make_cert_set(spec, &ca);
  if (!files || !write_cert_set(out, *files, false)) return kExitError;
  for (const auto &name : clients) {
    info("wrote " + out + "/client-" + name + ".pem and client-" + name + ".key (CN=" + name +
         "), signed by the CA already in " + out);
  }
  return kExitOk;
}

}  // namespace

bool is_ip_address(const std::string &text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

std::string san_text(const std::vector<std::string> &hosts) {
  std::string text;
  for (const auto &h : hosts) {
    text += (text.empty() ? "" : ", ") + std::string(is_ip_address(h) ? "IP:" : "DNS:") + h;
  }
  return text;
}

std::optional<std::vector<CertFile>> make_cert_set(const CertSetSpec &spec,
                                                   const certgen::Issued *existing_ca) {
  certgen::CertSpec base;
  base.key_type = spec.rsa ? certgen::KeyType::kRsa2048 : certgen::KeyType::kEcdsaP256;
  base.not_after_offset_s = spec.days * 86400;
  std::vector<CertFile> files;

  certgen::Issued ca;
  if (existing_ca) {
    ca = *existing_ca;
  } else {
    certgen::CertSpec ca_spec = base;
    ca_spec.common_name = "tlsframe CA";
    ca_spec.usage = certgen::Usage::kCa;
    auto made = certgen::make_self_signed(ca_spec);
    if (!made) {
      error("making the CA failed: " + made.error().message);
      return std::nullopt;
    }
    ca = *made;
    files.push_back({"ca.pem", ca.cert_pem, false});
    files.push_back({"ca.key", ca.key_pem, true});
  }

  if (!spec.hosts.empty()) {
    certgen::CertSpec server_spec = base;
    server_spec.common_name = spec.hosts.front();
    server_spec.usage = certgen::Usage::kServer;
    for (const auto &h : spec.hosts) {
      (is_ip_address(h) ? server_spec.ip_addresses : server_spec.dns_names).push_back(h);
    }
    auto server = certgen::issue(server_spec, ca);
    if (!server) {
      error("making the server certificate failed: " + server.error().message);
      return std::nullopt;
    }
    files.push_back({"server.pem", server->cert_pem, false});
    files.push_back({"server.key", server->key_pem, true});
  }

  for (const auto &name : spec.clients) {
    certgen::CertSpec client_spec = base;
    client_spec.common_name = name;
    client_spec.usage = certgen::Usage::kClient;
    auto client = certgen::issue(client_spec, ca);
    if (!client) {
      error("making the client certificate '" + name + "' failed: " + client.error().message);
      return std::nullopt;
    }
    files.push_back({"client-" + name + ".pem", client->cert_pem, false});
    files.push_back({"client-" + name + ".key", client->key_pem, true});
  }
  return files;
}

bool write_cert_set(const std::string &dir, const std::vector<CertFile> &files, bool force) {
  // The directory holds private keys: nobody else may list it or swap a file in it.
  if (g_mkdir_with_parents(dir.c_str(), 0700) != 0) {
    error("cannot create directory '" + dir + "': " + strerror(errno));
    return false;
  }
  // Refuse before writing anything, so a refused run leaves the directory as it was.
  if (!force) {
    for (const auto &f : files) {
      struct stat st;
      if (lstat((dir + "/" + f.name).c_str(), &st) == 0) {
        error(dir + "/" + f.name + " already exists; pass --force to replace the certificates in " +
              dir);
        return false;
      }
    }
  }
  for (const auto &f : files) {
    Status s = certgen::write_file(dir + "/" + f.name, f.text, f.key, force);
    if (!s) {
      error(s.error().message);
      return false;
    }
  }
  return true;
}

int cmd_certs(int argc, char **argv) {
  std::string out = default_cert_dir(), days_text = "825";
  std::vector<std::string> hosts, clients;
  bool rsa = false, force = false;
  Options opts("[NAME…]", kSummary);
  opts.value("out", &out, "DIR",
             "Output directory, created if missing (default: the per-user directory "
             "${XDG_CONFIG_HOME:-~/.config}/tlsframe/certs, which serve, view and relay use)");
  opts.repeated("host", &hosts, "NAME", "A DNS name or IP address of the server (repeatable)");
  opts.repeated("client", &clients, "NAME", "A client certificate with CN=NAME (repeatable)");
  opts.flag("rsa", &rsa, "RSA 2048 keys instead of ECDSA P-256");
  opts.value("days", &days_text, "N", "Validity of the certificates in days (default 825)");
  opts.flag("force", &force, "Replace existing files");
  std::vector<std::string> positional;
  if (!opts.parse(argc, argv, &positional)) return kExitUsage;
  // Bare words are taken as more --host names (as make-dev-certs.sh does).
  hosts.insert(hosts.end(), positional.begin(), positional.end());
  long days = 0;
  if (!parse_int("days", days_text, 1, 36500, &days)) return kExitUsage;
  for (const auto &c : clients) {
    if (!valid_name(c)) {
      error("--client names use letters, digits, '-', '_' and '.' only: '" + c + "'");
      return kExitUsage;
    }
  }
  // Only --client, and DIR already holds a CA (e.g. the one serve made on its first run):
  // the client certificates are signed by that CA, which stays as it is.
  if (hosts.empty() && !clients.empty() && !force && file_readable(out + "/ca.pem") &&
      file_readable(out + "/ca.key")) {
    return issue_clients_from_existing_ca(out, clients, rsa, days);
  }
  if (hosts.empty()) hosts = {"localhost", "127.0.0.1", "::1"};

  CertSetSpec spec;
  spec.hosts = hosts;
  spec.clients = clients;
  spec.rsa = rsa;
  spec.days = days;
  auto files = make_cert_set(spec);
  if (!files || !write_cert_set(out, *files, force)) return kExitError;

  info("wrote " + out + "/ca.pem and ca.key (certificate authority \"tlsframe CA\")");
  info("wrote " + out + "/server.pem and server.key for " + san_text(hosts));
  for (const auto &name : clients) {
    info("wrote " + out + "/client-" + name + ".pem and client-" + name + ".key (CN=" + name + ")");
  }
  info(std::string(rsa ? "RSA 2048" : "ECDSA P-256") + " keys, mode 0600, valid " +
       std::to_string(days) + " days");
  for (const auto &f : *files) {
    if (f.key) continue;
    auto fp = certgen::fingerprint_sha256(f.text);
    if (fp) std::cout << "SHA-256 " << f.name << " " << *fp << std::endl;
  }
  return kExitOk;
}

}  // namespace tlsframe::tool
